"""16-bit mono PCM helpers (assistant/voice/pcm.py): band-limited resampling measured on
synthetic sines (frequency by FFT peak, level, aliasing), WAV files, levels and frames."""

from __future__ import annotations

import doctest
import math
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.voice import pcm as pcm_module
from assistant.voice.pcm import (
    frames,
    read_wav,
    resample,
    rms_dbfs,
    samples,
    to_pcm,
    tone,
    write_wav,
)


def peak_hz(pcm: bytes, rate: int) -> float:
    """The frequency of the strongest FFT bin (Hann window, 1 Hz bins for 1 s of audio)."""
    x = samples(pcm).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * rate / x.size)


def middle(pcm: bytes) -> bytes:
    """The middle half of a buffer: away from the filter's start-up at the edges."""
    n = len(pcm) // 2
    return pcm[2 * (n // 4) : 2 * (3 * n // 4)]


# -- resampling -------------------------------------------------------------------------------
@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0, 3500.0])
def test_downsampling_16k_to_8k_keeps_the_telephone_band(freq: float) -> None:
    src = tone(freq, 16000, ms=1000)
    out = resample(src, 16000, 8000)
    assert len(out) == len(src) // 2
    assert peak_hz(out, 8000) == freq
    assert abs(rms_dbfs(middle(out)) - rms_dbfs(middle(src))) < 0.5


@pytest.mark.parametrize("freq", [4500.0, 6000.0, 7500.0])
def test_downsampling_removes_what_lies_above_the_new_nyquist(freq: float) -> None:
    """Without the low-pass, 6 kHz would fold to 2 kHz at full level."""
    src = tone(freq, 16000, ms=1000)
    out = resample(src, 16000, 8000)
    assert rms_dbfs(src) - rms_dbfs(out) >= 30
    assert rms_dbfs(middle(src)) - rms_dbfs(middle(out)) >= 60


def test_upsampling_8k_to_16k_adds_no_images() -> None:
    src = tone(3000, 8000, ms=1000)
    out = resample(src, 8000, 16000)
    assert len(out) == 2 * len(src)
    assert peak_hz(out, 16000) == 3000
    x = samples(middle(out)).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
    hz = np.fft.rfftfreq(x.size, 1 / 16000)
    # the image of 3 kHz would be at 5 kHz; everything above 4 kHz is 60 dB down
    assert 10 * math.log10(spectrum[hz > 4000].sum() / spectrum.sum()) < -60


@pytest.mark.parametrize(
    ("src_rate", "dst_rate", "freq"),
    [
        (8000, 16000, 1000.0),
        (16000, 48000, 1000.0),
        (48000, 16000, 5000.0),
        (22050, 8000, 1000.0),
        (22050, 8000, 3300.0),
        (44100, 16000, 2000.0),
    ],
)
def test_other_ratios_keep_frequency_and_level(src_rate: int, dst_rate: int, freq: float) -> None:
    src = tone(freq, src_rate, ms=1000)
    out = resample(src, src_rate, dst_rate)
    assert len(out) // 2 == math.ceil(len(src) // 2 * dst_rate / src_rate)
    assert peak_hz(out, dst_rate) == freq
    assert abs(rms_dbfs(middle(out)) - rms_dbfs(middle(src))) < 0.5


def test_22050_to_8000_removes_tts_highs() -> None:
    """TTS output at 22.05 kHz holds sibilants up to 11 kHz; 5 kHz must not fold to 3 kHz."""
    src = tone(5000, 22050, ms=1000)
    assert rms_dbfs(middle(resample(src, 22050, 8000))) < rms_dbfs(src) - 60


def test_up_and_down_again_is_nearly_the_original() -> None:
    rng = np.random.default_rng(7)
    # a band-limited random signal: sines below 3.4 kHz
    n = np.arange(8000)
    x = sum(
        1500 * np.sin(2 * np.pi * f * n / 8000 + p)
        for f, p in zip(rng.uniform(200, 3400, 8), rng.uniform(0, 6.3, 8), strict=True)
    )
    src = to_pcm(x)
    back = resample(resample(src, 8000, 16000), 16000, 8000)
    a, b = samples(middle(src)).astype(float), samples(middle(back)).astype(float)
    assert 10 * math.log10(np.sum(a * a) / np.sum((a - b) ** 2)) > 40


