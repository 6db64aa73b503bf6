"""Debian's Chromium driven by Playwright, for the end-to-end page tests. ``playwright
install`` is never used: scripts/browser-setup installs /usr/bin/chromium and the CJK fonts."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 20_000  # a page's wait for an element, on a loaded 2-core machine
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def needs_chromium() -> None:
    """Skip (before any server is started for nothing) when the browser is not here."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run scripts/browser-setup to install Chromium")
    pytest.importorskip(
        "playwright.sync_api", reason="the playwright package (dev extra) is not installed"
    )


@contextmanager
def chromium(*extra_args: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        args = [*CHROMIUM_ARGS, *extra_args]
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            yield browser
        finally:
            browser.close()


def new_context(browser: Browser, width: int, height: int, **kw: Any) -> BrowserContext:
    """A browser context as residents and staff have it: Chinese, Beijing time, a screen."""
    context = browser.new_context(
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        viewport={"width": width, "height": height},
        **kw,
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context


def kiosk(browser: Browser) -> BrowserContext:
    """The lobby's portrait touchscreen."""
    return new_context(browser, 1080, 1920, has_touch=True)


class ErrorLog(logging.Handler):
    """Keeps every ERROR record: a test attaches it to the server's loggers and asserts the
    call or page left none."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def fake_microphone(wav: Path) -> tuple[str, ...]:
    """Chromium's arguments for a microphone that is allowed without asking and plays
    ``wav`` (looped) as what the user says."""
    return (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    )
