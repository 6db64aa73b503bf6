"""The hall display in a real browser: Debian's Chromium, driven by Playwright, against the
display's router served by uvicorn with an in-memory call board and the fake synthesizer
(the queue engine is not needed to show a call)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browser import needs_chromium
from serving import free_port
from support import build_settings

from banshi.bus import LocalBus
from banshi.errors import install_handlers
from kiosk.announce import spoken_text
from kiosk.display import MemoryCallBoard, router
from kiosk.tts import ToneSynthesizer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.e2e

WAIT_MS = 10_000  # generous: the push itself takes milliseconds
SCREENSHOT = Path("/tmp/display.png")


@pytest.fixture(scope="module", autouse=True)
def _needs_chromium() -> None:
    needs_chromium()


@pytest.fixture(scope="module")
def hall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The display's router on a free port: its base URL, bus, board and fake voice."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    install_handlers(app)
    app.include_router(router)
    app.state.settings = build_settings(tmp_path_factory.mktemp("display") / "data")
    app.state.bus = LocalBus()
    app.state.call_board = MemoryCallBoard()
    app.state.synthesizer = ToneSynthesizer()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            port=port,
            log_level="warning",
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield {"base": f"http://127.0.0.1:{port}", "app": app}
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1920, "height": 1080})
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()


def test_a_call_reaches_the_display(page: Page, hall: dict[str, Any]) -> None:
    app = hall["app"]
    page.goto(f"{hall['base']}/display")
    page.wait_for_selector("html[data-stream=open]", state="attached")
    assert "今天还没有叫号" in page.inner_text("#recent")

    call = app.state.call_board.add("A012", "A03", service="户籍与身份证")
    app.state.bus.publish("calls", call)
    page.locator("#latest-number", has_text="A012").wait_for()
    assert "A03号窗口" in page.inner_text("#latest-window")
    assert "A012" in page.inner_text("#windows-grid")

    # the page asks for the announcement (whether the browser may then play it or not)
    deadline = time.monotonic() + WAIT_MS / 1000
    while app.state.synthesizer.texts != [spoken_text(call)]:
        assert time.monotonic() < deadline, app.state.synthesizer.texts
        time.sleep(0.1)

    # a call made by another API process: in the database only, read within a second or so
    app.state.call_board.add("B007", "B02", service="社会保障卡")
    page.locator("#latest-number", has_text="B007").wait_for()
    assert "B02号窗口" in page.inner_text("#latest-window")
    assert page.locator("#recent-list li").count() == 2
    page.screenshot(path=str(SCREENSHOT))
