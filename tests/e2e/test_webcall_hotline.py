"""The web call against the real hotline: Debian's Chromium under Playwright opens ``/call``
of the whole app (``create_app`` with its lifespan: database, knowledge base, ticket bridge,
voice service with real espeak-ng prompts) served by uvicorn in a thread on a free loopback
port, its microphone a fake device playing a speech-like WAV. A caller leaves a complaint
(3) that becomes a ticket with the recording, asks for the progress of a ticket (4) and
hangs up with the page's button; the call records are read from the app's database.

Where the engine is in its menu is read from the wire: every message the page gets is
logged by an init script (audio, ``flush`` on barge-in, ``hangup``), and the prompts' exact
audio comes from the app's own voice service, so a wait ends when the prompt's last frame
has arrived rather than after a fixed sleep.

Needs /usr/bin/chromium (``scripts/browser-setup``), the ``playwright`` package (dev extra)
and espeak-ng (``scripts/voice-setup``); ``playwright install`` is never used."""

from __future__ import annotations

import base64
import logging
import math
import shutil
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from browser import ErrorLog, chromium, fake_microphone, needs_chromium, new_context
from serving import free_port
from sqlalchemy import select
from support import build_settings

from assistant.voice.pcm import rms_dbfs, write_wav
from assistant.voice.records import VoiceCall, VoiceRecording, call_events
from assistant.voice.service import NO_CALLER_NUMBER
from banshi.db import Database
from ticket_bridge.models import Ticket

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.e2e

WAIT_S = 30.0  # one step of the engine: a prompt of up to ~23 s of speech, paced in real time
FRAME_BYTES = 320  # 20 ms at 8 kHz, 16-bit: the line pads a prompt's last frame to this
BYTES_PER_S = 16000
CUT = ("barge_in", "timeout", "invalid")  # a prompt not heard to its end
RECORD_S = 3.0  # how long the caller speaks into the fake microphone

# Every message the page receives, in order: {t: "audio", b: ArrayBuffer} or {t: "json", d},
# plus {t: "mark", d} the test pushes before a key press. The page's own code is untouched.
WIRE = """
(() => {
  const Native = window.WebSocket;
  const wire = (window.wire = []);
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        if (typeof e.data === "string") wire.push({ t: "json", d: JSON.parse(e.data) });
        else wire.push({ t: "audio", b: e.data });
      });
    }
  };
  const last = (what) => {
    for (let i = wire.length - 1; i >= 0; i--) {
      const m = wire[i];
      if ((m.t === "json" && m.d.type === what) || (m.t === "mark" && m.d === what)) return i;
    }
    return -1;
  };
  // bytes of audio after the last "flush" (or mark, or ...); -1 if there is none yet
  window.audioAfter = (what) => {
    const at = last(what);
    if (at < 0) return -1;
    let n = 0;
    for (const m of wire.slice(at + 1)) if (m.t === "audio") n += m.b.byteLength;
    return n;
  };
  window.audioAfterB64 = (what) => {
    const parts = wire.slice(last(what) + 1).filter((m) => m.t === "audio").map((m) => m.b);
    const out = new Uint8Array(parts.reduce((n, b) => n + b.byteLength, 0));
    let at = 0;
    for (const b of parts) { out.set(new Uint8Array(b), at); at += b.byteLength; }
    let s = "";
    for (let i = 0; i < out.length; i += 8192) {
      s += String.fromCharCode.apply(null, out.subarray(i, i + 8192));
    }
    return btoa(s);
  };
  window.jsonTypes = () => wire.filter((m) => m.t === "json").map((m) => m.d.type);
})();
"""


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} (after {timeout:g} s)")
        time.sleep(0.05)
    return result


def padded(pcm: bytes) -> int:
    """The bytes the line sends for ``pcm``: whole 20 ms frames."""
    return math.ceil(len(pcm) / FRAME_BYTES) * FRAME_BYTES


def speech_like(seconds: float, rate: int = 16000) -> bytes:
    """A caller talking: a sine wobbling around 300 Hz (never a DTMF pair, no harmonics),
    in syllables four times a second, so that noise suppression does not take it for a hum."""
    t = np.arange(int(seconds * rate)) / rate
    freq = 300 + 40 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(freq) / rate
    envelope = 0.35 + 0.65 * np.abs(np.sin(2 * np.pi * 2 * t))
    return (9000 * envelope * np.sin(phase)).astype("<i2").tobytes()


