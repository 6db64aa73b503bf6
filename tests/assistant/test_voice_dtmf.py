"""In-band DTMF (assistant/voice/dtmf.py): every key at 8 and 16 kHz, ticket numbers keyed
fast, any chunking, held and repeated keys, noise, single tones, twist, level, duration and
frequency limits, and talk-off on real Mandarin speech (../shared/eval-data/audio, used
where present, never copied) and on the IVR's own espeak-ng prompts."""

from __future__ import annotations

import doctest
import math
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.voice import dtmf as dtmf_module
from assistant.voice.dtmf import (
    COLUMNS,
    KEYS,
    PROBES,
    ROWS,
    DtmfDetector,
    detect_dtmf,
    generate_dtmf,
    goertzel,
    tone_powers,
)
from assistant.voice.pcm import read_wav, resample, rms_dbfs, samples, to_pcm, tone

ALL_KEYS = "".join(KEYS)
TICKET = "52830417"
# The shared evaluation data lives beside the repository (../shared), on these machines at
# /work/shared.
SPEECH_DIRS = (
    Path(__file__).resolve().parents[3] / "shared" / "eval-data" / "audio",
    Path("/work/shared/eval-data/audio"),
)


def mix(*parts: bytes) -> bytes:
    """Sum of PCM buffers, the shorter ones padded with silence."""
    arrays = [samples(p).astype(np.float64) for p in parts]
    total = np.zeros(max(a.size for a in arrays))
    for a in arrays:
        total[: a.size] += a
    return to_pcm(total)


def silence(ms: float, rate: int = 8000) -> bytes:
    return bytes(2 * round(rate * ms / 1000))


def pair(row: float, col: float, ms: float, rate: int = 8000, amplitude: float = 8000) -> bytes:
    """A tone pair at any two frequencies (real phones are off by up to 1.5 %)."""
    t = np.arange(round(rate * ms / 1000)) / rate
    return to_pcm(amplitude * (np.sin(2 * np.pi * row * t) + np.sin(2 * np.pi * col * t)))


def fed_in_chunks(pcm: bytes, sizes: Iterator[int], rate: int = 8000) -> str:
    detector = DtmfDetector(rate)
    keys: list[str] = []
    start = 0
    while start < len(pcm):
        size = next(sizes)
        keys += detector.feed(pcm[start : start + size])
        start += size
    return "".join(keys)


def repeat(size: int) -> Iterator[int]:
    while True:
        yield size


# -- keys and key sequences -------------------------------------------------------------------
@pytest.mark.parametrize("rate", [8000, 16000])
def test_all_sixteen_keys(rate: int) -> None:
    assert ALL_KEYS == "123A456B789C*0#D"
    assert detect_dtmf(generate_dtmf(ALL_KEYS, rate=rate), rate) == ALL_KEYS


@pytest.mark.parametrize("rate", [8000, 16000])
def test_ticket_number_keyed_fast(rate: int) -> None:
    pcm = generate_dtmf(TICKET, rate=rate, tone_ms=60, gap_ms=60)
    assert detect_dtmf(pcm, rate) == TICKET


def test_keys_are_returned_as_each_press_is_recognised() -> None:
    detector = DtmfDetector()
    assert detector.feed(generate_dtmf("5", tone_ms=60, gap_ms=0)) == ["5"]
    assert detector.feed(silence(60)) == []
    assert detector.feed(generate_dtmf("#", tone_ms=60, gap_ms=60)) == ["#"]


@pytest.mark.parametrize("size", [80, 160, 333, 320, 960, 2])
def test_chunk_boundaries_do_not_matter(size: int) -> None:
    pcm = generate_dtmf(ALL_KEYS + TICKET, tone_ms=60, gap_ms=60)
    assert fed_in_chunks(pcm, repeat(size)) == ALL_KEYS + TICKET


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_chunk_sizes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = (int(n) for n in iter(lambda: rng.integers(1, 1200), None))
    pcm = generate_dtmf(TICKET + "*#", rate=16000, tone_ms=60, gap_ms=60)
    assert fed_in_chunks(pcm, sizes, rate=16000) == TICKET + "*#"


