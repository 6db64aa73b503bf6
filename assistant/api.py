"""HTTP for the chat: the web widget's WebSocket and REST fallback, its history, and the
Rasa custom-action webhook that Rasa calls back into."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from assistant.chat import ChatReply, ChatService, topic
from assistant.rasa_project import action_token
from banshi.errors import BanshiError, Forbidden, TooMany, Unavailable

log = logging.getLogger(__name__)
router = APIRouter(tags=["chat"])

# A widget session id is random (made in the browser); it is also the key to its history.
SESSION = r"^[A-Za-z0-9_-]{16,64}$"
CLIENT_ID = r"^[A-Za-z0-9_-]{1,64}$"
MAX_FRAME = 16384  # bytes of one WebSocket frame (4,000 Chinese characters fit)
# the database is restarting or unreachable: what the resident is told, and when to retry
DB_AWAY = "系统正在恢复，请稍等几秒再发送。"
RETRY_AFTER_S = 3
FAILED = "系统暂时出了点问题，请稍后再试，或拨打12345热线。"
TRY_AGAIN_LATER = 1013  # WebSocket close code: the widget waits a little longer to reconnect


def chat_service(request: Request) -> ChatService:
    chat: ChatService | None = getattr(request.app.state, "chat", None)
    if chat is None:
        raise Unavailable("智能助手正在启动，请稍后再试。", "chat service not started")
    return chat


class ChatIn(BaseModel):
    session: str = Field(pattern=SESSION)
    # longer than the chat limit is accepted and cut with a notice; far longer is refused
    text: str = Field(max_length=4000)
    client_id: str | None = Field(default=None, pattern=CLIENT_ID)


def reply_body(reply: ChatReply) -> dict[str, Any]:
    return {
        "conversation": reply.conversation_id,
        "messages": reply.messages,
        "duplicate": reply.duplicate,
        "degraded": reply.degraded,
    }


@router.post("/api/chat/messages")
async def post_message(body: ChatIn, request: Request) -> dict[str, Any]:
    """One message from the widget (the REST fallback when WebSocket is unavailable)."""
    reply = await chat_service(request).handle("web", body.session, body.text, body.client_id)
    if reply.limited:
        raise TooMany(reply.messages[0]["text"], "per-resident rate limit")
    return reply_body(reply)


@router.get("/api/chat/history")
async def get_history(
    request: Request, session: Annotated[str, Query(pattern=SESSION)]
) -> dict[str, Any]:
    chat = chat_service(request)
    return {"messages": await asyncio.to_thread(chat.history, "web", session)}


@router.websocket("/api/chat/ws")
async def chat_socket(ws: WebSocket) -> None:
    """The widget's line: its messages in, the bot's replies out, and, pushed as they
    happen, what people write to the resident (agents, the system) and their place in the
    queue. Pushes missed (another process, a full queue) are caught up from the database."""
    session = ws.query_params.get("session", "")
    chat: ChatService | None = getattr(ws.app.state, "chat", None)
    if not re.match(SESSION, session) or chat is None:
        await ws.accept()
        if not re.match(SESSION, session):
            await ws.close(code=4400, reason="bad session id")
        else:
            await ws.close(code=TRY_AGAIN_LATER, reason="chat not started")
        return
    try:
        conv_id = await asyncio.to_thread(chat.conversation_for, "web", session)
    except Exception as exc:  # told to the widget as a close code, and logged
        await _turn_away(ws, exc)
        return
    sent = Sent()
    lock = asyncio.Lock()

    async def send(data: dict[str, Any]) -> None:
        async with lock:
            await ws.send_json(data)

    async def push(messages: list[dict[str, Any]]) -> None:
        fresh = sent.fresh(messages)
        if fresh:
            await send({"type": "push", "messages": fresh})

    async with chat.bus.subscribe(topic(conv_id)) as queue:
        # What is stored now the page has, or gets from its history fetch when the socket
        # opens: read before accepting, so that fetch cannot miss what this read saw.
        # ?after=<id>: the page has only up to that id; what is newer is sent at once.
        after = ws.query_params.get("after", "")
        began = time.monotonic()
        try:
            rows = await asyncio.to_thread(chat.messages, conv_id, 0, CATCH_UP_ROWS)
        except Exception as exc:  # as above
            await _turn_away(ws, exc)
            return
        OUTAGE.over()
        sent.fresh([m for m in rows if not after.isdigit() or m["id"] <= int(after)])
        await ws.accept()
        await push(rows)
        sent.settle(rows, began, time.monotonic())
        tasks = [
            asyncio.create_task(_listen(queue, push, send)),
            asyncio.create_task(_catch_up(chat, conv_id, sent, push)),
        ]
        try:
            await _read_loop(ws, chat, session, send)
        except (WebSocketDisconnect, RuntimeError):
            return
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # e.g. sent to a closed socket


def db_away(exc: BaseException) -> bool:
    """The database restarting or unreachable (try again in a moment), not a bug in a query:
    as banshi.errors tells them apart for HTTP, plus the pool giving up on a connection."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError)
    return isinstance(exc, (PoolTimeout, DisconnectionError))


