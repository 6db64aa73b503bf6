"""16-bit signed mono PCM, the call engine's one audio format: conversions between bytes and
numpy samples, resampling between the call's rate and the recogniser's or a prompt file's
(8 kHz telephone audio from Asterisk AudioSocket, 16 kHz for ASR, 48 kHz browser
microphones, 22.05 kHz TTS output), WAV files, levels and fixed-size frames.

PCM bytes are little-endian 16-bit samples (Asterisk's ``slin``, a WAV file's data chunk).
Everything here is pure numpy and the stdlib ``wave`` module, so it runs wherever the service
does.

Resampling is band-limited: a Kaiser-windowed sinc low-pass evaluated in polyphase form, its
cut-off below the lower of the two Nyquist frequencies, so downsampling does not fold what
lies above the new Nyquist frequency back into the telephone band.

>>> from assistant.voice.pcm import frames, resample, rms_dbfs, tone
>>> pcm = tone(1000, 16000, ms=100)
>>> len(resample(pcm, 16000, 8000)) == len(pcm) // 2
True
>>> round(rms_dbfs(pcm), 1)
-9.0
>>> [len(f) for f in frames(pcm[:700], 16000, ms=10)]
[320, 320, 320]
"""

from __future__ import annotations

import math
import wave
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

SAMPLE_WIDTH = 2  # bytes: 16-bit
FULL_SCALE = 32768.0
PCM_DTYPE = np.dtype("<i2")

# The resampling filter: its pass band ends at PASS_FRACTION of the lower Nyquist frequency
# (3.5 kHz for 8 kHz audio, above the 3.4 kHz telephone band) and its stop band starts at
# that Nyquist frequency; HALF_TAPS lower-rate samples either side with a Kaiser window of
# KAISER_BETA give about 75 dB of stop-band attenuation over that transition.
PASS_FRACTION = 0.875
HALF_TAPS = 40
KAISER_BETA = 7.5
CHUNK_OUTPUTS = 4096  # output samples computed at once, to bound memory on long files

Samples = npt.NDArray[np.int16]
PcmLike = bytes | bytearray | memoryview | npt.NDArray[np.int16]


def samples(pcm: PcmLike) -> Samples:
    """The int16 samples of PCM bytes (or an int16 array, returned as it is)."""
    if isinstance(pcm, np.ndarray):
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise ValueError(f"PCM samples must be a 1-D int16 array, not {pcm.ndim}-D {pcm.dtype}")
        return pcm
    data = bytes(pcm)
    if len(data) % SAMPLE_WIDTH:
        raise ValueError(f"16-bit PCM has an even number of bytes, not {len(data)}")
    return np.frombuffer(data, dtype=PCM_DTYPE).astype(np.int16)


def to_pcm(values: npt.ArrayLike) -> bytes:
    """Samples (any numeric array) as PCM bytes: rounded and clipped to 16 bits."""
    arr = np.rint(np.asarray(values, dtype=np.float64))
    return np.clip(arr, -32768, 32767).astype(PCM_DTYPE).tobytes()


def tone(freq: float, rate: int, ms: float, amplitude: float = 16384.0) -> bytes:
    """A sine of ``freq`` Hz lasting ``ms`` milliseconds: test and calibration signal."""
    n = round(rate * ms / 1000)
    return to_pcm(amplitude * np.sin(2 * np.pi * freq * np.arange(n) / rate))


def rms_dbfs(pcm: PcmLike) -> float:
    """The RMS level in dB relative to full scale (a full-scale square wave is 0 dBFS, a
    full-scale sine about -3 dBFS); ``-inf`` for silence or no samples."""
    x = samples(pcm).astype(np.float64)
    if x.size == 0:
        return -math.inf
    rms = math.sqrt(float(np.mean(x * x)))
    return 20 * math.log10(rms / FULL_SCALE) if rms > 0 else -math.inf


def frame_samples(rate: int, ms: int = 20) -> int:
    """How many samples a frame of ``ms`` milliseconds holds at ``rate``; it must be whole."""
    n, rest = divmod(rate * ms, 1000)
    if rate <= 0 or ms <= 0 or rest:
        raise ValueError(f"{ms} ms at {rate} Hz is not a whole number of samples")
    return n