def test_int16_arrays_are_fed_like_bytes() -> None:
    x = samples(generate_dtmf(TICKET, tone_ms=60, gap_ms=60))
    detector = DtmfDetector()
    keys = [k for start in range(0, x.size, 160) for k in detector.feed(x[start : start + 160])]
    assert "".join(keys) == TICKET


def test_reset_forgets_a_press_in_progress() -> None:
    detector = DtmfDetector()
    assert detector.feed(generate_dtmf("7", tone_ms=200, gap_ms=0)) == ["7"]
    detector.reset()
    assert detector.feed(generate_dtmf("7", tone_ms=200, gap_ms=0)) == ["7"]


# -- one press, one key -----------------------------------------------------------------------
def test_a_held_key_counts_once() -> None:
    assert detect_dtmf(generate_dtmf("9", tone_ms=400, gap_ms=100)) == "9"
    assert detect_dtmf(generate_dtmf("9", rate=16000, tone_ms=2000), 16000) == "9"


@pytest.mark.parametrize("rate", [8000, 16000])
def test_the_same_key_twice_with_a_60_ms_gap_counts_twice(rate: int) -> None:
    assert detect_dtmf(generate_dtmf("55", rate=rate, tone_ms=60, gap_ms=60), rate) == "55"
    assert detect_dtmf(generate_dtmf("0000", rate=rate, tone_ms=80, gap_ms=60), rate) == "0000"


@pytest.mark.parametrize("offset_samples", [0, 37, 102, 150, 204])
def test_a_40_ms_pause_separates_presses(offset_samples: int) -> None:
    pcm = bytes(2 * offset_samples) + generate_dtmf("88", tone_ms=100, gap_ms=40)
    assert detect_dtmf(pcm) == "88"


@pytest.mark.parametrize("offset_samples", [0, 37, 102, 150, 204])
def test_a_10_ms_drop_out_does_not_split_a_press(offset_samples: int) -> None:
    pcm = bytes(2 * offset_samples) + generate_dtmf("88", tone_ms=100, gap_ms=10)
    assert detect_dtmf(pcm) == "8"


@pytest.mark.parametrize("offset_samples", [0, 37, 102, 150, 204])
def test_a_40_ms_tone_counts_and_a_20_ms_one_does_not(offset_samples: int) -> None:
    lead = bytes(2 * offset_samples)
    assert detect_dtmf(lead + generate_dtmf("3", tone_ms=40)) == "3"
    assert detect_dtmf(lead + generate_dtmf("3", tone_ms=20)) == ""


def test_a_different_key_counts_without_a_pause() -> None:
    assert detect_dtmf(generate_dtmf("1", tone_ms=100, gap_ms=0) + generate_dtmf("9")) == "19"


# -- what is not a key ------------------------------------------------------------------------
@pytest.mark.parametrize("freq", [*ROWS, *COLUMNS])
def test_a_single_tone_is_not_a_key(freq: float) -> None:
    assert detect_dtmf(tone(freq, 8000, ms=500, amplitude=12000)) == ""
    assert detect_dtmf(tone(freq, 16000, ms=500, amplitude=12000), 16000) == ""


@pytest.mark.parametrize(("twist_db", "heard"), [(-6, "4"), (3, "4"), (-10, ""), (6, "")])
def test_twist_limits(twist_db: float, heard: str) -> None:
    """The column tone may be up to 8 dB weaker (normal twist) or 4 dB stronger (reverse)
    than the row tone."""
    assert detect_dtmf(generate_dtmf("4", amplitude=6000, twist_db=twist_db)) == heard


@pytest.mark.parametrize(("dbfs", "heard"), [(-20, "6"), (-30, "6"), (-40, "")])
def test_minimum_level(dbfs: float, heard: str) -> None:
    """Each tone's RMS must reach -36 dBFS."""
    amplitude = 32768 * 10 ** (dbfs / 20) * math.sqrt(2)
    pcm = generate_dtmf("6", amplitude=amplitude)
    assert rms_dbfs(pcm[:1280]) == pytest.approx(dbfs + 3.01, abs=0.05)  # the pair's level
    assert detect_dtmf(pcm) == heard