class Outage:
    """Logs a database outage once per process (not once per socket and attempt: with the
    database stopped for seconds every open widget fails every read), and when it is over."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.failures = 0

    def failed(self, what: str, exc: BaseException) -> None:
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            cause = type(getattr(exc, "orig", None) or exc).__name__
            log.warning("chat sockets: database unavailable (%s in %s), retrying", cause, what)

    def over(self) -> None:
        if self.since is not None:
            log.warning(
                "chat sockets: database back after %.1f s (%d failed reads)",
                time.monotonic() - self.since,
                self.failures,
            )
            self.since, self.failures = None, 0


OUTAGE = Outage()


async def _turn_away(ws: WebSocket, exc: Exception) -> None:
    """The socket cannot open: accepted and closed at once with a code the widget acts on
    (1013: try again later, and it backs off), never an exception out of the handler, which
    would drop the connection with a bare 1006 and no backoff."""
    if db_away(exc):
        OUTAGE.failed("opening a socket", exc)
        code, reason = TRY_AGAIN_LATER, "database unavailable, try again shortly"
    else:
        log.error("chat socket could not open", exc_info=exc)
        code, reason = 1011, "server error"
    try:
        await ws.accept()
        await ws.close(code=code, reason=reason)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the widget has gone already


PUSHED = ("agent", "system")  # bot replies go back as the answer to the resident's message
CATCH_UP_S = 2.0  # how often an open socket re-reads the conversation, whatever else comes
CATCH_UP_ROWS = 50  # newest messages above the floor read each time
SETTLE_S = 60.0  # a message is committed (or never will be) this long after its id is seen


class Sent:
    """The messages one socket has sent (or the page had when it connected), by id.

    Ids are handed out before commit (PostgreSQL), and pushes from other processes come
    over Redis, so a message may become visible after one with a higher id: a "highest id
    sent" mark would drop it for good. So each catch-up re-reads the conversation above
    ``floor`` and sends whatever is not in ``ids``. The floor passes an id only once a read
    has begun SETTLE_S after a read that saw that id: anything lower was committed by then
    (and sent) or never will be. That keeps ``ids`` to about the last minute's messages."""

    def __init__(self) -> None:
        self.floor = 0
        self.ids: set[int] = set()
        self._marks: deque[tuple[float, int]] = deque()  # (read done, highest id it saw)

    def fresh(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages to send (never sent, people's), now counted as sent."""
        out = [
            m
            for m in messages
            if m["id"] > self.floor and m["id"] not in self.ids and m["author"] in PUSHED
        ]
        self.ids.update(m["id"] for m in out)
        return out

    def settle(self, rows: list[dict[str, Any]], began: float, done: float) -> None:
        """After a read of the database (begun, done: time.monotonic()) has been sent."""
        while self._marks and self._marks[0][0] <= began - SETTLE_S:
            self.floor = max(self.floor, self._marks.popleft()[1])
        self.ids = {i for i in self.ids if i > self.floor}
        if rows:
            self._marks.append((done, rows[-1]["id"]))


async def _listen(
    queue: asyncio.Queue[dict[str, Any]],
    push: Callable[[list[dict[str, Any]]], Awaitable[None]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    while True:
        event = await queue.get()
        if event.get("type") == "push":
            await push(event["messages"])
        else:
            await send(event)


async def _catch_up(
    chat: ChatService,
    conv_id: str,
    sent: Sent,
    push: Callable[[list[dict[str, Any]]], Awaitable[None]],
) -> None:
    """On a fixed period, busy or not: what the pushes missed (another process, a commit
    that came after a later message's, a full queue)."""
    while True:
        await asyncio.sleep(CATCH_UP_S)
        began = time.monotonic()
        try:
            rows = await asyncio.to_thread(chat.messages, conv_id, sent.floor, CATCH_UP_ROWS)
        except Exception as exc:  # this task must outlive any one read
            if db_away(exc):  # the next period tries again
                OUTAGE.failed("a catch-up", exc)
            else:
                log.error("chat catch-up for %s failed", conv_id, exc_info=exc)
            continue
        OUTAGE.over()
        await push(rows)
        sent.settle(rows, began, time.monotonic())


async def _read_loop(ws: WebSocket, chat: ChatService, session: str, send: Any) -> None:
    while True:
        raw = await ws.receive_text()
        if len(raw.encode()) > MAX_FRAME:
            await send({"type": "error", "message": "消息太长了，请分几次发送。"})
            continue
        try:
            data = json.loads(raw)
            body = ChatIn(session=session, text=data["text"], client_id=data.get("client_id"))
        except (ValueError, TypeError, KeyError):  # pydantic's ValidationError is a ValueError
            await send({"type": "error", "message": "消息格式不对，请刷新页面后重试。"})
            continue
        await send({"type": "typing"})
        error: dict[str, Any] = {"type": "error", "client_id": body.client_id}
        try:
            reply = await chat.handle("web", session, body.text, body.client_id)
        except BanshiError as exc:
            await send({**error, "message": exc.message})
            continue
        except Exception as exc:  # one message failed, not the socket
            if not db_away(exc):
                log.error("chat message on the socket failed", exc_info=exc)
                await send({**error, "message": FAILED})
                continue
            # Stored or not, the widget sends it again with the same client_id once the
            # database is back; a retry of a stored one is a duplicate, answered once.
            OUTAGE.failed("a resident's message", exc)
            await send({**error, "message": DB_AWAY, "retry_after": RETRY_AFTER_S})
            continue
        await send({"type": "reply", "client_id": body.client_id, **reply_body(reply)})


@router.post("/api/rasa/actions", include_in_schema=False)
async def run_action(request: Request, token: str = "") -> JSONResponse:
    """Rasa's action server protocol (rasa-sdk's executor, mounted here)."""
    settings = request.app.state.settings
    if not hmac.compare_digest(token, action_token(settings.secret_key)):
        raise Forbidden("无权访问。", "bad or missing action token")
    executor = getattr(request.app.state, "actions", None)
    if executor is None:
        raise Unavailable("智能助手正在启动，请稍后再试。", "actions not ready")
    call = await request.json()
    try:
        result = await executor.run(call)
    except ActionExecutionRejection as exc:
        return JSONResponse({"error": exc.message, "action_name": exc.action_name}, status_code=400)
    except ActionNotFoundException as exc:
        return JSONResponse({"error": exc.message, "action_name": exc.action_name}, status_code=404)
    return JSONResponse(result.model_dump() if result else {})