def frames(pcm: PcmLike, rate: int, ms: int = 20) -> Iterator[bytes]:
    """Consecutive frames of ``ms`` milliseconds as PCM bytes, the last one padded with
    silence to full size; nothing for empty input."""
    data = samples(pcm).astype(PCM_DTYPE).tobytes()
    size = frame_samples(rate, ms) * SAMPLE_WIDTH
    for start in range(0, len(data), size):
        chunk = data[start : start + size]
        yield chunk + bytes(size - len(chunk))


# -- resampling -------------------------------------------------------------------------------
def resample(pcm: PcmLike, src_rate: int, dst_rate: int) -> bytes:
    """``pcm`` at ``src_rate`` converted to ``dst_rate``, both in Hz (any pair of rates; for
    8k↔16k, 16k↔48k the ratio is small and the filter table tiny). The output holds
    ``ceil(n * dst_rate / src_rate)`` samples; outside the input the signal is taken as silence,
    so a buffer is best resampled whole rather than frame by frame."""
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, not {src_rate} → {dst_rate}")
    x = samples(pcm).astype(np.float64)
    if src_rate == dst_rate:
        return to_pcm(x)
    g = math.gcd(src_rate, dst_rate)
    up, down = dst_rate // g, src_rate // g
    table, left = _polyphase_table(up, down)
    taps = table.shape[1]
    n_out = -(-x.size * up // down)
    # Output m lies at input position m*down/up: its taps start `left` samples before the
    # integer part, with the row of the table for the fractional part.
    padded = np.concatenate([np.zeros(left), x, np.zeros(taps)])
    out = np.empty(n_out)
    for first in range(0, n_out, CHUNK_OUTPUTS):
        m = np.arange(first, min(first + CHUNK_OUTPUTS, n_out))
        base, phase = np.divmod(m * down, up)
        windows = padded[base[:, None] + np.arange(taps)[None, :]]
        out[m] = np.einsum("ij,ij->i", windows, table[phase])
    return to_pcm(out)


@lru_cache(maxsize=16)
def _polyphase_table(up: int, down: int) -> tuple[npt.NDArray[np.float64], int]:
    """The low-pass filter for a conversion by ``up/down``, one row per output phase ``p``:
    row ``p`` holds the weights of input samples ``base - left .. base - left + taps - 1`` for
    an output at input position ``base + p/up``. Each row sums to 1 (unit gain at DC)."""
    ratio = max(1.0, down / up)  # input samples per lower-rate sample
    cutoff = 0.5 * min(1.0, up / down) * (1 + PASS_FRACTION) / 2  # cycles per input sample
    half_width = HALF_TAPS * ratio  # in input samples
    left = math.ceil(half_width) - 1
    taps = 2 * math.ceil(half_width)
    offsets = np.arange(taps) - left  # input sample index relative to base
    frac = np.arange(up)[:, None] / up
    t = frac - offsets[None, :]  # distance of each output from each input sample
    h = 2 * cutoff * np.sinc(2 * cutoff * t) * _kaiser(t / half_width)
    return h / h.sum(axis=1, keepdims=True), left


def _kaiser(u: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The Kaiser window at ``u`` in [-1, 1] (zero outside)."""
    inside = np.abs(u) < 1
    arg = KAISER_BETA * np.sqrt(np.clip(1 - u * u, 0, None))
    return np.where(inside, np.i0(arg) / np.i0(KAISER_BETA), 0.0)


# -- WAV files --------------------------------------------------------------------------------
def read_wav(path: str | Path) -> tuple[bytes, int]:
    """The PCM bytes and sample rate of a mono 16-bit PCM WAV file; any other kind of file
    is refused with a ValueError that names the file and says what it is."""
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            if channels != 1 or width != SAMPLE_WIDTH:
                kind = f"{channels}-channel {8 * width}-bit at {rate} Hz"
                raise ValueError(f"{path}: is {kind}; only mono 16-bit PCM WAV is read")
            return w.readframes(w.getnframes()), rate
    except (wave.Error, EOFError) as e:
        raise ValueError(f"{path}: not a PCM WAV file ({e or 'truncated'})") from e


def write_wav(path: str | Path, pcm: PcmLike, rate: int) -> None:
    """Write ``pcm`` as a mono 16-bit WAV file at ``rate`` Hz."""
    data = samples(pcm).astype(PCM_DTYPE).tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(SAMPLE_WIDTH)
        w.setframerate(rate)
        w.writeframes(data)
