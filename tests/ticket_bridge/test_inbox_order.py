"""The inbox keeps a chat's messages by id: one that becomes visible after a later one
(PostgreSQL hands out ids before commit; another process's news comes late) still shows,
once and in its place, in the open chat and as news in another of the agent's chats.

In Chromium, with /agent and staff.js as the app serves them and the agent API faked, so
that the test decides what is committed when. Needs /usr/bin/chromium and playwright."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from support import TestClient

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route, WebSocketRoute

pytestmark = pytest.mark.e2e  # starts a browser

CHROMIUM = Path("/usr/bin/chromium")
BASE = "http://inbox.test"
AT = "2025-03-03T02:00:00+00:00"


class FakeDesk:
    """The agent API over what is committed so far; it records every read of a chat."""

    def __init__(self, client: TestClient) -> None:
        self.pages = {p: client.get(p) for p in ("/agent", "/static/staff.js")}
        self.committed: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        self.reads: list[tuple[int, int]] = []  # (chat id, after)
        self.socket: WebSocketRoute | None = None

    def commit(self, chat_id: int, message_id: int, author: str, text: str) -> None:
        m = {"id": message_id, "author": author, "text": text, "buttons": [], "links": []}
        self.committed[chat_id].append({**m, "at": AT})

    def row(self, chat_id: int) -> dict[str, Any]:
        return {
            "id": chat_id,
            "conversation_id": f"conv-{chat_id}",
            "channel": "web",
            "status": "active",
            "reason": "request",
            "summary": f"对话{chat_id}",
            "phone": None,
            "department": None,
            "agent": "wang",
            "ahead": None,
            "waited_s": 30,
            "claimed_at": AT,
        }

    def answer(self, route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.path in self.pages:
            r = self.pages[url.path]
            headers = {k: v for k, v in r.headers.items() if k.lower() != "content-length"}
            return route.fulfill(status=r.status_code, headers=headers, body=r.content)
        chat = re.fullmatch(r"/api/agent/chats/(\d+)", url.path)
        body: Any
        if chat:
            chat_id, after = int(chat[1]), int(parse_qs(url.query).get("after", ["0"])[0])
            self.reads.append((chat_id, after))
            shown = sorted(self.committed[chat_id], key=lambda m: m["id"])
            body = {**self.row(chat_id), "messages": [m for m in shown if m["id"] > after]}
        else:
            body = {
                "/api/auth/me": {"username": "wang", "display_name": "小王", "role": "agent"}
                | {"csrf": "csrf-token"},
                "/api/agent/state": {"status": "online", "active": 2, "capacity": 5},
                "/api/agent/queue": {"waiting": []},
                "/api/agent/chats": {"chats": [self.row(1), self.row(2)]},
                "/api/agent/directory": {"departments": [], "agents": [], "statuses": []},
                "/api/agent/canned": {"replies": []},
            }.get(url.path)
        if body is None:
            return route.fulfill(status=404, json={"error": {"message": "没有这个接口。"}})
        route.fulfill(status=200, json=body)

    def tell(self, event: dict[str, Any]) -> None:
        """An event on the agent's WebSocket (the page re-reads what it says changed)."""
        assert self.socket is not None
        self.socket.send(json.dumps(event))


@pytest.fixture
def page(shared_client: TestClient) -> Iterator[tuple[Page, FakeDesk]]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run scripts/browser-setup to install Chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    desk = FakeDesk(shared_client)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
            context.set_default_timeout(20_000)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route(f"{BASE}/**", desk.answer)

            def on_socket(ws: WebSocketRoute) -> None:
                desk.socket = ws  # not connected to a server: the test speaks for it

            page.route_web_socket(re.compile(r"/api/agent/ws"), on_socket)
            yield page, desk
            assert errors == []
        finally:
            browser.close()


def shown_ids(page: Page, expected: list[int]) -> list[int]:
    """The ids in the open transcript, once they are ``expected`` (or after 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        ids: list[int] = page.eval_on_selector_all(
            "#transcript .msg", "els => els.map((e) => Number(e.dataset.id))"
        )
        if ids == expected or time.monotonic() > deadline:
            return ids
        page.wait_for_timeout(100)


def test_a_message_visible_after_a_later_one_still_shows_once_in_its_place(
    page: tuple[Page, FakeDesk],
) -> None:
    from playwright.sync_api import expect

    p, desk = page
    desk.commit(1, 10, "resident", "我想办居住证。")
    desk.commit(1, 14, "agent", "请问您在本区居住满半年了吗？")
    desk.commit(2, 11, "resident", "你好")
    p.goto(f"{BASE}/agent")
    p.locator('#mine-list li[data-chat="1"]').click()
    assert shown_ids(p, [10, 14]) == [10, 14]

    # 12 (a colleague's note through another process) was committed only after 14
    desk.commit(1, 12, "agent", "请带身份证原件。")
    desk.commit(1, 15, "resident", "满了。")
    desk.tell({"type": "message", "conversation_id": "conv-1"})
    assert shown_ids(p, [10, 12, 14, 15]) == [10, 12, 14, 15]

    # while another chat is open, the resident's 13 becomes visible late, below 15: news
    p.locator('#mine-list li[data-chat="2"]').click()
    assert shown_ids(p, [11]) == [11]
    desk.commit(1, 13, "resident", "还要带照片吗？")
    desk.tell({"type": "hello"})  # a reconnect: the page re-reads everything
    expect(p.locator('#mine-list li[data-chat="1"] .unread-mark')).to_be_visible()

    p.locator('#mine-list li[data-chat="1"]').click()
    assert shown_ids(p, [10, 12, 13, 14, 15]) == [10, 12, 13, 14, 15]
    desk.commit(1, 16, "resident", "好的，谢谢。")
    desk.tell({"type": "message", "conversation_id": "conv-1"})
    assert shown_ids(p, [10, 12, 13, 14, 15, 16]) == [10, 12, 13, 14, 15, 16]
    # only a chat's first read is a full view (after=0: the audit log records each)
    assert sorted(chat for chat, after in desk.reads if after == 0) == [1, 2]
