"""Announcement audio: text → WAV bytes (pyttsx3 + espeak-ng's Mandarin), cached on disk.

- ``EspeakSynthesizer`` renders in a short-lived process (``kiosk/_tts_worker.py``) with a
  timeout: espeak-ng initialises once per process, pyttsx3's engine is not thread-safe and
  its run loop blocks, so a server thread never touches them. One render is ~0.1 s.
- ``SpeechCache`` keeps each rendered text under ``<data_dir>/kiosk/tts/`` by a hash of the
  engine's settings and the text; a second request is a file read. Files are written to a
  temporary name and renamed, so a crash mid-write never leaves a broken file.
- ``ToneSynthesizer`` is the fake for tests: a valid short WAV without any engine.

Without espeak-ng (``scripts/voice-setup``) or pyttsx3 (extra ``voice``) rendering raises
``SpeechUnavailable`` (HTTP 503) and the display shows calls as text only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import wave
from pathlib import Path
from typing import Protocol

from kiosk.errors import SpeechUnavailable

log = logging.getLogger(__name__)

# Debian 12's espeak-ng 1.51 ``cmn`` voice ("latin as English") reads the pinyin of many
# characters as English words (号 comes out as "hao four"); ``cmn-latn-pinyin`` reads the
# same characters right and still names letters the Chinese way (A 诶, B 必). ``cmn`` stays
# as the fallback for a build that has only it.
VOICES = ("cmn-latn-pinyin", "cmn")
RATE = 160  # espeak-ng's 175 is hurried for a hall's echo: ~4 s a sentence at 160
VOLUME = 0.8  # at 1.0 espeak-ng's Mandarin clips (peaks at full scale)
TIMEOUT_S = 15.0
LEAD_IN_S = 0.3  # silence first: a display's amplifier or HDMI sink often eats the start
MAX_FILES = 500  # ~420 KB each (two sayings, ~10 s at 22 kHz): at most ~200 MB
_WORKER = Path(__file__).resolve().with_name("_tts_worker.py")


class Synthesizer(Protocol):
    """Speaks a text into WAV bytes (mono, 16-bit PCM)."""

    @property
    def key(self) -> str:
        """Everything besides the text that the audio depends on (engine, voice, rate):
        part of the cache key, so changing the voice never serves the old recordings."""
        ...

    def synthesize(self, text: str) -> bytes: ...


class EspeakSynthesizer:
    def __init__(
        self,
        voices: tuple[str, ...] = VOICES,
        rate: int = RATE,
        volume: float = VOLUME,
        timeout_s: float = TIMEOUT_S,
        program: str = "espeak-ng",
    ) -> None:
        self.voices, self.rate, self.volume = voices, rate, volume
        self.timeout_s, self.program = timeout_s, program
        self.key = f"espeak-ng/{','.join(voices)}/rate{rate}/vol{volume}/lead{LEAD_IN_S}"

    def check(self) -> None:
        """Raises ``SpeechUnavailable`` naming what is missing (cheap: no engine started)."""
        if shutil.which(self.program) is None:
            raise SpeechUnavailable(f"{self.program} is not installed (run scripts/voice-setup)")
        if importlib.util.find_spec("pyttsx3") is None:
            raise SpeechUnavailable("pyttsx3 is not installed (pip install 'banshi[voice]')")

    def synthesize(self, text: str) -> bytes:
        self.check()
        with tempfile.TemporaryDirectory(prefix="banshi-tts-") as tmp:
            out = Path(tmp) / "out.wav"
            # -I: the worker's folder (kiosk/, which has a queue/ package) stays off sys.path
            command = [sys.executable, "-I", str(_WORKER), str(out)]
            command += ["--voices", ",".join(self.voices), "--rate", str(self.rate)]
            # the worker gives up first, so its reason is heard rather than a kill
            wait_s = max(1.0, self.timeout_s - 2)
            command += ["--volume", str(self.volume), "--timeout", f"{wait_s:g}"]
            try:
                done = subprocess.run(
                    command, input=text, capture_output=True, text=True, timeout=self.timeout_s
                )
            except subprocess.TimeoutExpired as exc:  # run() has killed the worker
                raise SpeechUnavailable(f"espeak-ng took over {self.timeout_s:g} s") from exc
            if done.returncode != 0 or not out.exists():
                reason = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
                raise SpeechUnavailable(f"speech worker failed: {reason[0][:300]}")
            return browser_wav(out.read_bytes())


class ToneSynthesizer:
    """The fake: a short 440 Hz beep whatever the text; ``texts`` records what was asked."""

    key = "tone/v1"

    def __init__(self, seconds: float = 0.4, rate: int = 16000) -> None:
        self.seconds, self.rate = seconds, rate
        self.texts: list[str] = []

    def synthesize(self, text: str) -> bytes:
        self.texts.append(text)
        n = int(self.seconds * self.rate)
        samples = (int(8000 * math.sin(2 * math.pi * 440 * i / self.rate)) for i in range(n))
        return _wav(b"".join(struct.pack("<h", s) for s in samples), self.rate)


class SpeechCache:
    """Rendered announcements on disk, one file per (engine settings, text)."""

    def __init__(self, directory: Path, synthesizer: Synthesizer) -> None:
        self.directory = directory
        self.synthesizer = synthesizer
        # one render at a time per process: several displays asking for the same call get
        # one render, and a burst of calls never starts a crowd of engines
        self._render = threading.Lock()

    def path_for(self, text: str) -> Path:
        digest = hashlib.sha256(f"{self.synthesizer.key}\n{text}".encode()).hexdigest()
        return self.directory / f"{digest[:32]}.wav"

    def wav(self, text: str) -> bytes:
        """The audio of ``text``, rendered on the first request only. Blocking."""
        path = self.path_for(text)
        cached = _read(path)
        if cached is not None:
            return cached
        with self._render:
            cached = _read(path)  # rendered while we waited
            if cached is not None:
                return cached
            data = self.synthesizer.synthesize(text)
            try:
                write_atomic(path, data)
                self._prune(keep=path)
            except OSError:  # a full or read-only disk: say it anyway, render again next time
                log.warning("could not cache the announcement in %s", self.directory, exc_info=True)
            return data

    def _prune(self, keep: Path) -> None:
        """Oldest first, down to ``MAX_FILES`` (the file just written stays)."""
        files = sorted((p for p in self.directory.glob("*.wav") if p != keep), key=_mtime)
        for old in files[: max(0, len(files) + 1 - MAX_FILES)]:
            old.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def browser_wav(raw: bytes) -> bytes:
    """Any PCM WAV as one every browser plays: mono 16-bit at the same rate, with
    ``LEAD_IN_S`` of silence first."""
    import numpy as np

    try:
        with wave.open(io.BytesIO(raw)) as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise SpeechUnavailable(f"the engine wrote no valid WAV: {exc}") from exc
    if width == 1:  # 8-bit WAV is unsigned
        samples = (np.frombuffer(frames, np.uint8).astype(np.int32) - 128) << 8
    elif width in (2, 4):
        samples = np.frombuffer(frames, np.int16 if width == 2 else np.int32).astype(np.int32)
        samples = samples if width == 2 else samples >> 16
    else:
        raise SpeechUnavailable(f"the engine wrote {8 * width}-bit audio")
    if samples.size == 0:
        raise SpeechUnavailable("the engine wrote no audio")
    mono = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    lead = np.zeros(int(LEAD_IN_S * rate), np.int16)
    return _wav(np.concatenate([lead, mono]).astype("<i2").tobytes(), rate)


def _wav(pcm: bytes, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buffer.getvalue()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
