"""The resident's chat page in a real browser: Debian's Chromium, driven by Playwright, against
``banshi serve`` with the sample knowledge base. Rasa is not running, so the chat answers
from the knowledge base directly (degraded mode), which is what a resident would get too.

Needs /usr/bin/chromium (``scripts/browser-setup``) and the ``playwright`` package (dev extra);
``playwright install`` is never used."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browser import needs_chromium
from serving import serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.e2e

ANSWER_TIMEOUT_MS = 30_000
SCREENSHOT = Path("/tmp/widget.png")

# what the page shows: the conversation (not the greeting or the typing indicator)
MESSAGES = "#log .msg:not(#intro):not(#typing)"
RESIDENT = "#log .msg.resident"
BOT = "#log .msg.bot:not(#intro):not(#typing)"


@pytest.fixture(scope="module", autouse=True)
def _needs_chromium() -> None:
    """Skip before the server is started for nothing."""
    needs_chromium()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``banshi serve`` on a free loopback port; nothing listens at Rasa's address."""
    data_dir = tmp_path_factory.mktemp("widget") / "data"
    # people answer at any hour, so asking for one queues the chat whatever the time of day
    env = {"BANSHI_RASA_TIMEOUT_S": "1", "BANSHI_AGENT_HOURS": "always"}
    with serve(data_dir, env=env) as served:
        yield served.base
    assert "Traceback" not in served.log_path.read_text(errors="replace"), (
        "the server logged an error"
    )


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile (so a new chat session) on a desktop-sized window."""
    context = browser.new_context(locale="zh-CN", viewport={"width": 1024, "height": 800})
    context.set_default_timeout(ANSWER_TIMEOUT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        locale="zh-CN",
        viewport={"width": 360, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    context.set_default_timeout(ANSWER_TIMEOUT_MS)
    yield context.new_page()
    context.close()


def open_chat(page: Page, base: str, *, socket_open: bool = True) -> None:
    page.goto(f"{base}/chat")
    if socket_open:  # otherwise the first message would (correctly) go over REST
        page.wait_for_selector("html[data-socket=open]", state="attached")


def ask(page: Page, text: str) -> None:
    page.get_by_role("textbox", name="输入您的问题").fill(text)
    page.get_by_role("button", name="发送").click()


def texts(page: Page, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_inner_texts()]


def test_conversation_follow_up_and_history_after_reload(server: str, page: Page) -> None:
    from playwright.sync_api import expect

    frames: list[dict[str, Any]] = []
    posts: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda f: frames.append(json.loads(f))))
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    open_chat(page, server)
    expect(page).to_have_title("在线咨询")
    expect(page.get_by_role("heading", name="在线咨询")).to_be_visible()

    ask(page, "居住证怎么办理")
    expect(page.locator(RESIDENT)).to_have_count(1)
    expect(page.locator(RESIDENT).first).to_have_text("居住证怎么办理")
    answer = page.locator(BOT).first
    expect(answer).to_contain_text("居住证")
    expect(page.locator("#typing")).to_be_hidden()
    # newlines of the answer are kept on screen
    assert "\n" in answer.locator(".text").inner_text()
    # quick replies under the answer, "转人工" among them, the guide and the form sample
    quick = answer.locator(".quick button")
    expect(quick.filter(has_text=re.compile("^转人工$"))).to_be_visible()
    assert quick.count() >= 2
    links = answer.get_by_role("link")
    expect(links).to_have_text(["查看办事指南：居住证申领", "填表样例：居住证申领登记表"])
    assert str(links.nth(1).get_attribute("href")).endswith("/forms/residence-permit-application")
    for i in range(2):
        assert links.nth(i).get_attribute("target") == "_blank"
        assert links.nth(i).get_attribute("rel") == "noopener"
    # it went over the WebSocket, with a client id; nothing over REST
    assert [f["text"] for f in frames] == ["居住证怎么办理"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", frames[0]["client_id"])
    assert not [u for u in posts if "/api/chat/messages" in u]

    # a follow-up button: its title in the resident's bubble, a second answer
    follow_up = quick.first
    title = follow_up.inner_text().strip()
    assert title != "转人工"
    follow_up.click()
    expect(page.locator(RESIDENT)).to_have_count(2)
    expect(page.locator(RESIDENT).nth(1)).to_have_text(title)
    expect(page.locator(BOT)).to_have_count(2)
    expect(page.locator(BOT).nth(1).locator(".text")).not_to_be_empty()
    expect(page.locator("#typing")).to_be_hidden()
    before = texts(page, MESSAGES)
    assert len(before) == 4

    # the session is random, 32 url-safe characters, and kept across a reload
    session = page.evaluate("localStorage.getItem('banshi.chat.session')")
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", session)
    page.reload()
    expect(page.locator(MESSAGES)).to_have_count(len(before))
    assert texts(page, MESSAGES) == before
    assert page.evaluate("localStorage.getItem('banshi.chat.session')") == session


def test_human_button_and_text_is_never_markup(server: str, page: Page) -> None:
    from playwright.sync_api import expect

    open_chat(page, server)
    ask(page, "<b>粗体</b><img src=x onerror=alert(1)>")
    expect(page.locator(RESIDENT)).to_have_count(1)
    expect(page.locator(BOT)).to_have_count(1)
    expect(page.locator(RESIDENT).first).to_have_text("<b>粗体</b><img src=x onerror=alert(1)>")
    assert page.locator("#log b, #log img").count() == 0

    page.get_by_role("button", name="转人工客服").click()
    expect(page.locator(RESIDENT)).to_have_count(2)
    expect(page.locator(RESIDENT).nth(1)).to_have_text("转人工")
    expect(page.locator(BOT).nth(1)).to_contain_text("转人工请求已记录")
    # after a reload the stored payload "/request_human" is still shown as "转人工"
    page.reload()
    expect(page.locator(RESIDENT)).to_have_count(2)
    expect(page.locator(RESIDENT).nth(1)).to_have_text("转人工")


def test_rest_while_the_websocket_is_down_and_no_double_send(server: str, page: Page) -> None:
    from playwright.sync_api import expect

    page.route_web_socket(re.compile(r"/api/chat/ws"), lambda ws: ws.close())
    posts: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: posts.append(r.post_data_json) if r.url.endswith("/api/chat/messages") else None,
    )
    open_chat(page, server, socket_open=False)
    page.wait_for_selector("html[data-socket=closed]", state="attached")

    example = page.locator("#intro .quick button").first
    title = example.inner_text().strip()
    example.dblclick()  # the second tap while the first is pending sends nothing
    expect(page.locator(BOT)).to_have_count(1)
    expect(page.locator(RESIDENT)).to_have_count(1)
    expect(page.locator(RESIDENT).first).to_have_text(title)
    assert len(posts) == 1
    assert posts[0]["text"] == title
    assert posts[0]["session"] == page.evaluate("localStorage.getItem('banshi.chat.session')")


def test_server_errors_are_shown_politely(server: str, page: Page) -> None:
    from playwright.sync_api import expect

    # the body banshi's error handler gives a TooMany (429) from POST /api/chat/messages
    too_fast = "您发送得太快了，请稍等一分钟再发。"
    body = {"error": {"code": "too_many_requests", "message": too_fast}}
    page.route_web_socket(re.compile(r"/api/chat/ws"), lambda ws: ws.close())
    page.route(
        re.compile(r"/api/chat/messages$"),
        lambda route: route.fulfill(
            status=429, content_type="application/json", body=json.dumps(body)
        ),
    )
    open_chat(page, server, socket_open=False)
    ask(page, "居住证怎么办理")
    expect(page.locator("#log .msg.system")).to_have_text(too_fast)
    expect(page.locator("#typing")).to_be_hidden()


def test_phone_screen(server: str, phone: Page) -> None:
    from playwright.sync_api import expect

    open_chat(phone, server)
    field = phone.get_by_role("textbox", name="输入您的问题")
    send = phone.get_by_role("button", name="发送")
    for control in (field, send, phone.get_by_role("button", name="转人工客服")):
        expect(control).to_be_in_viewport()
        box = control.bounding_box()
        assert box is not None
        assert box["height"] >= 44, "tap targets are at least 44 CSS pixels high"
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360

    field.tap()
    field.fill("居住证怎么办理")
    send.tap()
    expect(phone.locator(BOT)).to_have_count(1)
    expect(phone.locator(BOT).first).to_contain_text("居住证")
    expect(field).to_be_in_viewport()
    # nothing wider than the screen
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    phone.screenshot(path=str(SCREENSHOT))

    # an open on-screen keyboard leaves less height: the input stays above it
    phone.set_viewport_size({"width": 360, "height": 420})
    expect(field).to_be_in_viewport()
    box = field.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 420
