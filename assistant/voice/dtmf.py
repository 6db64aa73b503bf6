"""In-band DTMF: the key presses a caller's telephone sends as tone pairs inside the audio,
detected in 16-bit mono PCM (8 kHz from Asterisk AudioSocket ``slin``, 16 kHz from a browser
call), and synthesised for tests and for the WAV "caller".

Not every PBX or trunk signals keys out of band, so the call engine listens for them in the
audio too. ``DtmfDetector`` is fed audio in whatever chunks arrive and returns each key once
per press, as soon as the press is recognised.

How a press is recognised (telephone-grade rules in the manner of ITU-T Q.24):

- The audio is cut into blocks of 25.6 ms (205 samples at 8 kHz, 410 at 16 kHz), a new block
  every half block (12.8 ms). In each, the Goertzel algorithm measures the power at the four
  row (697-941 Hz) and four column (1209-1633 Hz) frequencies; its 39 Hz resolution
  separates neighbouring DTMF frequencies.
- A block holds a key when the strongest row and the strongest column tone are each at least
  ``MIN_TONE_DBFS`` (signal energy), each at least ``PEAK_RATIO_DB`` above every other tone
  of its group (one key, not two), the column tone between ``NORMAL_TWIST_DB`` below and
  ``REVERSE_TWIST_DB`` above the row tone (twist), and the two tones together carry at least
  ``ENERGY_FRACTION`` of the block's energy: voiced speech spreads its energy over many
  harmonics, a key press has nothing else. This stands in for the classic second-harmonic
  check (energy at twice a tone's frequency lowers the fraction too) and is stricter. It also
  means a block only partly filled with tone does not count, which times presses and pauses.
- A press begins when ``BLOCKS_ON`` consecutive blocks hold the same key (a tone of at least
  about 40 ms; 20 ms ones are rejected) and ends after ``BLOCKS_OFF`` consecutive blocks
  without it (a pause of about 40 ms; a 10 ms drop-out does not split a press). The same key
  counts again only after its press ended; a different key counts as soon as it is held.

>>> from assistant.voice.dtmf import DtmfDetector, generate_dtmf
>>> tones = generate_dtmf("52830417", tone_ms=60, gap_ms=60)
>>> DtmfDetector().feed(tones)
['5', '2', '8', '3', '0', '4', '1', '7']
>>> detector = DtmfDetector(rate=16000)
>>> pcm = generate_dtmf("*#", rate=16000)
>>> [digit for i in range(0, len(pcm), 640) for digit in detector.feed(pcm[i : i + 640])]
['*', '#']
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from assistant.voice.pcm import FULL_SCALE, PcmLike, samples, to_pcm

ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")  # KEYS[row][column]
_POSITION = {key: (r, c) for r, keys in enumerate(KEYS) for c, key in enumerate(keys)}

BLOCK_SECONDS = 205 / 8000  # the classic 205-point block at 8 kHz, scaled to other rates
# Each frequency is measured at its nominal value and 1.5 % either side, the tolerance Q.24
# gives senders, keeping the best: a 39 Hz wide bin alone would lose a third of a 1633 Hz tone
# that is 1.5 % off, and with it the energy-fraction test. Tones 3.5 % off still fail it.
PROBES = (-0.015, 0.0, 0.015)
# Each tone's RMS level must reach -36 dBFS (about -30 dBm0 on a G.711 line), well below the
# -25 dBm0 that Q.24 asks receivers to accept and the -6..-10 dBm0 telephones send.
MIN_TONE_DBFS = -36.0
PEAK_RATIO_DB = 8.0  # the chosen row (column) tone over every other row (column) tone
NORMAL_TWIST_DB = 8.0  # the column tone may be this much weaker than the row tone
REVERSE_TWIST_DB = 4.0  # ... or this much stronger
ENERGY_FRACTION = 0.7  # of the block's energy in the two tones
BLOCKS_ON = 2  # consecutive blocks with the key to begin a press (about 38 ms of tone)
BLOCKS_OFF = 3  # consecutive blocks without it to end one (about 40 ms of pause)


def goertzel(block: npt.ArrayLike, freq: float, rate: int) -> float:
    """The power |X(f)|² of ``block`` at ``freq`` Hz by the Goertzel recursion, one sample at
    a time. ``tone_powers`` computes the same quantity for all probes and many blocks at once
    as a matrix product (fast in numpy); this is the reference it is checked against."""
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in np.asarray(block, dtype=np.float64).tolist():
        s1, s2 = x + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def tone_powers(blocks: npt.ArrayLike, rate: int) -> npt.NDArray[np.float64]:
    """The power of each block (a row of ``blocks``, or one 1-D block) at the eight DTMF
    frequencies, rows first, as 2|X(f)|²/N (the tone's energy in the block: a sine of
    amplitude A gives A²N/2), each the best of its ``PROBES``. This is the Goertzel quantity,
    computed for all probes and blocks in one matrix product."""
    x = np.atleast_2d(np.asarray(blocks, dtype=np.float64))
    parts = x @ _basis(x.shape[1], rate)
    half = parts.shape[1] // 2
    power = 2 * (parts[:, :half] ** 2 + parts[:, half:] ** 2) / x.shape[1]
    return power.reshape(len(x), 8, len(PROBES)).max(axis=2)


@lru_cache(maxsize=8)
def _basis(size: int, rate: int) -> npt.NDArray[np.float64]:
    """Cosines then sines of every probe frequency (tone by tone) over ``size`` samples."""
    probes = np.outer(ROWS + COLUMNS, 1 + np.array(PROBES)).ravel()
    angles = 2 * np.pi * np.outer(np.arange(size), probes) / rate
    return np.hstack([np.cos(angles), np.sin(angles)])


class DtmfDetector:
    """Streaming DTMF detection for one call's audio at ``rate`` Hz (8000 or more).

    ``feed`` takes PCM of any length (bytes, odd byte counts included, or int16 arrays) and
    returns the keys whose presses were recognised in it; a press that straddles chunks is
    found the same as in one buffer.
    """

    def __init__(self, rate: int = 8000) -> None:
        if rate < 8000:
            raise ValueError(f"DTMF detection needs at least 8000 Hz audio, not {rate}")
        self.rate = rate
        self.block = round(BLOCK_SECONDS * rate)
        self.hop = self.block // 2
        # Powers are compared as 2|X|²/N, the tone's energy over the block (N × its mean power).
        self._min_power = self.block * (FULL_SCALE * 10 ** (MIN_TONE_DBFS / 20)) ** 2
        self.reset()

    def reset(self) -> None:
        """Forget all audio and any press in progress (a new call)."""
        self._buffer = np.zeros(0)
        self._odd_byte = b""
        self._key: str | None = None  # the key held down, once recognised
        self._candidate: str | None = None
        self._hits = 0  # consecutive blocks with the candidate
        self._misses = 0  # consecutive blocks without the held key

    def feed(self, pcm: PcmLike) -> list[str]:
        """Add audio; the keys ("0"-"9", "*", "#", "A"-"D") of presses recognised in it."""
        if isinstance(pcm, np.ndarray):
            if self._odd_byte:
                raise ValueError("an int16 array after bytes that ended mid-sample")
            x = samples(pcm)
        else:
            data = self._odd_byte + bytes(pcm)
            cut = len(data) - len(data) % 2
            x, self._odd_byte = samples(data[:cut]), data[cut:]
        self._buffer = np.concatenate([self._buffer, x.astype(np.float64)])
        count = (self._buffer.size - self.block) // self.hop + 1
        if count <= 0:
            return []
        view = np.lib.stride_tricks.sliding_window_view(self._buffer, self.block)
        blocks = view[: count * self.hop : self.hop]
        keys = [self._step(key) for key in self._classify(blocks)]
        self._buffer = self._buffer[count * self.hop :].copy()
        return [key for key in keys if key is not None]

    def _classify(self, blocks: npt.NDArray[np.float64]) -> list[str | None]:
        """The key each block holds, if any."""
        powers = tone_powers(blocks, self.rate)
        energy = np.einsum("ij,ij->i", blocks, blocks)
        return [self._key_of(p, e) for p, e in zip(powers, energy, strict=True)]

    def _key_of(self, power: npt.NDArray[np.float64], energy: float) -> str | None:
        rows, cols = power[:4], power[4:]
        r, c = int(np.argmax(rows)), int(np.argmax(cols))
        row, col = float(rows[r]), float(cols[c])
        if min(row, col) < self._min_power or row + col < ENERGY_FRACTION * energy:
            return None
        if not (_alone(rows, r) and _alone(cols, c)):
            return None
        twist = 10 * math.log10(col / row)
        if not -NORMAL_TWIST_DB <= twist <= REVERSE_TWIST_DB:
            return None
        return KEYS[r][c]

    def _step(self, block_key: str | None) -> str | None:
        """Advance the press state by one block; the key if a press was just recognised."""
        if block_key is not None and block_key == self._key:
            self._misses, self._candidate, self._hits = 0, None, 0
            return None
        self._misses += 1
        if self._misses >= BLOCKS_OFF:
            self._key = None
        if block_key is None or block_key != self._candidate:
            self._candidate, self._hits = block_key, int(block_key is not None)
        else:
            self._hits += 1
        if self._candidate is not None and self._hits >= BLOCKS_ON:
            self._key, self._candidate, self._hits, self._misses = block_key, None, 0, 0
            return block_key
        return None


def _alone(group: npt.NDArray[np.float64], best: int) -> bool:
    """Whether the strongest tone of a group stands ``PEAK_RATIO_DB`` above the others."""
    others = np.delete(group, best)
    return bool(np.all(others * 10 ** (PEAK_RATIO_DB / 10) <= group[best]))


def detect_dtmf(pcm: PcmLike, rate: int = 8000) -> str:
    """The keys pressed in a whole recording, as one string."""
    return "".join(DtmfDetector(rate).feed(pcm))


def generate_dtmf(
    digits: str,
    rate: int = 8000,
    tone_ms: float = 80,
    gap_ms: float = 80,
    amplitude: float = 8000,
    twist_db: float = 0.0,
) -> bytes:
    """PCM of ``digits`` keyed in: each key's tone pair for ``tone_ms`` then ``gap_ms`` of
    silence. ``amplitude`` is each tone's peak (8000, about -15 dBFS, is a telephone's
    level); ``twist_db`` sets the column tone that many dB above (below, if negative) the
    row tone."""
    unknown = sorted(set(digits) - set(_POSITION))
    if unknown:
        raise ValueError(f"not DTMF keys: {''.join(unknown)!r} (keys are 0-9 * # A-D)")
    col_amplitude = amplitude * 10 ** (twist_db / 20)
    if amplitude + col_amplitude > 32767:
        raise ValueError(f"tones of {amplitude:g} and {col_amplitude:g} overflow 16 bits")
    t = np.arange(round(rate * tone_ms / 1000)) / rate
    gap = np.zeros(round(rate * gap_ms / 1000))
    parts: list[npt.NDArray[np.float64]] = []
    for key in digits:
        r, c = _POSITION[key]
        pair = amplitude * np.sin(2 * np.pi * ROWS[r] * t) + col_amplitude * np.sin(
            2 * np.pi * COLUMNS[c] * t
        )
        parts += [pair, gap]
    return to_pcm(np.concatenate(parts)) if parts else b""