def test_same_rate_and_empty_input() -> None:
    src = tone(440, 8000, ms=30)
    assert resample(src, 8000, 8000) == src
    assert resample(b"", 16000, 8000) == b""


def test_resample_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="even number of bytes, not 3"):
        resample(b"\x00\x01\x02", 16000, 8000)
    with pytest.raises(ValueError, match="must be positive"):
        resample(b"", 0, 8000)


# -- samples, levels, frames ------------------------------------------------------------------
def test_samples_and_bytes_are_little_endian_16_bit() -> None:
    assert samples(b"\x01\x00\xff\xff\x00\x80").tolist() == [1, -1, -32768]
    assert to_pcm([1.4, -1.6, 40000, -40000]) == b"\x01\x00\xfe\xff\xff\x7f\x00\x80"
    arr = np.array([3, -3], dtype=np.int16)
    assert samples(arr) is arr
    floats: Any = np.zeros(4)
    with pytest.raises(ValueError, match="1-D int16"):
        samples(floats)


def test_rms_dbfs() -> None:
    assert rms_dbfs(to_pcm([32767, -32768] * 100)) == pytest.approx(0.0, abs=0.001)
    assert rms_dbfs(tone(1000, 8000, ms=100, amplitude=32767)) == pytest.approx(-3.01, abs=0.01)
    assert rms_dbfs(tone(1000, 8000, ms=100, amplitude=3277)) == pytest.approx(-23.01, abs=0.01)
    assert rms_dbfs(bytes(320)) == -math.inf
    assert rms_dbfs(b"") == -math.inf


def test_frames_are_fixed_size_and_the_last_is_padded() -> None:
    src = to_pcm(np.arange(1, 401))  # 400 samples = 50 ms at 8 kHz
    got = list(frames(src, 8000, ms=20))
    assert [len(f) for f in got] == [320, 320, 320]
    assert b"".join(got[:2]) == src[:640]
    assert samples(got[2]).tolist() == [*range(321, 401), *[0] * 80]
    assert [len(f) for f in frames(src, 16000, ms=10)] == [320, 320, 320]
    assert list(frames(b"", 8000)) == []
    assert list(frames(src[:320], 8000)) == [src[:320]]


def test_frames_must_be_whole_samples() -> None:
    with pytest.raises(ValueError, match="15 ms at 22050 Hz"):
        list(frames(bytes(100), 22050, ms=15))


# -- WAV files --------------------------------------------------------------------------------
def test_wav_round_trip(tmp_path: Path) -> None:
    src = tone(697, 8000, ms=250) + tone(1209, 8000, ms=250, amplitude=-1000)
    path = tmp_path / "caller.wav"
    write_wav(path, src, 8000)
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert w.getnframes() == len(src) // 2
    assert read_wav(path) == (src, 8000)
    write_wav(tmp_path / "array.wav", samples(src), 16000)
    assert read_wav(tmp_path / "array.wav") == (src, 16000)


def _write(path: Path, channels: int, width: int, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(channels * width * 80))
    return path


def test_read_wav_refuses_stereo(tmp_path: Path) -> None:
    path = _write(tmp_path / "stereo.wav", channels=2, width=2, rate=44100)
    with pytest.raises(ValueError, match=r"stereo\.wav: is 2-channel 16-bit at 44100 Hz"):
        read_wav(path)


def test_read_wav_refuses_8_bit(tmp_path: Path) -> None:
    path = _write(tmp_path / "old.wav", channels=1, width=1)
    with pytest.raises(ValueError, match=r"old\.wav: is 1-channel 8-bit at 8000 Hz; only mono"):
        read_wav(path)


def test_read_wav_refuses_what_is_not_pcm_wav(tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("这不是音频文件\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"notes\.wav: not a PCM WAV file"):
        read_wav(text)
    half = tmp_path / "half.wav"
    half.write_bytes(b"RIFF")
    with pytest.raises(ValueError, match=r"half\.wav: not a PCM WAV file"):
        read_wav(half)


def test_docstring_examples() -> None:
    assert doctest.testmod(pcm_module).failed == 0
