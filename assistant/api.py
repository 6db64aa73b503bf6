"""HTTP for the chat: the web widget's WebSocket and REST fallback, its history, and the
Rasa custom-action webhook that Rasa calls back into."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException

from assistant.chat import ChatReply, ChatService, topic
from assistant.rasa_project import action_token
from banshi.errors import BanshiError, Forbidden, TooMany, Unavailable

log = logging.getLogger(__name__)
router = APIRouter(tags=["chat"])

# A widget session id is random (made in the browser); it is also the key to its history.
SESSION = r"^[A-Za-z0-9_-]{16,64}$"
CLIENT_ID = r"^[A-Za-z0-9_-]{1,64}$"
MAX_FRAME = 16384  # bytes of one WebSocket frame (4,000 Chinese characters fit)


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
    await ws.accept()
    if not re.match(SESSION, session):
        await ws.close(code=4400, reason="bad session id")
        return
    chat: ChatService | None = getattr(ws.app.state, "chat", None)
    if chat is None:
        await ws.close(code=1013, reason="chat not started")
        return
    conv_id = await asyncio.to_thread(chat.conversation_for, "web", session)
    # ?after=<id of the last message the page has>: what came since is sent at once
    after = ws.query_params.get("after", "")
    seen = int(after) if after.isdigit() else await asyncio.to_thread(_last_pushable, chat, conv_id)
    lock = asyncio.Lock()

    async def send(data: dict[str, Any]) -> None:
        async with lock:
            await ws.send_json(data)

    async def push(messages: list[dict[str, Any]]) -> None:
        nonlocal seen
        fresh = [m for m in messages if m["id"] > seen and m["author"] in PUSHED]
        if fresh:
            seen = max(m["id"] for m in fresh)
            await send({"type": "push", "messages": fresh})

    async with chat.bus.subscribe(topic(conv_id)) as queue:
        if after.isdigit():
            await push(await asyncio.to_thread(chat.messages, conv_id, seen, 50))
        pusher = asyncio.create_task(_push_loop(chat, conv_id, queue, push, send))
        try:
            await _read_loop(ws, chat, session, send)
        except (WebSocketDisconnect, RuntimeError):
            return
        finally:
            pusher.cancel()


PUSHED = ("agent", "system")  # bot replies go back as the answer to the resident's message
CATCH_UP_S = 2.0


def _last_pushable(chat: ChatService, conv_id: str) -> int:
    rows = chat.messages(conv_id, 0, limit=1)
    return rows[-1]["id"] if rows else 0


async def _push_loop(
    chat: ChatService,
    conv_id: str,
    queue: asyncio.Queue[dict[str, Any]],
    push: Any,
    send: Any,
) -> None:
    while True:
        try:
            event = await asyncio.wait_for(queue.get(), CATCH_UP_S)
        except TimeoutError:
            # quiet for a while: anything stored by another process since?
            await push(await asyncio.to_thread(chat.messages, conv_id, 0, 50))
            continue
        if event.get("type") == "push":
            await push(event["messages"])
        else:
            await send(event)


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
        try:
            reply = await chat.handle("web", session, body.text, body.client_id)
        except BanshiError as exc:
            await send({"type": "error", "message": exc.message})
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
