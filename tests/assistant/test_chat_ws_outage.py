"""The widget's WebSocket while the database is away (PostgreSQL restarting under load): a
socket that cannot open is closed with 1013 ("try again later"), never by an exception
(a bare 1006 the widget cannot back off from); an open socket outlives the outage, its
catch-up delivers what is stored once the database is back, and a message sent meanwhile
is answered with a retry frame and taken once when the widget sends it again."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from starlette.websockets import WebSocketDisconnect
from support import TestClient, api_client, build_settings

import assistant.api
from assistant.api import DB_AWAY, FAILED, TRY_AGAIN_LATER, Outage, db_away
from assistant.chat import ChatService
from assistant.models import ChatMessage

SESSION = "ws-outage-session-0001"
CATCH_UP_S = 0.2


@pytest.fixture(autouse=True)
def _quick_catch_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assistant.api, "CATCH_UP_S", CATCH_UP_S)
    monkeypatch.setattr(assistant.api, "OUTAGE", Outage())  # no outage left by another test


class Switch:
    """A TCP relay in front of PostgreSQL that can be switched off: its connections are cut
    and new ones refused, as when the server is stopped, for one app alone."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._on = threading.Event()
        self._thread: threading.Thread | None = None
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._on.set()
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def down(self) -> None:
        self._on.clear()
        if self._thread is not None:
            self._thread.join()  # the listener is closed: connecting is refused
        with self._lock:
            conns, self._conns = self._conns, set()
        for c in conns:
            _cut(c)

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._on.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                client.settimeout(None)
                server = socket.create_connection(self.target)
                with self._lock:
                    self._conns |= {client, server}
                for a, b in ((client, server), (server, client)):
                    threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _cut(src)
        _cut(dst)


def _cut(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


@pytest.fixture
def switch(pg_url: str) -> Iterator[tuple[Switch, str]]:
    """The relay, and the database URL through it."""
    url = make_url(pg_url)
    relay = Switch(url.host or "127.0.0.1", url.port or 5432)
    try:
        yield relay, url.set(host="127.0.0.1", port=relay.port).render_as_string(False)
    finally:
        relay.down()


def closed_with(ws: Any) -> int:
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    return closed.value.code


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "assistant.api" and "database unavailable" in r.getMessage()
    ]


@pytest.mark.postgres
def test_a_socket_opened_while_the_database_is_away_is_closed_with_1013(
    switch: tuple[Switch, str], tmp_path: Path, hashing_kb: Any, caplog: pytest.LogCaptureFixture
) -> None:
    relay, url = switch
    caplog.set_level(logging.INFO)
    settings = build_settings(tmp_path / "pg", database_url=url)
    # raise_server_exceptions: an exception out of the handler would fail the test
    with api_client(settings, hashing_kb) as client:
        relay.down()
        for _ in range(3):  # residents retrying: each told to come back later, logged once
            with client.websocket_connect(f"/api/chat/ws?session={SESSION}") as ws:
                assert closed_with(ws) == TRY_AGAIN_LATER
        assert len(outage_warnings(caplog)) == 1
        relay.up()
        with client.websocket_connect(f"/api/chat/ws?session={SESSION}") as ws:
            ws.send_json({"text": "居住证怎么办理", "client_id": "after-outage"})
            while (event := ws.receive_json())["type"] == "typing":
                pass
            assert event["type"] == "reply"
            assert event["messages"]
    assert any("database back" in r.getMessage() for r in caplog.records)


