"""The hotline's call audio (assistant/voice/prompts.py): prompts cut at their placeholders
and rendered once, 受理号 from digit clips, the centre's recordings, speech failing without
the call failing, answer texts made speakable; with the fake engine (``ToneSynthesizer``,
whose ``texts`` shows what was synthesised) and with real espeak-ng (marker ``voice``)."""

from __future__ import annotations

import doctest
import io
import logging
import os
import threading
import time
import wave
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.voice import prompts as prompts_module
from assistant.voice.menu import IvrConfig, VoicemailNode
from assistant.voice.pcm import resample, rms_dbfs, samples, tone
from assistant.voice.prompts import (
    CLAUSE_PAUSE_S,
    DIGIT_GAP_S,
    GROUP_GAP_S,
    PROMPT_GAP_S,
    WORD_PAUSE_S,
    CallAudio,
    speakable,
)
from banshi.settings import SAMPLE_KB_DIR
from kiosk.errors import SpeechUnavailable
from kiosk.tts import EspeakSynthesizer, SpeechCache, ToneSynthesizer

RATE = 8000
PIECE = int(0.4 * RATE)  # samples of one fake render (0.4 s at 16 kHz) at the call's rate
CENTRE = {"centre": "青禾区政务服务中心", "hotline": "12345"}
SAMPLE_VALUES = {
    "centre": "青禾区政务服务中心",
    "hotline": "12345",
    "phone": "8123 4500",
    "hours": "工作日上午9:00至12:00、下午13:30至17:00",
}
PROMPTS = {
    "welcome": "您好，欢迎致电{centre}。",
    "main_menu": "留言请按1；查询请按4。",
    "no_input": "抱歉，没有收到您的按键。",
    "invalid": "抱歉，您的按键有误。",
    "voicemail_record": "请在提示音后留言，最长{seconds}秒，说完请按#号键。",
    "voicemail_done": "受理号是：{number}。",
    "progress_status": "受理号{number}的办理进度：{status}。",
    "consult_answer": "{answer}",
    "goodbye": "感谢您的来电，再见。如需帮助请拨打{hotline}。",
}


def make_config(base_dir: Path, **prompts: str) -> IvrConfig:
    """A small valid ivr.yml: a menu, a voicemail of 60 s, hang-ups; recordings would be in
    ``base_dir/prompts/``."""
    data: dict[str, Any] = {
        "defaults": {"no_input": "no_input", "invalid": "invalid", "give_up": "bye"},
        "welcome": {"in_hours": "welcome", "out_of_hours": "welcome"},
        "prompts": {**PROMPTS, **prompts},
        "menu": {
            "main": {"kind": "menu", "prompt": "main_menu", "keys": {1: "voicemail"}},
            "voicemail": {
                "kind": "voicemail",
                "prompt": "voicemail_record",
                "max_record_s": 60,
                "next": "done",
            },
            "done": {"kind": "hangup", "prompt": ["voicemail_done", "goodbye"]},
            "bye": {"kind": "hangup", "prompt": "goodbye"},
        },
    }
    return IvrConfig.parse(data, base_dir)


def silence(seconds: float) -> int:
    return round(seconds * RATE)


