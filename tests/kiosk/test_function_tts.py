"""Announcement audio: the WAV conversion, the cache (atomic, one render per text), the
errors when the engine is missing, and real espeak-ng rendering through pyttsx3 (marker
``voice``)."""

from __future__ import annotations

import doctest
import io
import os
import sys
import wave
from pathlib import Path

import pytest

from kiosk import _tts_worker, tts
from kiosk.announce import spoken_text
from kiosk.errors import SpeechUnavailable
from kiosk.tts import EspeakSynthesizer, SpeechCache, ToneSynthesizer, browser_wav, write_atomic

A012 = {"number": "A012", "window": "A03", "window_name": "A03号窗口", "recall": False}


def wav_info(data: bytes) -> tuple[int, int, int, float]:
    with wave.open(io.BytesIO(data)) as w:
        rate = w.getframerate()
        return w.getnchannels(), w.getsampwidth(), rate, w.getnframes() / rate


class Counting:
    """Wraps a synthesizer and counts the renders."""

    def __init__(self, inner: tts.Synthesizer) -> None:
        self.inner, self.renders = inner, 0
        self.key = inner.key

    def synthesize(self, text: str) -> bytes:
        self.renders += 1
        return self.inner.synthesize(text)


# -- without an engine -------------------------------------------------------------------
def test_the_fake_writes_a_valid_wav() -> None:
    fake = ToneSynthesizer()
    channels, width, rate, seconds = wav_info(fake.synthesize("请A零一二号"))
    assert (channels, width, rate) == (1, 2, 16000)
    assert seconds == pytest.approx(0.4)
    assert fake.texts == ["请A零一二号"]


def test_a_second_request_is_a_file_read(tmp_path: Path) -> None:
    fake = ToneSynthesizer()
    cache = SpeechCache(tmp_path / "tts", fake)
    first = cache.wav("请A零一二号")
    assert cache.wav("请A零一二号") == first
    assert SpeechCache(tmp_path / "tts", fake).wav("请A零一二号") == first  # another process
    assert fake.texts == ["请A零一二号"]
    assert [p.name for p in (tmp_path / "tts").iterdir()] == [cache.path_for("请A零一二号").name]


def test_the_cache_key_includes_the_engine_settings(tmp_path: Path) -> None:
    espeak = SpeechCache(tmp_path, EspeakSynthesizer())
    slower = SpeechCache(tmp_path, EspeakSynthesizer(rate=120))
    fake = SpeechCache(tmp_path, ToneSynthesizer())
    paths = {c.path_for("请A零一二号") for c in (espeak, slower, fake)}
    assert len(paths) == 3


def test_a_crash_mid_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(src: object, dst: object) -> None:
        raise KeyboardInterrupt  # the process dies between writing and renaming

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "tts" / "a.wav", b"RIFF")
    assert list((tmp_path / "tts").iterdir()) == []  # neither the file nor its temporary


def test_a_full_disk_still_gives_the_audio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = ToneSynthesizer()
    cache = SpeechCache(tmp_path / "tts", fake)

    def full(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    assert wav_info(cache.wav("请A零一二号"))[0] == 1
    assert list((tmp_path / "tts").iterdir()) == []
    assert "could not cache" in caplog.text


def test_the_cache_is_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tts, "MAX_FILES", 3)
    cache = SpeechCache(tmp_path, ToneSynthesizer(seconds=0.01))
    for n in range(5):
        cache.wav(f"第{n}号")
    assert len(list(tmp_path.glob("*.wav"))) == 3
    assert cache.path_for("第4号").exists()


def test_browser_wav_makes_mono_16_bit_with_a_lead_in() -> None:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:  # stereo 8-bit, as some engines write
        w.setnchannels(2)
        w.setsampwidth(1)
        w.setframerate(22050)
        w.writeframes(bytes([128, 255]) * 2205)  # 0.1 s: left silent, right near full
    converted = browser_wav(buffer.getvalue())
    channels, width, rate, seconds = wav_info(converted)
    assert (channels, width, rate) == (1, 2, 22050)
    assert seconds == pytest.approx(0.1 + tts.LEAD_IN_S, abs=0.001)
    with wave.open(io.BytesIO(converted)) as w:
        lead = int(tts.LEAD_IN_S * 22050)
        pcm = w.readframes(lead + 1)
    assert pcm[: 2 * lead] == bytes(2 * lead)  # the lead-in is silence
    assert int.from_bytes(pcm[-2:], "little", signed=True) == 127 * 256 // 2  # the mean


def test_browser_wav_refuses_what_is_not_a_wav() -> None:
    with pytest.raises(SpeechUnavailable, match="no valid WAV"):
        browser_wav(b"RIFF....not a wav")


def test_without_espeak_ng_speech_is_unavailable() -> None:
    with pytest.raises(SpeechUnavailable) as caught:
        EspeakSynthesizer(program="no-espeak-here").synthesize("请A零一二号")
    assert caught.value.status_code == 503
    assert caught.value.code == "speech_unavailable"
    assert caught.value.message == "语音播报暂不可用，请留意屏幕。"
    assert "scripts/voice-setup" in caught.value.detail


def test_without_pyttsx3_speech_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = tts.importlib.util.find_spec
    monkeypatch.setattr(
        tts.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pyttsx3" else real_find_spec(name, *a),
    )
    with pytest.raises(SpeechUnavailable, match=r"banshi\[voice\]"):
        EspeakSynthesizer(program=sys.executable).check()


def test_a_hanging_engine_is_timed_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pyttsx3", reason="pyttsx3 (extra voice) is not installed")
    hang = tmp_path / "hang.py"
    hang.write_text("import time\ntime.sleep(30)\n")
    monkeypatch.setattr(tts, "_WORKER", hang)
    synthesizer = EspeakSynthesizer(program=sys.executable, timeout_s=0.5)
    with pytest.raises(SpeechUnavailable, match=r"took over 0\.5 s"):
        synthesizer.synthesize("请A零一二号")


def test_worker_docstring_examples() -> None:
    assert doctest.testmod(_tts_worker).failed == 0


# -- espeak-ng through pyttsx3 -------------------------------------------------------------
@pytest.mark.voice
def test_espeak_renders_the_announcement(espeak: EspeakSynthesizer, tmp_path: Path) -> None:
    counting = Counting(espeak)
    cache = SpeechCache(tmp_path / "tts", counting)
    audio = cache.wav(spoken_text(A012))
    channels, width, rate, seconds = wav_info(audio)
    assert (channels, width) == (1, 2)
    assert rate in (16000, 22050, 24000)
    assert seconds > 1.0  # twice "请A零一二号，到A三号窗口办理" is about 9 s
    assert cache.wav(spoken_text(A012)) == audio
    assert counting.renders == 1


@pytest.mark.voice
def test_espeak_without_a_mandarin_voice(espeak: EspeakSynthesizer) -> None:
    with pytest.raises(SpeechUnavailable, match="no voice among"):
        EspeakSynthesizer(voices=("xx-no-such-voice",)).synthesize("请A零一二号")