@dataclass
class Hotline:
    base: str
    app: Any
    data_dir: Path

    @property
    def voice(self) -> Any:
        return self.app.state.voice

    def call(self, call_ref: str) -> VoiceCall:
        with self.voice.db.session() as s:
            row = s.scalar(select(VoiceCall).where(VoiceCall.call_ref == call_ref))
            assert row is not None, f"no voice_calls row for {call_ref}"
            s.expunge(row)
            return row

    def ended_call(self, call_ref: str) -> VoiceCall:
        """The call's row once the hotline has written its end."""
        wait_until(lambda: self.call(call_ref).ended_at is not None, "the call was not ended")
        wait_until(lambda: not self.voice.active, "the hotline still has the call")
        return self.call(call_ref)

    def events(self, call_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        with self.voice.db.session() as s:
            return call_events(s, call_id)

    def entered(self, call_ref: str) -> list[str]:
        return [node for kind, node, _ in self.events(self.call(call_ref).id) if kind == "enter"]

    def ticket(self, number: str) -> Ticket:
        with self.voice.db.session() as s:
            ticket = s.scalar(select(Ticket).where(Ticket.number == number))
            assert ticket is not None, f"no ticket {number}"
            s.expunge(ticket)
            return ticket

    def prompt_bytes(self, *ids: str, **values: object) -> bytes:
        """What the engine plays for a step (from the voice service's cache once played)."""
        return bytes(self.voice.audio.prompts(list(ids), **values))


@pytest.fixture(scope="module", autouse=True)
def _needs_chromium() -> None:
    """Skip before the server is started for nothing."""
    needs_chromium()
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is missing: run scripts/voice-setup")


@pytest.fixture(scope="module")
def hotline(
    tmp_path_factory: pytest.TempPathFactory,
    hashing_template: Path,
    hashing_encoder: Any,
    shared_text: Any,
) -> Iterator[Hotline]:
    """The whole app in uvicorn, in a thread; nothing may be logged as an error."""
    import uvicorn

    from banshi.app import create_app
    from knowledge_base.service import KnowledgeBase

    settings = build_settings(tmp_path_factory.mktemp("webcall_hotline") / "data")
    shutil.copytree(hashing_template, settings.data_dir)  # migrated, the index built
    database = Database(settings.resolved_database_url)
    kb = KnowledgeBase(settings, database, encoder=hashing_encoder, text=shared_text)
    kb.start()
    app = create_app(settings, kb=kb)
    port = free_port()
    uv = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=5
        )
    )
    errors = ErrorLog()
    watched = [logging.getLogger(), logging.getLogger("uvicorn.error")]  # uvicorn's: no propagation
    for logger in watched:
        logger.addHandler(errors)
    thread = threading.Thread(target=uv.run, name="hotline uvicorn", daemon=True)
    thread.start()
    try:
        wait_until(lambda: uv.started or not thread.is_alive(), "uvicorn did not start", 60)
        assert uv.started, "uvicorn failed to start"
        assert app.state.voice is not None
        yield Hotline(f"http://127.0.0.1:{port}", app, settings.data_dir)
    finally:
        uv.should_exit = True
        thread.join(30)
        for logger in watched:
            logger.removeHandler(errors)
        database.dispose()
    assert not thread.is_alive(), "uvicorn did not stop"
    assert [r.getMessage() for r in errors.records] == []


@pytest.fixture(scope="module")
def call_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Chromium whose microphone is allowed without asking and plays someone talking."""
    wav = tmp_path_factory.mktemp("webcall_hotline_mic") / "talking.wav"
    write_wav(wav, speech_like(4.0), 16000)
    with chromium(*fake_microphone(wav)) as browser:
        yield browser


@pytest.fixture
def page(call_browser: Browser, hotline: Hotline) -> Iterator[Page]:
    context = new_context(call_browser, 1024, 800)
    context.grant_permissions(["microphone"], origin=hotline.base)
    context.add_init_script(WIRE)
    p = context.new_page()
    p.goto(f"{hotline.base}/call")
    yield p
    context.close()
    # the next test's call is the only one
    wait_until(lambda: not hotline.voice.active, "a call outlived its page")


# -- the page ----------------------------------------------------------------------------
def dial(page: Page) -> str:
    """Calls; returns the call's reference (the ``started`` message's ``call_ref``)."""
    page.get_by_role("button", name="拨打热线").click()
    page.wait_for_selector("html[data-call=active]", state="attached")
    assert page.locator("#status").text_content() == "通话中"
    ref = page.evaluate("window.wire.find((m) => m.t === 'json' && m.d.type === 'started').d")
    return str(ref["call_ref"])


def press(page: Page, key: str) -> None:
    """A key of the page's keypad, after a mark on the wire log."""
    page.evaluate("(k) => window.wire.push({ t: 'mark', d: k })", key)
    name = {"#": "井号键", "*": "星号键"}.get(key, f"按键 {key}")
    page.get_by_role("button", name=name).click()