@pytest.mark.parametrize(("deviation", "heard"), [(-0.015, True), (0.015, True), (0.035, False)])
def test_frequency_tolerance(deviation: float, heard: bool) -> None:
    """Q.24: keys 1.5 % off nominal are accepted, 3.5 % off rejected."""
    for r, row in enumerate(ROWS):
        for c, col in enumerate(COLUMNS):
            pcm = pair(row * (1 + deviation), col * (1 + deviation), ms=80) + silence(80)
            assert detect_dtmf(pcm) == (KEYS[r][c] if heard else "")


@pytest.mark.parametrize(("third_db", "heard"), [(-6, ""), (-12, "1")])
def test_the_row_tone_must_stand_8_db_above_the_other_rows(third_db: float, heard: str) -> None:
    """Key 1 (697 + 1209 Hz) with a third tone at 852 Hz: within 8 dB of the 697 Hz tone it
    makes the row ambiguous, though the three tones still carry all the energy."""
    third = tone(ROWS[2], 8000, ms=80, amplitude=6000 * 10 ** (third_db / 20))
    assert detect_dtmf(mix(generate_dtmf("1", amplitude=6000), third)) == heard


def test_two_keys_at_once_are_not_a_key() -> None:
    both = mix(generate_dtmf("1", tone_ms=200), generate_dtmf("9", tone_ms=200))
    assert detect_dtmf(both) == ""


@pytest.mark.parametrize("snr_db", [15, 20])
@pytest.mark.parametrize("rate", [8000, 16000])
def test_keys_in_white_noise(snr_db: float, rate: int) -> None:
    keys = TICKET + "*#"
    for seed in range(5):
        rng = np.random.default_rng(seed)
        tones = samples(generate_dtmf(keys, rate=rate, tone_ms=60, gap_ms=60)).astype(float)
        # the tone pair's power is 8000² (two tones of amplitude 8000)
        noise = rng.normal(0, 8000 / 10 ** (snr_db / 20), tones.size)
        assert detect_dtmf(to_pcm(tones + noise), rate) == keys


def test_white_noise_alone_is_not_a_key() -> None:
    noise = np.random.default_rng(0).normal(0, 6000, 80000)
    assert detect_dtmf(to_pcm(noise)) == ""


# -- the measurement --------------------------------------------------------------------------
def test_goertzel_recursion_equals_the_matrix_form() -> None:
    block = np.random.default_rng(3).normal(0, 3000, 205)
    recursion = [
        max(2 * goertzel(block, f * (1 + p), 8000) / 205 for p in PROBES) for f in ROWS + COLUMNS
    ]
    assert tone_powers(block, 8000)[0] == pytest.approx(recursion, rel=1e-9)


def test_tone_power_is_the_tones_energy_in_the_block() -> None:
    block = samples(tone(941, 8000, ms=25.625, amplitude=4000)).astype(float)
    powers = tone_powers(block, 8000)[0]
    assert powers[3] == pytest.approx(4000**2 * 205 / 2, rel=0.01)
    assert max(powers[:3]) < powers[3] / 40  # the neighbouring rows, 16 dB down


# -- generate_dtmf ----------------------------------------------------------------------------
def test_generated_keys_have_the_asked_timing() -> None:
    pcm = generate_dtmf("12", rate=16000, tone_ms=60, gap_ms=40)
    x = samples(pcm)
    assert x.size == 2 * (960 + 640)
    assert np.all(x[960:1600] == 0) and np.all(x[2560:] == 0)
    assert np.count_nonzero(x[:960]) > 900
    assert generate_dtmf("") == b""


def test_generate_refuses_what_is_not_a_key() -> None:
    with pytest.raises(ValueError, match=r"not DTMF keys: 'EX' \(keys are 0-9 \* # A-D\)"):
        generate_dtmf("12EX")
    with pytest.raises(ValueError, match="overflow 16 bits"):
        generate_dtmf("1", amplitude=20000)


def test_detector_refuses_low_rates() -> None:
    with pytest.raises(ValueError, match="at least 8000 Hz"):
        DtmfDetector(rate=4000)


def test_docstring_examples() -> None:
    assert doctest.testmod(dtmf_module).failed == 0