def write_stereo_wav(path: Path, left: bytes, right: bytes, rate: int) -> None:
    frames = np.stack([samples(left), samples(right)], axis=1).astype("<i2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


def voiced_bursts(pcm: bytes, rate: int = RATE, floor_dbfs: float = -45.0) -> list[float]:
    """The lengths in seconds of the stretches of sound: 20 ms frames above ``floor_dbfs``,
    gaps under 60 ms bridged (inside a syllable), bursts under 60 ms dropped (clicks)."""
    n = rate // 50
    x = samples(pcm).astype(np.float64)
    frames = x[: x.size // n * n].reshape(-1, n)
    rms = np.sqrt((frames**2).mean(axis=1))
    loud = 20 * np.log10(np.maximum(rms, 1e-9) / 32768) > floor_dbfs
    runs: list[list[int]] = []  # [first, last] frame of each burst
    for i in np.flatnonzero(loud):
        if runs and i - runs[-1][1] <= 3:
            runs[-1][1] = int(i)
        else:
            runs.append([int(i), int(i)])
    return [(b - a + 1) / 50 for a, b in runs if b - a + 1 >= 3]


class Pitched:
    """A fake whose tone depends on the text (the kiosk's fake beeps alike for every text),
    so that audio put together from different pieces differs."""

    key = "pitched/v1"

    def __init__(self) -> None:
        self.texts: list[str] = []

    def synthesize(self, text: str) -> bytes:
        self.texts.append(text)
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(tone(300 + 20 * (zlib.crc32(text.encode()) % 50), 16000, ms=400))
        return buffer.getvalue()


class Failing:
    """An engine that is down (espeak-ng missing) until ``up`` is set; counts its renders."""

    key = "failing/v1"

    def __init__(self) -> None:
        self.up = False
        self.calls = 0
        self.fake = ToneSynthesizer()

    def synthesize(self, text: str) -> bytes:
        self.calls += 1
        if not self.up:
            raise SpeechUnavailable("espeak-ng is not installed (run scripts/voice-setup)")
        return self.fake.synthesize(text)


@pytest.fixture
def fake() -> ToneSynthesizer:
    return ToneSynthesizer()


@pytest.fixture
def audio(tmp_path: Path, fake: ToneSynthesizer) -> CallAudio:
    return CallAudio(make_config(tmp_path), fake, tmp_path / "cache", CENTRE)


# -- pieces and caching ------------------------------------------------------------------------
def test_a_prompt_is_cut_at_its_placeholders(audio: CallAudio, fake: ToneSynthesizer) -> None:
    pcm = audio.prompt("progress_status", number="20261234", status="已办结")
    # the texts, the status and the six different digits, each once; never the number
    assert fake.texts == ["受理号", "二", "零", "六", "幺", "三", "四", "的办理进度：", "已办结"]
    # 受理号 · 8 digit clips · 的办理进度： · 已办结 (the 。 after it is no audio)
    expected = (
        11 * PIECE
        + silence(WORD_PAUSE_S)  # 受理号|2
        + 7 * silence(DIGIT_GAP_S)
        + silence(WORD_PAUSE_S)  # 4|的
        + silence(CLAUSE_PAUSE_S)  # ：|已
    )
    assert len(pcm) == 2 * expected


def test_a_second_call_synthesises_nothing(tmp_path: Path) -> None:
    fake = Pitched()
    audio = CallAudio(make_config(tmp_path), fake, tmp_path / "cache", CENTRE)
    first = audio.prompt("progress_status", number="20261234", status="已办结")
    asked = list(fake.texts)
    assert audio.prompt("progress_status", number="20261234", status="已办结") == first
    other = audio.prompt("progress_status", number="43216202", status="已办结")
    assert other != first and len(other) == len(first)
    assert fake.texts == asked  # another number: the same digit clips


def test_a_restarted_service_reads_the_disk_cache(tmp_path: Path, fake: ToneSynthesizer) -> None:
    config = make_config(tmp_path)
    first = CallAudio(config, fake, tmp_path / "cache", CENTRE).prompt("welcome")
    assert fake.texts == ["您好，欢迎致电", "青禾区政务服务中心"]
    again = ToneSynthesizer()
    assert CallAudio(config, again, tmp_path / "cache", CENTRE).prompt("welcome") == first
    assert again.texts == []


def test_the_output_is_at_the_calls_rate(tmp_path: Path, fake: ToneSynthesizer) -> None:
    config = make_config(tmp_path)
    eight = CallAudio(config, fake, tmp_path / "cache", CENTRE).prompt("no_input")
    sixteen = CallAudio(config, fake, tmp_path / "cache", CENTRE, rate=16000).prompt("no_input")
    assert len(eight) == 2 * PIECE  # 0.4 s at 8 kHz
    assert len(sixteen) == 2 * 2 * PIECE  # 0.4 s at 16 kHz
    assert fake.texts == ["抱歉，没有收到您的按键。"]  # the same WAV, converted for each
    assert rms_dbfs(eight) == pytest.approx(rms_dbfs(sixteen), abs=0.5)


def test_prompts_are_joined_with_a_pause(audio: CallAudio) -> None:
    both = audio.prompts(["voicemail_done", "goodbye"], number="20261234")
    done = audio.prompt("voicemail_done", number="20261234")
    goodbye = audio.prompt("goodbye")
    assert both == done + bytes(2 * silence(PROMPT_GAP_S)) + goodbye
    # 感谢您的来电，再见。如需帮助请拨打 · 幺二三四五 (the hotline: read digit by digit)
    assert len(goodbye) == 2 * (2 * PIECE + silence(WORD_PAUSE_S))


def test_warm_renders_every_fixed_piece_exactly_once(
    audio: CallAudio, fake: ToneSynthesizer
) -> None:
    made = audio.warm()
    assert sorted(fake.texts) == sorted(
        [
            *"零幺二三四五六七八九",
            "您好，欢迎致电",
            "青禾区政务服务中心",
            "留言请按1；查询请按4。",
            "抱歉，没有收到您的按键。",
            "抱歉，您的按键有误。",
            "请在提示音后留言，最长",
            "60",  # the voicemail step's max_record_s
            "秒，说完请按井号键。",
            "受理号是：",
            "受理号",
            "的办理进度：",
            "感谢您的来电，再见。如需帮助请拨打",
            "幺二三四五",
        ]
    )
    assert made == len(fake.texts) == 23
    assert audio.warm() == 0
    assert len(fake.texts) == 23
    # a call now: the fixed menu and a number cost no synthesis, only the status does
    audio.prompts(["welcome", "main_menu", "no_input", "invalid", "goodbye"])
    audio.prompt("voicemail_record", seconds=60)
    audio.prompts(["voicemail_done", "progress_status"], number="20269876", status="已受理")
    assert fake.texts[23:] == ["已受理"]


def test_warm_covers_the_sample_hotline(tmp_path: Path, fake: ToneSynthesizer) -> None:
    config = IvrConfig.load(SAMPLE_KB_DIR / "ivr.yml")
    audio = CallAudio(config, fake, tmp_path, SAMPLE_VALUES)
    made = audio.warm()
    assert made == len(fake.texts) == len(set(fake.texts))
    assert not [t for t in fake.texts if "{" in t or "}" in t]
    assert set("零幺二三四五六七八九") <= set(fake.texts)
    assert (
        "人工服务请按1；自助咨询请按2；投诉、建议或留言请按3；查询办理进度请按4；重听请按0。"
        in (fake.texts)
    )
    assert "工作日上午9点至12点、下午13点30分至17点" in fake.texts  # {hours}
    assert "120" in fake.texts  # {seconds} of the voicemail and message steps
    seconds = {n.max_record_s for n in config.nodes.values() if isinstance(n, VoicemailNode)}
    assert seconds == {120}
    warmed = len(fake.texts)
    per_call = {
        "number": "20261234",
        "status": "已受理，正在办理",
        "answer": "带户口簿原件即可。",
        "question": "居住证怎么办",
        "next_open": "明天（周一）上午9:00",
        "seconds": 120,
    }
    for prompt_id in config.prompts:
        assert audio.prompt(prompt_id, **per_call)
    assert sorted(fake.texts[warmed:]) == sorted(
        ["已受理，正在办理", "带户口簿原件即可。", "明天（周一）上午9点"]
    )


def test_digits_are_read_from_the_clips(audio: CallAudio, fake: ToneSynthesizer) -> None:
    phone = audio.digits("8123 4500")
    assert len(phone) == 2 * (8 * PIECE + 6 * silence(DIGIT_GAP_S) + silence(GROUP_GAP_S))
    assert fake.texts == ["八", "幺", "二", "三", "四", "五", "零"]
    keys = audio.digits("1*#")
    assert fake.texts[7:] == ["星", "井"]
    assert len(keys) == 2 * (3 * PIECE + 2 * silence(DIGIT_GAP_S))


def test_the_record_tone(audio: CallAudio) -> None:
    beep = audio.beep()
    assert len(beep) == 2 * silence(0.3)
    x = samples(beep).astype(np.float64)
    assert np.argmax(np.abs(np.fft.rfft(x))) * RATE / x.size == pytest.approx(1000, abs=5)


def test_a_missing_placeholder_is_the_callers_bug(audio: CallAudio, fake: ToneSynthesizer) -> None:
    with pytest.raises(ValueError, match="needs number"):
        audio.prompt("voicemail_done")
    # the engine passes every value it has, None or "" for what it does not know yet
    assert len(audio.prompt("voicemail_done", number=None, status=None)) == 2 * PIECE
    # 请在提示音后留言，最长 · 秒，说完请按井号键。
    assert len(audio.prompt("voicemail_record", seconds="")) == 2 * (
        2 * PIECE + silence(WORD_PAUSE_S)
    )
    assert "None" not in fake.texts
    with pytest.raises(KeyError):
        audio.prompt("no_such_prompt")


def test_many_calls_at_once(tmp_path: Path) -> None:
    fake = Pitched()
    audio = CallAudio(make_config(tmp_path), fake, tmp_path / "cache", CENTRE)
    results: list[bytes] = []

    def call(n: int) -> None:
        number = f"2026{n % 4:04d}"
        results.append(
            audio.prompts(["welcome", "progress_status"], number=number, status="已受理")
        )

    threads = [threading.Thread(target=call, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 4  # four different numbers, the same audio for each
    assert len(fake.texts) == len(set(fake.texts))  # nothing rendered twice


def test_answers_leave_memory_before_the_menu(
    tmp_path: Path, fake: ToneSynthesizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prompts_module, "MEMORY_BYTES", 3 * 2 * PIECE)  # three answers
    audio = CallAudio(make_config(tmp_path), fake, tmp_path / "cache", CENTRE)
    audio.prompt("main_menu")
    for n in range(5):
        audio.say(f"第{n}个回答。")
    state = audio.status()
    assert state["memory_pieces"] == 1 + 3
    assert state["memory_bytes"] == 4 * 2 * PIECE
    asked = len(fake.texts)
    audio.say("第0个回答。")  # out of memory, still on disk
    audio.prompt("main_menu")
    assert len(fake.texts) == asked


# -- recordings --------------------------------------------------------------------------------
def test_a_recording_is_played_instead_of_speech(tmp_path: Path, fake: ToneSynthesizer) -> None:
    config = make_config(tmp_path)
    source = tone(440, 16000, ms=500)
    write_stereo_wav(tmp_path / "prompts" / "main_menu.wav", source, source, 16000)
    audio = CallAudio(config, fake, tmp_path / "cache", CENTRE)
    pcm = audio.prompt("main_menu")
    assert len(pcm) == 2 * silence(0.5)  # 16 kHz stereo → 8 kHz mono, same duration
    assert pcm == resample(source, 16000, RATE)
    assert rms_dbfs(pcm) == pytest.approx(-9.0, abs=0.1)  # the level of the recording
    assert fake.texts == []
    assert audio.warm() == 22  # the other pieces; the recorded prompt is loaded, not spoken
    assert "留言请按1；查询请按4。" not in fake.texts
    assert audio.status()["recorded_prompts"] == 1
    assert audio.status()["recordings_not_played"] == []


def test_a_recording_with_a_fixed_placeholder_is_played(
    tmp_path: Path, fake: ToneSynthesizer
) -> None:
    write_stereo_wav(tmp_path / "prompts" / "welcome.wav", tone(440, 8000, 300), bytes(4800), 8000)
    audio = CallAudio(make_config(tmp_path), fake, tmp_path / "cache", CENTRE)
    pcm = audio.prompt("welcome")  # 欢迎致电{centre}: the centre's name is in the recording
    assert len(pcm) == 2 * silence(0.3)
    assert rms_dbfs(pcm) == pytest.approx(-9.0 - 6.0, abs=0.1)  # left and silent right mixed
    assert fake.texts == []


def test_a_changed_recording_is_reloaded(
    tmp_path: Path, fake: ToneSynthesizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "prompts" / "main_menu.wav"
    first = tone(440, 16000, ms=500)
    write_stereo_wav(path, first, first, 16000)
    audio = CallAudio(make_config(tmp_path), fake, tmp_path / "cache", CENTRE)
    loads: list[int] = []
    real = prompts_module._pcm_at

    def counted(wav: bytes, rate: int) -> bytes:
        loads.append(rate)
        return real(wav, rate)

    monkeypatch.setattr(prompts_module, "_pcm_at", counted)
    assert len(audio.prompt("main_menu")) == 2 * silence(0.5)
    assert len(audio.prompt("main_menu")) == 2 * silence(0.5)
    assert len(loads) == 1  # converted once
    second = tone(440, 16000, ms=250)
    write_stereo_wav(path, second, second, 16000)
    later = path.stat().st_mtime_ns + 2_000_000_000
    os.utime(path, ns=(later, later))
    assert len(audio.prompt("main_menu")) == 2 * silence(0.25)
    assert len(loads) == 2
    assert fake.texts == []


def test_a_broken_recording_falls_back_to_speech(
    tmp_path: Path, fake: ToneSynthesizer, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "prompts" / "main_menu.wav"
    path.parent.mkdir()
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt nothing more")
    audio = CallAudio(make_config(tmp_path), fake, tmp_path / "cache", CENTRE)
    with caplog.at_level(logging.WARNING, logger="assistant.voice.prompts"):
        first = audio.prompt("main_menu")
        assert audio.prompt("main_menu") == first
    assert len(first) == 2 * PIECE
    assert fake.texts == ["留言请按1；查询请按4。"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "main_menu.wav is not a usable WAV" in warnings[0]
    assert audio.status()["recordings_not_played"] == ["main_menu"]


def test_a_recording_of_a_prompt_with_a_number_is_not_played(
    tmp_path: Path, fake: ToneSynthesizer, caplog: pytest.LogCaptureFixture
) -> None:
    source = tone(440, 8000, ms=500)
    write_stereo_wav(tmp_path / "prompts" / "voicemail_done.wav", source, source, 8000)
    audio = CallAudio(make_config(tmp_path), fake, tmp_path / "cache", CENTRE)
    with caplog.at_level(logging.WARNING, logger="assistant.voice.prompts"):
        pcm = audio.prompt("voicemail_done", number="20261234")
        audio.prompt("voicemail_done", number="20261235")
    assert fake.texts[0] == "受理号是："  # spoken whole, the number from the clips
    assert len(pcm) == 2 * (9 * PIECE + silence(CLAUSE_PAUSE_S) + 7 * silence(DIGIT_GAP_S))
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "says {number}, which changes each call" in warnings[0]
    assert audio.status()["recordings_not_played"] == ["voicemail_done"]


# -- speech unavailable ------------------------------------------------------------------------
def test_without_speech_the_call_hears_tones_and_recordings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN espeak-ng missing and main_menu recorded WHEN a call plays prompts THEN the
    recording plays, the rest are tones, the failure is logged once and the engine is not
    asked again until RETRY_S has passed."""
    source = tone(440, 16000, ms=500)
    write_stereo_wav(tmp_path / "prompts" / "main_menu.wav", source, source, 16000)
    engine = Failing()
    audio = CallAudio(make_config(tmp_path), engine, tmp_path / "cache", CENTRE)
    with caplog.at_level(logging.WARNING, logger="assistant.voice.prompts"):
        assert audio.warm() == 0
        assert audio.prompt("welcome") == audio.fallback()
        assert audio.prompt("voicemail_done", number="20261234") == audio.fallback()
        assert audio.say("居住证在1楼A区办理。") == audio.fallback()
        assert audio.digits("20261234") == audio.fallback()
    assert audio.prompt("main_menu") == resample(source, 16000, RATE)
    assert len(audio.beep()) == 2 * silence(0.3)
    assert engine.calls == 1  # the first failure; the rest wait for the retry
    assert [r.getMessage() for r in caplog.records] == [
        "ivr prompts: speech unavailable, callers hear tones "
        "(espeak-ng is not installed (run scripts/voice-setup))"
    ]
    state = audio.status()
    assert state["speech"] is False
    assert state["reason"] == "espeak-ng is not installed (run scripts/voice-setup)"
    fallback = audio.fallback()
    assert 0.5 < len(fallback) / 2 / RATE < 1.0 and rms_dbfs(fallback) > -20

    class Later:  # RETRY_S later
        @staticmethod
        def monotonic() -> float:
            return time.monotonic() + prompts_module.RETRY_S + 1

    engine.up = True  # installed meanwhile
    monkeypatch.setattr(prompts_module, "time", Later)
    assert len(audio.prompt("no_input")) == 2 * PIECE
    assert audio.status()["speech"] is True
    assert audio.status()["reason"] is None


def test_status_reports_the_engine_and_caches(audio: CallAudio) -> None:
    audio.warm()
    state = audio.status()
    assert state == {
        "engine": "tone/v1",
        "speech": True,
        "reason": None,
        "recorded_prompts": 0,
        "recordings_not_played": [],
        "memory_pieces": 23,
        "memory_bytes": 23 * 2 * PIECE,
        "disk_files": 23,
        "disk_bytes": state["disk_bytes"],
    }
    assert int(str(state["disk_bytes"])) > 23 * 2 * 0.4 * 16000  # 16 kHz WAVs


def test_status_names_a_missing_engine_without_rendering(tmp_path: Path) -> None:
    audio = CallAudio(
        make_config(tmp_path), EspeakSynthesizer(program="no-espeak-here"), tmp_path, CENTRE
    )
    state = audio.status()
    assert state["speech"] is False
    assert "no-espeak-here is not installed" in str(state["reason"])


# -- texts made speakable ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        # links, as chat answers carry them, go with the word introducing them
        (
            "可在“青禾办”小程序查询进度。\n链接：https://zwfw.example.cn/guides/id-card-first",
            "可在“青禾办”小程序查询进度。",
        ),
        ("详见https://zwfw.example.cn/p?id=3&x=1。窗口办理。", "窗口办理。"),
        ("可在网上办理，详见www.example.cn。", "可在网上办理。"),
        ("[查看办事指南](https://zwfw.example.cn/guides/1)", "查看办事指南"),
        # list markup and headings
        (
            "需要材料：\n- 户口簿原件\n- **近期照片**\n1. 填写申请表",
            "需要材料：户口簿原件。近期照片。填写申请表",
        ),
        ("【居住证 · 办理材料】身份证原件。", "居住证，办理材料，身份证原件。"),
        ("## 办理地点\n1楼A区", "办理地点。1楼A区"),
        ("2.5万元以下", "2.5万元以下"),  # a decimal at a line's start is no numbering
        # keys
        ("说完请按#号键", "说完请按井号键"),
        ("返回请按*号键", "返回请按星号键"),
        # numbers: long ones digit by digit (幺), quantities and short ones as numbers
        ("拨打12345热线", "拨打幺二三四五热线"),
        ("咨询电话：8123 4500", "咨询电话：八幺二三，四五零零"),
        ("电话0571-88886666", "电话零五七幺，八八八八六六六六"),
        ("受理号20261034", "受理号二零二六幺零三四"),
        ("最高补贴10000元", "最高补贴10000元"),
        ("工本费20元，15个工作日", "工本费20元，15个工作日"),
        ("2026年1月1日起施行", "二零二六年1月1日起施行"),
        # times and ranges
        ("上午9:00至12:00", "上午9点至12点"),
        ("下午1:30-5:05", "下午1点30分至5点零5分"),
        ("3-5个工作日", "3至5个工作日"),
        ("A01—A04窗口", "A01至A04窗口"),
    ],
)
def test_speakable(text: str, spoken: str) -> None:
    assert speakable(text) == spoken


def test_a_long_answer_is_cut_at_a_sentence_end() -> None:
    answer = "带户口簿原件即可。" + "照片在窗口现场免费拍，不用自带。" * 20
    spoken = speakable(answer, limit=200)
    assert spoken.endswith("不用自带。")
    assert 180 <= len(spoken) <= 200
    # one sentence longer than the limit: cut at a comma
    assert speakable("甲" * 150 + "，" + "乙" * 100, limit=200) == "甲" * 150 + "。"
    # the knowledge base cut it already: the unfinished sentence goes
    assert speakable("受理之日起15个工作日内制证。领证可凭受理回执到原窗…", limit=200) == (
        "受理之日起15个工作日内制证。"
    )


def test_an_answer_is_spoken_clean(audio: CallAudio, fake: ToneSynthesizer) -> None:
    answer = "办理地点是1楼A区。\n链接：https://zwfw.example.cn/guides/id-card-first\n- 电话12345"
    audio.prompt("consult_answer", answer=answer)
    audio.say(answer)
    assert fake.texts == ["办理地点是1楼A区。电话幺二三四五"]  # the same text: rendered once
    assert audio.say("https://zwfw.example.cn") == b""  # nothing to say


def test_docstring_examples() -> None:
    assert doctest.testmod(prompts_module).failed == 0


# -- espeak-ng through pyttsx3 -----------------------------------------------------------------
@pytest.mark.voice
def test_espeak_speaks_the_sample_main_menu(espeak: EspeakSynthesizer, tmp_path: Path) -> None:
    config = IvrConfig.load(SAMPLE_KB_DIR / "ivr.yml")
    audio = CallAudio(config, espeak, tmp_path, SAMPLE_VALUES)
    menu = audio.prompt("main_menu")
    seconds = len(menu) / 2 / RATE
    assert 5.0 < seconds < 30.0  # five choices: about 13 s at rate 160
    assert rms_dbfs(menu) > -35.0  # speech, not silence
    # 8 kHz: as long as the engine's own WAV (at its 22 kHz), less the silence trimmed
    rendered = SpeechCache(tmp_path / "fixed", espeak).path_for(config.prompt_text("main_menu"))
    with wave.open(str(rendered)) as w:
        engine_seconds = w.getnframes() / w.getframerate()
    assert engine_seconds - 1.5 < seconds <= engine_seconds
    assert audio.prompt("main_menu") == menu


@pytest.mark.voice
def test_espeak_reads_a_number_digit_by_digit(espeak: EspeakSynthesizer, tmp_path: Path) -> None:
    config = IvrConfig.load(SAMPLE_KB_DIR / "ivr.yml")
    audio = CallAudio(config, espeak, tmp_path, SAMPLE_VALUES)
    number = audio.digits("20261234")
    seconds = len(number) / 2 / RATE
    assert 2.0 < seconds < 6.0
    assert rms_dbfs(number) > -35.0
    bursts = voiced_bursts(number)
    assert len(bursts) == 8  # one syllable per digit, with gaps between
    assert all(0.1 < b < 0.6 for b in bursts)
    # the number inside a prompt comes from the same clips: only the prompt's texts are new
    rendered = len(list(tmp_path.rglob("*.wav")))
    confirm = audio.prompt("progress_confirm", number="20261234")
    assert len(voiced_bursts(confirm)) > 8
    # 您输入的受理号是： and 。确认请按1；重新输入请按2。
    assert len(list(tmp_path.rglob("*.wav"))) == rendered + 2
    assert audio.prompt("progress_confirm", number="98765430")
    assert len(list(tmp_path.rglob("*.wav"))) == rendered + 2 + 4  # 九八七五: new digits
