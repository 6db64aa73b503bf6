"""A caller made of a script: plays WAV files and keys into an AudioSocket server as
Asterisk would, and keeps what it hears. ``banshi voice call``, the end-to-end tests and
bench/voice_calls.py use it.

A script is a list of steps, written for the command line as words::

    .            listen until the prompt ends (no audio for a moment)
    k:31#        press keys (DTMF frames, as Asterisk sends them)
    t:31#        press keys as tones in the audio (in-band DTMF, as an old PBX passes them)
    @msg.wav     say something: a WAV file (any rate, mono), sent in real time
    ~1.5         stay silent for 1.5 s (silence is sent, as a phone line does)
    x            hang up

e.g. ``. k:3 . @message.wav k:# . k:1 .`` leaves a message and confirms it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from assistant.voice import audiosocket as aso
from assistant.voice.dtmf import generate_dtmf
from assistant.voice.pcm import read_wav, resample

RATE = 8000
LISTEN_GAP_S = 0.6  # this long without audio: the prompt has ended
LISTEN_LIMIT_S = 60.0


@dataclass(frozen=True)
class Step:
    kind: str  # listen | keys | tones | say | silence | hangup
    value: str = ""


@dataclass
class Heard:
    """One stretch of prompt audio the caller heard, and when it began (s from dialling)."""

    at_s: float
    pcm: bytes


@dataclass
class CallResult:
    heard: list[Heard] = field(default_factory=list)
    hung_up_by_server: bool = False
    key_to_audio_ms: list[float] = field(default_factory=list)  # each key to the next audio

    @property
    def audio(self) -> bytes:
        return b"".join(h.pcm for h in self.heard)


def parse_script(text: str, base: Path | None = None) -> list[Step]:
    steps = []
    for word in text.split():
        if word == ".":
            steps.append(Step("listen"))
        elif word == "x":
            steps.append(Step("hangup"))
        elif word.startswith(("k:", "t:")) and len(word) > 2:
            keys = word[2:]
            if any(k not in aso.DTMF_DIGITS for k in keys):
                raise ValueError(f"{word!r}: keys are 0-9, *, # and A-D")
            steps.append(Step("keys" if word[0] == "k" else "tones", keys))
        elif word.startswith("@") and len(word) > 1:
            path = Path(word[1:])
            steps.append(Step("say", str(base / path if base and not path.is_absolute() else path)))
        elif word.startswith("~"):
            try:
                seconds = float(word[1:])
            except ValueError:
                raise ValueError(f"{word!r}: write ~SECONDS, e.g. ~1.5") from None
            steps.append(Step("silence", str(seconds)))
        else:
            raise ValueError(f"{word!r} is not a step (. k:KEYS t:KEYS @FILE.wav ~SECONDS x)")
    return steps


async def place_call(
    host: str,
    port: int,
    steps: list[Step],
    *,
    call_uuid: uuid.UUID | None = None,
    pace: bool = True,
    gap_s: float = LISTEN_GAP_S,
) -> CallResult:
    """Dials, runs the steps, and hangs up at the end unless the server did."""
    result = CallResult()
    started = time.monotonic()
    # when the latest audio frame came, how many stretches were heard, how many a listen
    # step has had: audio that came while keys were being sent still counts as heard
    last_audio = [0.0, 0, 0]
    stretch: list[bytearray] = []
    key_at: list[float] = []
    async with await aso.AsteriskClient.connect(host, port, call_uuid) as client:

        async def read() -> None:
            while True:
                frame = await client.next_frame(timeout=3600)
                if frame is None or frame.kind is aso.Kind.HANGUP:
                    result.hung_up_by_server = True
                    return
                if frame.kind is not aso.Kind.AUDIO:
                    continue
                now = time.monotonic()
                if key_at:
                    result.key_to_audio_ms.append((now - key_at.pop()) * 1000)
                if not stretch or now - last_audio[0] > gap_s:
                    result.heard.append(Heard(now - started, b""))
                    stretch.append(bytearray())
                    last_audio[1] += 1
                stretch[-1] += frame.payload
                result.heard[-1].pcm = bytes(stretch[-1])
                last_audio[0] = now

        reader = asyncio.create_task(read())
        try:
            for step in steps:
                if reader.done():
                    break
                await _run(step, client, reader, last_audio, key_at, pace, gap_s)
        finally:
            if not reader.done():
                with contextlib.suppress(Exception):
                    await client.hangup()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
    return result


async def _run(
    step: Step,
    client: aso.AsteriskClient,
    reader: asyncio.Task[None],
    last_audio: list[float],
    key_at: list[float],
    pace: bool,
    gap_s: float,
) -> None:
    if step.kind == "listen":
        await _listen(reader, last_audio, gap_s)
    elif step.kind == "keys":
        for key in step.value:
            key_at[:] = [time.monotonic()]
            await client.send_dtmf(key)
            await asyncio.sleep(0.1)
    elif step.kind == "tones":
        key_at[:] = [time.monotonic()]
        await client.send_audio(generate_dtmf(step.value, RATE), pace=pace)
    elif step.kind == "say":
        audio, rate = read_wav(step.value)
        await client.send_audio(resample(audio, rate, RATE), pace=pace)
    elif step.kind == "silence":
        await client.send_audio(bytes(int(float(step.value) * RATE) * 2), pace=pace)
    elif step.kind == "hangup":
        await client.hangup()


async def _listen(reader: asyncio.Task[None], last_audio: list[float], gap_s: float) -> None:
    """Waits for a stretch of audio not yet listened to, then for a gap of ``gap_s`` after
    it (or the hang-up)."""
    began = time.monotonic()
    while not reader.done() and time.monotonic() - began < LISTEN_LIMIT_S:
        if last_audio[1] > last_audio[2] and time.monotonic() - last_audio[0] >= gap_s:
            last_audio[2] = last_audio[1]
            return
        await asyncio.sleep(0.05)
