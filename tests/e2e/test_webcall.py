"""A web call to the voice hotline in a real browser: Debian's Chromium under Playwright,
its microphone a fake device that plays a WAV file of DTMF key tones, against a real
uvicorn server (in a thread, on a free loopback port) that serves the page and the
WebSocket with a stub call engine in place of the real one.

Needs /usr/bin/chromium (``scripts/browser-setup``) and the ``playwright`` package (dev extra);
``playwright install`` is never used."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browser import ErrorLog, chromium, fake_microphone, needs_chromium, new_context
from serving import free_port

from assistant.voice.dtmf import DtmfDetector, generate_dtmf
from assistant.voice.pcm import tone, write_wav
from assistant.voice.transport import CallHandler, CallIO

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.e2e

WAIT_S = 20.0  # the engine's side of a wait (the page's waits use browser.TIMEOUT_MS)
SCREENSHOT = Path("/tmp/webcall-phone.png")
MICROPHONE_KEY = "5"  # what the fake microphone keys in, as in-band tones
GREETING_MS = 1500


@dataclass
class CallRecord:
    """What the stub engine saw of one call."""

    digits: list[str] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    end_reason: str | None = None
    ended: threading.Event = field(default_factory=threading.Event)


class StubEngine:
    """Plays a 440 Hz prompt of ``prompt_ms``, records the caller's audio and keys; key 2
    interrupts the prompt (barge-in), key 9 makes the service hang up."""

    def __init__(self) -> None:
        self.prompt_ms = GREETING_MS
        self.running = True
        self.records: list[CallRecord] = []

    def provider(self) -> CallHandler | None:
        return self if self.running else None

    async def __call__(self, call: CallIO) -> None:
        record = CallRecord()
        self.records.append(record)
        prompt = asyncio.create_task(call.send_audio(tone(440, 8000, ms=self.prompt_ms)))
        try:
            async for event in call.events():
                if isinstance(event, bytes):
                    record.audio += event
                    continue
                record.digits.append(event)
                if event == "2":
                    prompt.cancel()
                elif event == "9":
                    await call.hangup()
        finally:
            prompt.cancel()
            await asyncio.gather(prompt, return_exceptions=True)
            record.end_reason = getattr(call, "end_reason", None)
            record.ended.set()

    def last(self) -> CallRecord:
        wait_until(lambda: bool(self.records), "no call reached the engine")
        return self.records[-1]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(what)
        time.sleep(0.05)


@dataclass
class Server:
    base: str
    engine: StubEngine


@pytest.fixture(scope="module", autouse=True)
def _needs_chromium() -> None:
    """Skip before the server is started for nothing."""
    needs_chromium()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """uvicorn with the page and the line, in a thread; nothing may be logged as an error."""
    import uvicorn
    from fastapi import FastAPI

    from assistant.voice.webcall import webcall_router

    engine = StubEngine()
    app = FastAPI()
    app.include_router(webcall_router(engine.provider))
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    errors = ErrorLog()
    watched = [logging.getLogger(n) for n in ("uvicorn.error", "assistant.voice.webcall")]
    for logger in watched:
        logger.addHandler(errors)
    thread = threading.Thread(target=uv.run, name="webcall uvicorn", daemon=True)
    thread.start()
    try:
        wait_until(lambda: uv.started or not thread.is_alive(), "uvicorn did not start")
        assert uv.started, "uvicorn failed to start"
        yield Server(f"http://127.0.0.1:{port}", engine)
    finally:
        uv.should_exit = True
        thread.join(30)
        for logger in watched:
            logger.removeHandler(errors)
    assert not thread.is_alive(), "uvicorn did not stop"
    assert [r.getMessage() for r in errors.records] == []


@pytest.fixture(autouse=True)
def _fresh_engine(server: Server) -> None:
    server.engine.prompt_ms = GREETING_MS
    server.engine.running = True
    server.engine.records.clear()


@pytest.fixture(scope="module")
def call_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Chromium whose microphone is allowed without asking and plays key 5, on and off."""
    wav = tmp_path_factory.mktemp("webcall") / "keys.wav"
    write_wav(wav, generate_dtmf(MICROPHONE_KEY * 10, rate=48000, tone_ms=100, gap_ms=100), 48000)
    with chromium(*fake_microphone(wav)) as browser:
        yield browser


def open_page(browser: Browser, base: str, **kw: Any) -> Page:
    context = new_context(browser, kw.pop("width", 1024), kw.pop("height", 800), **kw)
    context.grant_permissions(["microphone"], origin=base)
    page = context.new_page()
    page.goto(f"{base}/call")
    return page


@pytest.fixture
def page(call_browser: Browser, server: Server) -> Iterator[Page]:
    p = open_page(call_browser, server.base)
    yield p
    p.context.close()


def dial(page: Page) -> None:
    page.get_by_role("button", name="拨打热线").click()
    page.wait_for_selector("html[data-call=active]", state="attached")
    assert page.locator("#status").text_content() == "通话中"