def audio_after(page: Page, what: str) -> int:
    return int(page.evaluate("(w) => window.audioAfter(w)", what))


def wait_audio_after(page: Page, what: str, at_least: int, timeout: float = WAIT_S) -> int:
    """Waits for ``at_least`` bytes of audio after the last ``what``; returns how many came."""
    deadline = time.monotonic() + timeout
    while (n := audio_after(page, what)) < at_least:
        if time.monotonic() > deadline:
            pytest.fail(f"{n} bytes of audio after {what!r} in {timeout:g} s, not {at_least}")
        time.sleep(0.05)
    return n


def stats(page: Page) -> dict[str, int]:
    return dict(page.evaluate("window.webcallStats"))


def into_the_welcome(page: Page) -> None:
    """A second of the welcome (5 s or more of speech) has arrived: a key now cuts it."""
    page.wait_for_function(
        f"() => window.webcallStats.bytesIn >= {BYTES_PER_S}", timeout=WAIT_S * 1000
    )


# -- calls -------------------------------------------------------------------------------
def test_a_complaint_left_from_the_web_becomes_a_voice_ticket_with_the_recording(
    page: Page, hotline: Hotline
) -> None:
    ref = dial(page)
    into_the_welcome(page)
    press(page, "3")  # 投诉建议留言: cuts the welcome, the menu is keyed ahead
    wait_until(lambda: audio_after(page, "flush") > 0, "the message prompt did not start")
    # the prompt "请在提示音后留言…最长120秒…" and the beep, to their last frame
    seconds = hotline.voice.config.node("message").max_record_s
    prompt = padded(hotline.prompt_bytes("message_record", seconds=seconds))
    beep = padded(bytes(hotline.voice.audio.beep()))
    assert wait_audio_after(page, "flush", prompt + beep) == prompt + beep
    assert hotline.entered(ref) == ["main", "message"]

    # the caller speaks: the page sends RECORD_S of microphone audio, then presses #
    sent = stats(page)["bytesOut"]
    page.wait_for_function(
        f"() => window.webcallStats.bytesOut >= {sent + int(RECORD_S * BYTES_PER_S)}",
        timeout=WAIT_S * 1000,
    )
    assert audio_after(page, "flush") == prompt + beep  # nothing played while recording
    press(page, "#")
    wait_audio_after(page, "#", BYTES_PER_S // 2)  # half a second of "确认提交请按1…"
    assert hotline.entered(ref)[-1] == "message_review"
    press(page, "1")
    page.wait_for_function(
        "() => window.jsonTypes().slice(-1)[0] === 'hangup'", timeout=WAIT_S * 1000
    )  # the engine reads the number back and says goodbye, then hangs up
    page.wait_for_selector("html[data-call=ended]", state="attached")
    assert page.locator("#status").text_content() == "已挂断"
    assert page.locator("#notice").text_content() == ""

    call = hotline.ended_call(ref)
    assert call.channel == "web" and call.caller_id == "" and call.end_reason == "goodbye"
    assert call.ticket_number is not None and len(call.ticket_number) == 8
    events = hotline.events(call.id)
    assert [n for k, n, _ in events if k == "enter"] == [
        "main",
        "message",
        "message_review",
        "message_done",
    ]
    assert ("key", "main", {"key": "3"}) in events
    assert ("key", "message_review", {"key": "1"}) in events
    actions = [d for k, _, d in events if k == "action"]
    assert actions == [{"action": "create_ticket", "number": call.ticket_number}]

    # after the confirmation: the whole "已提交，受理号是…再报一遍…" and the goodbye, with the
    # number's digits read twice
    done = hotline.prompt_bytes("message_done", "goodbye", number=call.ticket_number)
    heard = base64.b64decode(page.evaluate("window.audioAfterB64('flush')"))
    assert len(heard) == padded(done)
    assert heard[: len(done)] == done
    digits = bytes(hotline.voice.audio.digits(call.ticket_number))
    assert heard.count(digits) == 2
    assert stats(page)["flushes"] == 2  # the welcome, the review prompt

    ticket = hotline.ticket(call.ticket_number)
    assert ticket.channel == "voice" and ticket.category == "投诉"
    assert ticket.phone == ""
    assert "热线电话投诉建议留言" in ticket.content and "来电号码未知" in ticket.content
    assert ticket.recording is not None
    file = hotline.data_dir / ticket.recording
    assert file.resolve().is_relative_to(hotline.data_dir.resolve()) and file.is_file()
    with wave.open(str(file)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        kept = w.readframes(w.getnframes())
        recorded_s = w.getnframes() / 8000
    assert 1.5 <= recorded_s <= RECORD_S + 2.0, recorded_s
    level = rms_dbfs(kept)
    assert level > -40.0, f"the recording is (nearly) silent: {level:.1f} dBFS"
    with hotline.voice.db.session() as s:
        recording = s.scalars(select(VoiceRecording).where(VoiceRecording.call_id == call.id)).one()
        assert recording.path == ticket.recording and recording.complete is True
        assert recording.seconds == pytest.approx(recorded_s, abs=0.01)


def test_a_progress_query_by_keys_on_the_page(page: Page, hotline: Hotline) -> None:
    desk = hotline.app.state.tickets
    with desk.db.session() as s:
        number = desk.create(
            s, channel="web", category="求助", content="路灯坏了", actor="e2e", phone=""
        ).number
    ref = dial(page)
    into_the_welcome(page)
    press(page, "4")  # 查询办理进度
    wait_audio_after(page, "4", BYTES_PER_S // 2)  # "请输入8位受理号…" is playing
    assert hotline.entered(ref) == ["main", "progress"]
    for digit in number:
        press(page, digit)
    press(page, "#")
    wait_audio_after(page, "#", BYTES_PER_S // 2)  # "您输入的受理号是…确认请按1…"
    assert page.locator("#keys").text_content() == f"4{number}#"
    assert hotline.entered(ref)[-1] == "progress_confirm"
    press(page, "1")
    wait_audio_after(page, "1", BYTES_PER_S // 2)  # "受理号…的办理进度：…"

    call = hotline.call(ref)
    events = hotline.events(call.id)
    lookups = [d for k, _, d in events if k == "action" and d.get("action") == "lookup_ticket"]
    # a browser has no phone number, so the ticket is not told to this caller
    assert lookups == [{"action": "lookup_ticket", "number": number, "status": NO_CALLER_NUMBER}]
    assert ("digits", "progress", {"digits": number}) in events
    # the "#" after the full number ends the number: the confirmation is played, not cut
    # short as if that "#" were a key pressed during it (then a 没有收到您的按键 timeout)
    interrupted = [(k, d.get("prompt", n)) for k, n, d in events if k in CUT]
    assert [k for k, _ in interrupted] == ["barge_in"] * 3, (
        "expected three barge-ins (4 in the welcome, the first digit in 请输入8位受理号, 1 in"
        f" 您输入的受理号是) and no timeout or wrong key; got {interrupted}"
    )
    prompts = [d["prompt"] for k, _, d in events if k == "barge_in"]
    assert "progress_confirm" in prompts[-1]
    assert [n for k, n, _ in events if k == "enter"] == [
        "main",
        "progress",
        "progress_confirm",
        "progress_status",
    ]

    page.get_by_role("button", name="挂断电话").click()
    assert page.locator("#status").text_content() == "已挂断"
    call = hotline.ended_call(ref)
    assert call.end_reason == "hangup" and call.ticket_number is None


def test_the_call_ends_when_the_page_hangs_up(page: Page, hotline: Hotline) -> None:
    ref = dial(page)
    into_the_welcome(page)
    assert hotline.voice.active  # the engine has the call
    page.get_by_role("button", name="挂断电话").click()
    assert page.locator("#status").text_content() == "已挂断"
    assert page.locator("html").get_attribute("data-call") == "ended"
    assert page.get_by_role("button", name="按键 1").is_disabled()

    call = hotline.ended_call(ref)
    assert call.channel == "web" and call.end_reason == "hangup"
    assert call.ended_at is not None and call.ended_at >= call.started_at
    assert call.ticket_number is None
    events = hotline.events(call.id)
    assert events[-1] == ("end", "", {"reason": "hangup"})
    assert not any(k == "action" for k, _, _ in events)
