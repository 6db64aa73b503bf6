"""The widget's WebSocket sends each message people write to the resident exactly once,
also one that becomes visible after a later one (PostgreSQL hands out ids before commit;
another process's push comes over Redis), and catches up from the database on a fixed
period however busy the socket is with other events."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support import TestClient, api_client, build_settings

import assistant.api
from assistant.api import SETTLE_S, Sent
from assistant.chat import ChatService, topic
from assistant.models import ChatMessage

SESSION = "ws-order-session-0001"
CATCH_UP_S = 0.2


@pytest.fixture(autouse=True)
def _quick_catch_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assistant.api, "CATCH_UP_S", CATCH_UP_S)


def row(conv_id: str, text: str, author: str = "agent") -> ChatMessage:
    payload: dict[str, Any] = {"buttons": [], "links": []}
    return ChatMessage(
        conversation_id=conv_id, direction="out", author=author, text=text, payload=payload
    )


def pushed_until(ws: Any, text: str) -> list[dict[str, Any]]:
    """Every message pushed to the socket, up to the one saying ``text``."""
    got: list[dict[str, Any]] = []
    while not any(m["text"] == text for m in got):
        event = ws.receive_json()
        if event["type"] == "push":
            got += event["messages"]
    return got


@pytest.mark.postgres
@pytest.mark.parametrize("late_push", [True, False], ids=["late-push", "push-lost"])
def test_a_reply_committed_after_a_later_message_reaches_the_widget_once(
    pg_url: str, tmp_path: Path, hashing_kb: Any, late_push: bool
) -> None:
    settings = build_settings(tmp_path / "pg", database_url=pg_url)
    with api_client(settings, hashing_kb) as client:
        chat: ChatService = client.app.state.chat  # type: ignore[attr-defined]
        conv_id = chat.conversation_for("web", SESSION)
        with client.websocket_connect(f"/api/chat/ws?session={SESSION}") as ws:
            with chat.deps.db.session() as s:
                # an agent's reply (process B) has its id but is not committed yet…
                reply = row(conv_id, "请带身份证原件。")
                s.add(reply)
                s.flush()
                # …while a system message (process A) takes the next id, commits, is pushed
                chat.post(conv_id, "system", [{"text": "您的对话已转接。"}])
                first = ws.receive_json()
                assert first["type"] == "push"
                assert [m["text"] for m in first["messages"]] == ["您的对话已转接。"]
                assert first["messages"][0]["id"] > reply.id
            # the reply is committed now; its push comes late (over Redis) or never
            if late_push:
                [late] = [m for m in chat.messages(conv_id) if m["id"] == reply.id]
                chat.bus.publish(topic(conv_id), {"type": "push", "messages": [late]})
            time.sleep(5 * CATCH_UP_S)  # several catch-ups: none may send it again
            chat.post(conv_id, "agent", [{"text": "还有其他问题吗？"}])
            got = pushed_until(ws, "还有其他问题吗？")
    assert [(m["id"], m["text"]) for m in got] == [
        (reply.id, "请带身份证原件。"),
        (got[-1]["id"], "还有其他问题吗？"),
    ]


def test_queue_updates_do_not_hold_up_the_catch_up(hashing_client: TestClient) -> None:
    chat: ChatService = hashing_client.app.state.chat  # type: ignore[attr-defined]
    conv_id = chat.conversation_for("web", SESSION)
    stop = threading.Event()

    def queue_updates() -> None:  # far more often than the catch-up period
        while not stop.wait(CATCH_UP_S / 4):
            chat.notify(conv_id, {"type": "queue", "ahead": 3})

    with hashing_client.websocket_connect(f"/api/chat/ws?session={SESSION}") as ws:
        ticker = threading.Thread(target=queue_updates)
        ticker.start()
        try:
            # stored by another process whose push never arrived here
            with chat.deps.db.session() as s:
                reply = row(conv_id, "您好，我是工作人员小李。")
                s.add(reply)
            stored = time.monotonic()
            while (event := ws.receive_json())["type"] != "push":
                assert event["type"] == "queue"
                assert time.monotonic() - stored < 10 * CATCH_UP_S, "no catch-up while busy"
        finally:
            stop.set()
            ticker.join()
    assert [m["id"] for m in event["messages"]] == [reply.id]


def test_sent_ids_are_forgotten_only_once_settled() -> None:
    def m(i: int, author: str = "agent") -> dict[str, Any]:
        return {"id": i, "author": author, "text": f"#{i}"}

    sent = Sent()
    assert sent.fresh([m(10), m(11, "bot"), m(12)]) == [m(10), m(12)]  # bot replies: no
    sent.settle([m(10), m(11), m(12)], began=0.0, done=1.0)
    assert sent.fresh([m(12)]) == []
    assert sent.fresh([m(9)]) == [m(9)]  # committed late, below what was sent: still sent
    sent.settle([m(9), m(10), m(12), m(13)], began=SETTLE_S - 1, done=SETTLE_S)
    assert (sent.floor, sent.ids) == (0, {9, 10, 12})  # not settled yet: nothing forgotten
    sent.settle([m(9), m(10), m(12), m(13)], began=SETTLE_S + 1, done=SETTLE_S + 2)
    assert sent.floor == 12  # what the first read saw has settled
    assert sent.ids == set()
    assert sent.fresh([m(8), m(12)]) == []  # below the floor: long since sent
    assert sent.fresh([m(13), m(14)]) == [m(13), m(14)]
    sent.settle([m(14)], began=2 * SETTLE_S + 3, done=2 * SETTLE_S + 4)
    assert (sent.floor, sent.ids) == (13, {14})