def stats(page: Page) -> dict[str, int]:
    return dict(page.evaluate("window.webcallStats"))


# -- calls -------------------------------------------------------------------------------
def test_a_call_with_the_microphone_keys_playback_and_hanging_up(
    page: Page, server: Server
) -> None:
    dial(page)
    page.wait_for_function(
        "() => /^\\d\\d:\\d\\d$/.test(document.getElementById('timer').textContent)"
    )
    record = server.engine.last()

    # the prompt arrives whole and is scheduled for playback
    greeting_bytes = GREETING_MS * 16
    page.wait_for_function(f"() => window.webcallStats.bytesIn >= {greeting_bytes}")
    got = stats(page)
    assert got["bytesIn"] == greeting_bytes
    assert got["chunksScheduled"] == GREETING_MS // 20
    assert got["flushes"] == 0

    page.get_by_role("button", name="按键 1").click()
    wait_until(lambda: record.digits == ["1"], f"the engine got {record.digits}, not ['1']")
    assert page.locator("#keys").text_content() == "1"

    # the microphone's audio came through at 8 kHz: the key tones in it are recognised
    wait_until(lambda: len(record.audio) >= 16000 * 2, "less than 2 s of microphone audio")
    heard = DtmfDetector(rate=8000).feed(bytes(record.audio))
    assert heard and set(heard) == {MICROPHONE_KEY}

    page.get_by_role("button", name="挂断电话").click()
    assert page.locator("#status").text_content() == "已挂断"
    assert page.locator("html").get_attribute("data-call") == "ended"
    assert record.ended.wait(WAIT_S)
    assert record.end_reason == "hangup"
    assert page.get_by_role("button", name="按键 1").is_disabled()


def test_barge_in_flushes_playback_and_the_service_can_hang_up(page: Page, server: Server) -> None:
    server.engine.prompt_ms = 10_000
    dial(page)
    record = server.engine.last()
    page.wait_for_function("() => window.webcallStats.chunksScheduled >= 10")
    page.get_by_role("button", name="按键 2").click()  # the engine stops its prompt
    page.wait_for_function("() => window.webcallStats.flushes === 1")
    assert stats(page)["queued"] == 0
    assert stats(page)["bytesIn"] < 10_000 * 16

    page.keyboard.press("9")  # the computer's keyboard works as the keypad too
    page.wait_for_selector("html[data-call=ended]", state="attached")
    assert page.locator("#status").text_content() == "已挂断"
    assert record.ended.wait(WAIT_S)
    assert record.digits == ["2", "9"]
    assert record.end_reason == "local"


def test_without_a_microphone_the_keys_still_work(call_browser: Browser, server: Server) -> None:
    page = open_page(call_browser, server.base)
    page.add_init_script(
        "navigator.mediaDevices.getUserMedia = () =>"
        " Promise.reject(new DOMException('refused', 'NotAllowedError'));"
    )
    page.reload()
    try:
        dial(page)
        assert page.locator("#notice").text_content().startswith("麦克风不可用")
        record = server.engine.last()
        page.get_by_role("button", name="井号键").click()
        page.get_by_role("button", name="按键 3").click()
        wait_until(lambda: record.digits == ["#", "3"], f"the engine got {record.digits}")
        # the line carries silence, as a telephone's muted microphone does
        wait_until(lambda: len(record.audio) >= 3200, "no audio frames from the page")
        assert not any(record.audio)
        page.get_by_role("button", name="挂断电话").click()
        assert record.ended.wait(WAIT_S)
        assert record.end_reason == "hangup"
    finally:
        page.context.close()


def test_when_the_service_is_not_running_the_page_says_so(page: Page, server: Server) -> None:
    server.engine.running = False
    page.get_by_role("button", name="拨打热线").click()
    page.wait_for_selector("html[data-call=ended]", state="attached")
    assert page.locator("#status").text_content() == "未能接通"
    assert page.locator("#notice").text_content() == "语音服务暂未运行，请稍后再拨。"
    assert page.get_by_role("button", name="拨打热线").is_visible()


# -- layout ------------------------------------------------------------------------------
def test_on_a_phone_everything_fits_without_sideways_scrolling(
    call_browser: Browser, server: Server
) -> None:
    page = open_page(
        call_browser, server.base, width=390, height=844, is_mobile=True, has_touch=True
    )
    try:
        for when in ("before", "during"):
            if when == "during":
                dial(page)
                page.wait_for_function("() => window.webcallStats.chunksScheduled > 0")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{when} the call the page is {width} px wide"
            buttons = page.locator("#pad button, #dial")
            assert buttons.count() == 13
            for i in range(13):
                box = buttons.nth(i).bounding_box()
                assert box is not None
                assert box["x"] >= 0 and box["x"] + box["width"] <= 390
                assert box["y"] + box["height"] <= 844, "the call button is below the screen"
                assert box["width"] >= 48 and box["height"] >= 48  # a finger's size
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        page.get_by_role("button", name="挂断电话").tap()
        assert page.locator("#status").text_content() == "已挂断"
    finally:
        page.context.close()
