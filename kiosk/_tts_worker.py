"""Renders one text to a WAV file with pyttsx3 and espeak-ng, in a process of its own.

``python -m kiosk._tts_worker OUT.wav --voices cmn-latn-pinyin,cmn --rate 160`` with the text
on standard input. kiosk/tts.py runs it: espeak-ng initialises once per process, pyttsx3's
engine is not thread-safe and its run loop blocks, so each render gets a short-lived process
that the server can time out and kill. Imports nothing of banshi (starts in ~0.1 s).

Exit status: 0 written, 3 no Mandarin voice, 4 the engine failed (reason on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import threading

NO_VOICE = 3
ENGINE_FAILED = 4


def pick_voice(voices: list[tuple[str, list[str]]], wanted: list[str]) -> str | None:
    """The id of the first voice, in ``wanted``'s order, whose id ends with or whose
    language is that name (pyttsx3 lowercases espeak-ng's ids: ``sit/cmn-latn-pinyin``).

    >>> pick_voice([("sit/cmn", ["cmn"]), ("sit/cmn-latn-pinyin", ["cmn-latn-pinyin"])],
    ...            ["cmn-latn-pinyin", "cmn"])
    'sit/cmn-latn-pinyin'
    >>> pick_voice([("gmw/en", ["en"])], ["cmn"]) is None
    True
    """
    for name in (w.lower() for w in wanted):
        for voice_id, languages in voices:
            if voice_id.rsplit("/", 1)[-1] == name or name in (lang.lower() for lang in languages):
                return voice_id
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiosk._tts_worker")
    parser.add_argument("out")
    parser.add_argument("--voices", default="cmn")
    parser.add_argument("--rate", type=int, default=160)
    parser.add_argument("--volume", type=float, default=0.8)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    text = sys.stdin.read()
    try:
        import pyttsx3

        # pyttsx3's espeak driver prints "Audio saved to …" on stdout: keep ours clean
        with contextlib.redirect_stdout(io.StringIO()):
            engine = pyttsx3.init("espeak")
            voices = [
                (str(v.id), [str(lang) for lang in (v.languages or [])])
                for v in engine.getProperty("voices")
            ]
            voice = pick_voice(voices, args.voices.split(","))
            if voice is None:
                print(f"no voice among {args.voices} (have {len(voices)})", file=sys.stderr)
                return NO_VOICE
            engine.setProperty("voice", voice)
            engine.setProperty("rate", args.rate)
            engine.setProperty("volume", args.volume)
            # espeak-ng synthesises on a thread of its own (AUDIO_OUTPUT_RETRIEVAL), and
            # pyttsx3's runAndWait can return before it is done: a longer text would end up
            # with no file. The driver writes the file, then says "finished-utterance".
            finished = threading.Event()
            engine.connect("finished-utterance", lambda **_: finished.set())
            engine.save_to_file(text, args.out)
            engine.runAndWait()
            if not finished.wait(args.timeout):
                print(f"espeak-ng did not finish within {args.timeout:g} s", file=sys.stderr)
                return ENGINE_FAILED
    except Exception as exc:  # ImportError, espeak-ng's library missing, driver errors
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return ENGINE_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