# -- talk-off: real speech --------------------------------------------------------------------
def active_dbfs(pcm: bytes, rate: int) -> float:
    """Active speech level, roughly: the RMS of the louder half of the 20 ms frames."""
    x = samples(pcm).astype(np.float64)
    n = rate // 50
    power = np.sort(np.mean(x[: x.size // n * n].reshape(-1, n) ** 2, axis=1))
    return 10 * math.log10(float(np.mean(power[power.size // 2 :])) / 32768**2)


def scaled(pcm: bytes, gain_db: float) -> bytes:
    return to_pcm(samples(pcm).astype(np.float64) * 10 ** (gain_db / 20))


@pytest.fixture(scope="module")
def speech() -> dict[str, bytes]:
    """The Mandarin recordings (16 kHz mono) by file name."""
    found = [d for d in SPEECH_DIRS if d.is_dir() and any(d.glob("*.wav"))]
    if not found:
        where = " or ".join(map(str, dict.fromkeys(SPEECH_DIRS)))
        pytest.skip(f"no Mandarin test recordings (*.wav) in {where}: shared eval data absent")
    files = sorted(found[0].glob("*.wav"))
    recordings = {}
    for path in files:
        pcm, rate = read_wav(path)
        assert rate == 16000, path
        recordings[path.name] = pcm
    return recordings


def test_speech_is_not_keys(speech: dict[str, bytes]) -> None:
    heard = {name: detect_dtmf(pcm, 16000) for name, pcm in speech.items()}
    heard8 = {name: detect_dtmf(resample(pcm, 16000, 8000), 8000) for name, pcm in speech.items()}
    assert heard == dict.fromkeys(speech, "")
    assert heard8 == dict.fromkeys(speech, "")


def test_loud_speech_is_not_keys(speech: dict[str, bytes]) -> None:
    """Several recordings are quiet (about -40 dBFS); brought up to peak at -1 dBFS they
    pass the level test and must be told from keys by their spectrum alone."""
    loud = {}
    for name, pcm in speech.items():
        peak = float(np.max(np.abs(samples(pcm).astype(np.float64))))
        loud[name] = scaled(pcm, 20 * math.log10(29200 / peak))
    heard = {name: detect_dtmf(pcm, 16000) for name, pcm in loud.items()}
    heard8 = {name: detect_dtmf(resample(pcm, 16000, 8000), 8000) for name, pcm in loud.items()}
    assert heard == dict.fromkeys(speech, "")
    assert heard8 == dict.fromkeys(speech, "")


@pytest.mark.parametrize("rate", [16000, 8000])
def test_keys_over_speech(speech: dict[str, bytes], rate: int) -> None:
    """Speech at a telephone's nominal level (active -26 dBFS, about -20 dBm0) with keys at
    a telephone's (each tone about -9 dBm0) pressed over it, starting at three points."""
    heard = {}
    for name, pcm in speech.items():
        talk = resample(pcm, 16000, rate)
        talk = scaled(talk, -26 - active_dbfs(talk, rate))
        for start_ms in (0, 300, 700):
            keys = silence(start_ms, rate) + generate_dtmf(TICKET, rate=rate)
            heard[name, start_ms] = detect_dtmf(mix(talk, keys), rate)
    assert heard == dict.fromkeys(heard, TICKET)


# -- talk-off: the IVR's own prompts, as line echo --------------------------------------------
PROMPTS = (
    "您好，这里是区政务服务中心，现在是非工作时间。人工服务请按一，自助咨询请按二，"
    "投诉建议留言请按三，查询办理进度请按四，重听请按零。",
    "您的受理号是五二八三零四幺七，五二八三零四幺七。请在提示音后留言，按井号键结束。",
)


@pytest.mark.voice
@pytest.mark.parametrize("pitch", [50, 90, 99])
def test_espeak_prompts_are_not_keys(tmp_path: Path, pitch: int) -> None:
    """A formant synthesiser's voice is far more tone-like than a person's: at high pitch
    its harmonics pass every test but the energy fraction (without it, "555555")."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is missing: run scripts/voice-setup")
    heard = {}
    for i, text in enumerate(PROMPTS):
        path = tmp_path / f"prompt{i}.wav"
        command = ["espeak-ng", "-v", "cmn", "-p", str(pitch), "-w", str(path), text]
        subprocess.run(command, check=True, capture_output=True)
        pcm, rate = read_wav(path)
        heard[i, 8000] = detect_dtmf(resample(pcm, rate, 8000), 8000)
        heard[i, 16000] = detect_dtmf(resample(pcm, rate, 16000), 16000)
    assert heard == dict.fromkeys(heard, "")
