"""Every page under its Content-Security-Policy in a real browser (Debian's Chromium), served
by `banshi serve`: the browser reports no violation, so no script, style, image, sound or
socket a page uses is blocked (the other browser tests check what the pages do)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from browser import needs_chromium, new_context
from serving import Served, http, serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.e2e

RECORD = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.lineNumber}`);
});
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    needs_chromium()
    data_dir = tmp_path_factory.mktemp("csp") / "data"
    with serve(data_dir, env={"BANSHI_KB_ENCODER": "hashing", "BANSHI_RASA_TIMEOUT_S": "1"}) as s:
        yield s


def pages(base: str) -> list[str]:
    _, items = http("GET", f"{base}/api/kb/items")
    item = items[0]["id"]  # type: ignore[index]
    return [
        "/",
        f"/guides/{item}",
        "/chat",
        "/call",
        "/agent",
        "/progress",
        "/kiosk",
        "/counter",
        "/display",
        "/queue/not-a-real-token",
        "/forms",
        "/forms/id-card-application",
    ]


def test_no_page_breaks_its_content_security_policy(
    server: Served, browser: Browser, tmp_path: Path
) -> None:
    context = new_context(browser, 1080, 1920)
    context.add_init_script(RECORD)
    try:
        for path in pages(server.base):
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda m, c=console: c.append(m.text))
            r = page.goto(server.base + path, wait_until="load")
            assert r is not None and r.status == 200, path
            assert "content-security-policy" in r.headers, path
            page.wait_for_timeout(1500)  # what the scripts load and open after the page
            assert page.evaluate("window.__violations") == [], path
            assert not [t for t in console if "Content Security Policy" in t], (path, console)
            page.close()
    finally:
        context.close()
