"""The WeChat Official Account (公众号) webhook: ``GET /wechat`` answers WeChat's URL check,
``POST /wechat`` takes residents' messages and events.

WeChat waits 5 seconds for an answer and then retries (up to three times, same MsgId). The
chat turn runs as a task: if it finishes within ``wechat_reply_deadline_s`` the answer goes
back in the HTTP response (a passive reply); otherwise WeChat gets "success" at once and the
answer follows as a customer-service message when it is ready. Retries are recognised by the
chat service (the MsgId is the message's external id) and never answered twice."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from assistant.wechat import (
    MAX_BODY_BYTES,
    BadMessage,
    CryptoError,
    CustomerServiceClient,
    DatabaseTokenStore,
    Message,
    WeChatCrypto,
    check_signature,
    parse_message,
    render_text,
    text_reply_xml,
)
from banshi.settings import Settings

log = logging.getLogger(__name__)

NOT_HEARD = "抱歉，这条语音我没听清。请再说一遍，或者直接打字告诉我您要办的事。"
UNSUPPORTED = (
    "抱歉，我暂时看不了{what}。我能回答文字和语音提问，"
    "请用文字或语音告诉我您要办的事，例如：“居住证怎么办？”"
)
KINDS = {
    "image": "图片",
    "video": "视频",
    "shortvideo": "小视频",
    "location": "位置",
    "link": "链接",
    "file": "文件",
}
STARTING = "智能助手正在启动，请稍后再试。"
SORRY = "抱歉，系统暂时出了点问题，请稍后再试，或拨打12345热线。"
XML_TYPES = {"text/xml", "application/xml"}
SHUTDOWN_GRACE_S = 5.0  # answers still being worked on at shutdown get this long


class ChatLike(Protocol):
    """What the webhook needs of :class:`assistant.chat.ChatService`."""

    async def handle(
        self, channel: str, user_key: str, text: str, external_id: str | None = None
    ) -> Any: ...

    def welcome(self) -> list[dict[str, Any]]: ...


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    # answers that missed the window are still owed to residents: give them a moment
    pending: set[asyncio.Task[None]] = getattr(app.state, "wechat_tasks", set())
    if pending:
        _, late = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE_S)
        for task in late:
            task.cancel()
        if late:
            log.warning("shutdown: %d WeChat answers were not delivered", len(late))
    client: CustomerServiceClient | None = getattr(app.state, "wechat_cs", None)
    if client is not None:
        await client.close()
        app.state.wechat_cs = None


router = APIRouter(tags=["wechat"], lifespan=_lifespan)


def _plain(status: int, zh: str, en: str) -> PlainTextResponse:
    return PlainTextResponse(f"{zh}\n{en}\n", status_code=status)


def _success() -> PlainTextResponse:
    return PlainTextResponse("success")  # WeChat's "no reply (yet)"


def _remote(request: Request) -> str:
    host = request.client.host if request.client else "unknown"
    forwarded = request.headers.get("x-forwarded-for")
    return f"{host} (X-Forwarded-For: {forwarded})" if forwarded else host


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _switched_off() -> PlainTextResponse:
    return _plain(
        404,
        "微信公众号接入未开启。",
        "The WeChat webhook is off: set BANSHI_WECHAT_TOKEN to switch it on.",
    )


def _forbidden(request: Request, what: str) -> PlainTextResponse:
    log.warning("WeChat webhook: %s from %s; request refused", what, _remote(request))
    return _plain(403, "签名校验失败。", f"Signature check failed ({what}).")


def _crypto(settings: Settings) -> WeChatCrypto | None:
    """Safe mode for an encrypted message; None (logged) when it is not set up."""
    if not settings.wechat_aes_key:
        log.error(
            "WeChat sent a safe-mode (encrypted) message but BANSHI_WECHAT_AES_KEY is not "
            "set; set it to the account's EncodingAESKey"
        )
        return None
    try:
        return WeChatCrypto(settings.wechat_token, settings.wechat_aes_key, settings.wechat_app_id)
    except ValueError as exc:
        log.error("BANSHI_WECHAT_AES_KEY is not usable: %s", exc)
        return None


def customer_service(app: FastAPI, settings: Settings) -> CustomerServiceClient:
    """The app's customer-service client, made on first use; its access token is shared
    with the other API processes through the database (when the app has one)."""
    client: CustomerServiceClient | None = getattr(app.state, "wechat_cs", None)
    if client is None:
        db = getattr(app.state, "db", None)
        client = CustomerServiceClient(
            settings.wechat_api_base,
            settings.wechat_app_id,
            settings.wechat_app_secret,
            store=DatabaseTokenStore(db) if db is not None else None,
        )
        app.state.wechat_cs = client
    return client


def _keep(app: FastAPI, coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` in the background, holding a reference until it is done."""
    tasks: set[asyncio.Task[None]] | None = getattr(app.state, "wechat_tasks", None)
    if tasks is None:
        tasks = app.state.wechat_tasks = set()
    task = asyncio.create_task(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


@router.get("/wechat", response_class=PlainTextResponse)
async def verify(
    request: Request, signature: str = "", timestamp: str = "", nonce: str = "", echostr: str = ""
) -> Response:
    """WeChat's server-URL check (服务器配置): echo ``echostr`` when the signature is ours."""
    token = _settings(request).wechat_token
    if not token:
        return _switched_off()
    if not check_signature(token, signature, timestamp, nonce):
        return _forbidden(request, "bad signature on the URL check")
    return PlainTextResponse(echostr)


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it is over :data:`MAX_BODY_BYTES`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/wechat", response_class=PlainTextResponse)
async def receive(
    request: Request,
    signature: str = "",
    timestamp: str = "",
    nonce: str = "",
    encrypt_type: str = "",
    msg_signature: str = "",
) -> Response:
    """One message or event from WeChat."""
    started = time.monotonic()
    settings = _settings(request)
    token = settings.wechat_token
    if not token:
        return _switched_off()
    if not check_signature(token, signature, timestamp, nonce):
        return _forbidden(request, "bad signature")
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in XML_TYPES:
        return _plain(
            415,
            "只接受 XML 格式的微信消息。",
            f"Expected Content-Type text/xml or application/xml, got {media_type or 'none'!r}.",
        )
    body = await _read_body(request)
    if body is None:
        return _plain(413, "提交的内容太大了。", f"Body over {MAX_BODY_BYTES} bytes.")

    crypto: WeChatCrypto | None = None
    try:
        msg = parse_message(body)
        if msg.encrypt:
            crypto = _crypto(settings)
            if crypto is None:
                return _plain(500, "无法解密消息。", "Safe mode is not configured correctly.")
            msg = parse_message(crypto.decrypt_message(body, msg_signature, timestamp, nonce))
    except CryptoError as exc:
        return _forbidden(request, f"safe mode: {exc}")
    except BadMessage as exc:
        log.info("WeChat webhook: unreadable body from %s: %s", _remote(request), exc)
        return _plain(400, "消息格式不正确，不是有效的微信消息 XML。", f"Invalid XML: {exc}.")
    if not msg.from_user or not msg.msg_type:
        return _plain(400, "消息缺少发送者或消息类型。", "Message without FromUserName or MsgType.")

    def passive(content: str) -> Response:
        xml = text_reply_xml(msg, content)
        if crypto is not None and encrypt_type.lower() == "aes":
            xml = crypto.encrypt_reply(xml, nonce)
        return Response(xml, media_type="application/xml")

    chat: ChatLike | None = getattr(request.app.state, "chat", None)
    if chat is None:
        log.warning("WeChat message from %s while the chat service is not started", msg.from_user)
        return passive(STARTING)
    text = ""
    if msg.msg_type == "text":
        text = msg.content
    elif msg.msg_type == "voice":
        if not msg.recognition:
            return passive(NOT_HEARD)
        text = msg.recognition
    elif msg.msg_type == "event":
        if msg.event == "subscribe":
            return passive(render_text(chat.welcome(), settings.public_url))
        return _success()  # unsubscribe, menu clicks, scans, ...: nothing to say
    else:
        what = KINDS.get(msg.msg_type, "这类消息")
        return passive(UNSUPPORTED.format(what=what))

    turn = asyncio.create_task(
        chat.handle("wechat", msg.from_user, text, external_id=msg.dedupe_id)
    )
    remaining = settings.wechat_reply_deadline_s - (time.monotonic() - started)
    try:
        done, _ = await asyncio.wait({turn}, timeout=max(remaining, 0.0))
    except asyncio.CancelledError:  # WeChat hung up: the answer is still owed
        _keep(request.app, _deliver_late(request.app, settings, msg, turn))
        raise
    if not done:
        log.info("WeChat answer to %s missed the deadline; it follows by the API", msg.from_user)
        _keep(request.app, _deliver_late(request.app, settings, msg, turn))
        return _success()
    try:
        reply = turn.result()
    except Exception:
        log.exception("chat turn for WeChat user %s failed", msg.from_user)
        return passive(SORRY)
    if not reply.messages:
        # a retry whose first delivery is still being answered (that one answers), or a
        # conversation an agent has taken over
        return _success()
    return passive(render_text(reply.messages, settings.public_url))


async def _deliver_late(
    app: FastAPI, settings: Settings, msg: Message, turn: asyncio.Task[Any]
) -> None:
    """Wait for a turn that missed the passive-reply window and send it by the API."""
    try:
        reply = await turn
        messages = reply.messages
    except Exception:
        log.exception("chat turn for WeChat user %s failed", msg.from_user)
        messages = [{"text": SORRY, "buttons": [], "links": []}]
    if not messages:
        return
    client = customer_service(app, settings)
    await client.send_text(msg.from_user, render_text(messages, settings.public_url))