def test_a_failed_first_read_is_a_1013_too(
    hashing_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The conversation is found, then the read of what it holds fails (the database went
    away in between): still a close the widget backs off from."""
    chat: ChatService = hashing_client.app.state.chat  # type: ignore[attr-defined]
    real = chat.messages
    failures = iter([True])

    def messages(*args: Any, **kw: Any) -> list[dict[str, Any]]:
        if next(failures, False):
            raise OperationalError("SELECT …", {}, ConnectionError("server closed the connection"))
        return real(*args, **kw)

    monkeypatch.setattr(chat, "messages", messages)
    with hashing_client.websocket_connect(f"/api/chat/ws?session={SESSION}") as ws:
        assert closed_with(ws) == TRY_AGAIN_LATER
    with hashing_client.websocket_connect(f"/api/chat/ws?session={SESSION}") as ws:
        ws.send_json({"text": "你好", "client_id": "second-try"})
        while (event := ws.receive_json())["type"] == "typing":
            pass
        assert event["type"] == "reply"


@pytest.mark.postgres
def test_an_open_socket_outlives_the_outage_and_a_message_sent_meanwhile_is_taken_once(
    switch: tuple[Switch, str],
    pg_url: str,
    tmp_path: Path,
    hashing_kb: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay, url = switch
    settings = build_settings(tmp_path / "pg", database_url=url)
    direct = create_engine(pg_url)  # another process, not behind the switch: no push from it
    try:
        with api_client(settings, hashing_kb) as client:
            chat: ChatService = client.app.state.chat  # type: ignore[attr-defined]
            conv_id = chat.conversation_for("web", SESSION)
            with client.websocket_connect(f"/api/chat/ws?session={SESSION}") as ws:
                relay.down()
                time.sleep(5 * CATCH_UP_S)  # catch-ups fail, the socket and its task carry on
                ws.send_json({"text": "居住证怎么办理", "client_id": "during-outage"})
                assert ws.receive_json()["type"] == "typing"
                error = ws.receive_json()
                assert error == {
                    "type": "error",
                    "client_id": "during-outage",
                    "message": DB_AWAY,
                    "retry_after": assistant.api.RETRY_AFTER_S,
                }
                assert len(outage_warnings(caplog)) == 1  # not one per catch-up or message

                relay.up()
                with Session(direct) as s, s.begin():
                    stored = ChatMessage(
                        conversation_id=conv_id,
                        direction="out",
                        author="agent",
                        text="您好，我是工作人员小李。",
                        payload={"buttons": [], "links": []},
                    )
                    s.add(stored)
                    s.flush()
                    stored_id = stored.id
                back = time.monotonic()
                while (event := ws.receive_json())["type"] != "push":
                    pass
                assert [m["id"] for m in event["messages"]] == [stored_id]
                assert time.monotonic() - back < 20 * CATCH_UP_S

                # the widget sends it again, with the same client_id, twice even: one answer
                answers = []
                for _ in range(2):
                    ws.send_json({"text": "居住证怎么办理", "client_id": "during-outage"})
                    while (event := ws.receive_json())["type"] == "typing":
                        pass
                    assert event["type"] == "reply"
                    assert event["client_id"] == "during-outage"
                    answers.append(event)
                assert answers[0]["messages"] and not answers[0]["duplicate"]
                assert answers[1]["duplicate"]
                assert answers[1]["messages"] == answers[0]["messages"]
        with Session(direct) as s:
            taken = s.scalar(
                select(func.count(ChatMessage.id)).where(
                    ChatMessage.conversation_id == conv_id,
                    ChatMessage.external_id == "during-outage",
                )
            )
        assert taken == 1
    finally:
        direct.dispose()


def test_a_bug_in_one_message_is_told_and_the_socket_stays(
    hashing_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat: ChatService = hashing_client.app.state.chat  # type: ignore[attr-defined]
    real = chat.handle
    calls = iter([True])

    async def handle(*args: Any, **kw: Any) -> Any:
        if next(calls, False):
            raise KeyError("a bug")
        return await real(*args, **kw)

    monkeypatch.setattr(chat, "handle", handle)
    with hashing_client.websocket_connect(f"/api/chat/ws?session={SESSION}") as ws:
        ws.send_json({"text": "你好", "client_id": "first"})
        assert ws.receive_json()["type"] == "typing"
        assert ws.receive_json() == {"type": "error", "client_id": "first", "message": FAILED}
        ws.send_json({"text": "你好", "client_id": "second"})
        while (event := ws.receive_json())["type"] == "typing":
            pass
        assert event["type"] == "reply"


def test_what_counts_as_the_database_being_away() -> None:
    orig = ConnectionError("connection refused")
    assert db_away(OperationalError("SELECT 1", {}, orig))
    assert db_away(DBAPIError("SELECT 1", {}, orig, connection_invalidated=True))
    assert db_away(PoolTimeout("QueuePool limit reached"))
    assert not db_away(IntegrityError("INSERT …", {}, orig))  # a bug, not an outage
    assert not db_away(ValueError("no"))
