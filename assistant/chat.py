"""One resident turn, whatever the channel: store what came in (once, even when a channel
retries), let Rasa decide and the custom actions answer, store what goes out. When Rasa is
down, the direct path answers from the knowledge base so residents are not failed."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from assistant import direct, replies
from assistant.models import ChatMessage, Conversation
from assistant.rasa_client import RasaClient, RasaDown
from assistant.replies import message
from assistant.skills import CANCEL_WAIT, PHONE, RATINGS, Deps
from banshi.bus import LocalBus

log = logging.getLogger(__name__)

EMPTY = "请输入您想咨询的问题，例如：“居住证怎么办？”"
DUPLICATE_WAIT_S = 6.0
TOO_FAST = "您发送得太快了，请稍等一分钟再发。"
INBOX = "inbox"  # the agents' topic on the bus (ticket_bridge.live listens to it too)
# Sends a text to a WeChat user (customer-service API); True when WeChat accepted it.
WeChatSend = Callable[[str, str], Coroutine[Any, Any, bool]]


def topic(conversation_id: str) -> str:
    """The bus topic a resident's open widget listens to."""
    return f"chat:{conversation_id}"


@dataclass
class ChatReply:
    conversation_id: str
    messages: list[dict[str, Any]]
    duplicate: bool = False  # a retry of a message already taken; messages are its answer
    degraded: bool = False  # answered without Rasa
    limited: bool = False  # rate-limited; nothing was stored
    extra: dict[str, Any] = field(default_factory=dict)


class ChatService:
    def __init__(self, deps: Deps, rasa: RasaClient | None, bus: LocalBus | None = None) -> None:
        self.deps = deps
        self.rasa = rasa
        self.rasa_ok: bool | None = None  # last seen state, for /healthz
        self.bus = bus or LocalBus()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wechat_send: WeChatSend | None = None

    def bind(self, loop: asyncio.AbstractEventLoop, wechat_send: WeChatSend | None) -> None:
        """The running loop (threads hand WeChat sends to it) and the WeChat sender."""
        self.loop, self.wechat_send = loop, wechat_send

    def welcome(self) -> list[dict[str, Any]]:
        """The greeting (with the centre's hours), e.g. for a new WeChat follower."""
        d = self.deps
        return [replies.greeting_message(d.kb.catalog, d.calendar, d.now())]

    async def handle(
        self, channel: str, user_key: str, text: str, external_id: str | None = None
    ) -> ChatReply:
        text = (text or "").strip()
        limit = self.deps.settings.chat_max_chars
        notice = ""
        if len(text) > limit:
            text, notice = text[:limit], f"您的消息较长，只按前{limit}个字理解。"
        conv_id = await asyncio.to_thread(self._conversation, channel, user_key)
        if not text:
            return ChatReply(conv_id, [message(EMPTY)])
        taken = await asyncio.to_thread(self._take, conv_id, text, external_id)
        if taken is None:
            return ChatReply(conv_id, [message(TOO_FAST)], limited=True)
        inbound, duplicate = taken
        if duplicate:
            return ChatReply(conv_id, await self._wait_answer(inbound), duplicate=True)
        if await asyncio.to_thread(self._leaves_queue, conv_id, text):
            left = [message("已为您取消排队，智能助手继续为您服务。需要时可以再说“转人工”。")]
            await asyncio.to_thread(self._store_out, conv_id, inbound, left)
            return ChatReply(conv_id, left)
        if await asyncio.to_thread(self._held_by_person, conv_id):
            # a person has it (ticket bridge): the bot is silent, the agents hear of it
            self.bus.publish(INBOX, {"type": "message", "conversation_id": conv_id})
            return ChatReply(conv_id, [])
        after = await asyncio.to_thread(self._after_ticket, conv_id, text)
        if after is not None:
            await asyncio.to_thread(self._store_out, conv_id, inbound, after)
            return ChatReply(conv_id, after)
        degraded = False
        try:
            if self.rasa is None:
                raise RasaDown("no Rasa configured")
            messages = await self.rasa.send(conv_id, text, {"channel": channel})
            self.rasa_ok = True
        except RasaDown as exc:
            if self.rasa_ok is not False:
                log.warning("answering without Rasa: %s", exc)
            self.rasa_ok, degraded = False, True
            messages = await asyncio.to_thread(direct.respond, self.deps, conv_id, text)
        if notice and messages:
            messages[0] = {**messages[0], "text": f"{notice}\n{messages[0]['text']}"}
        await asyncio.to_thread(self._store_out, conv_id, inbound, messages)
        return ChatReply(conv_id, messages, degraded=degraded)

    async def _wait_answer(self, inbound_id: int) -> list[dict[str, Any]]:
        """A retry may arrive while the first attempt is still being answered (in this or
        another process): wait a little for that answer rather than answer twice."""
        deadline = asyncio.get_running_loop().time() + DUPLICATE_WAIT_S
        while True:
            answer = await asyncio.to_thread(self._answer_of, inbound_id)
            if answer or asyncio.get_running_loop().time() > deadline:
                return answer
            await asyncio.sleep(0.2)

    # -- storage (blocking; run in a thread) -------------------------------------------
    def _conversation(self, channel: str, user_key: str) -> str:
        for _ in range(2):
            with self.deps.db.session() as s:
                conv_id = _conversation_of(s, channel, user_key)
                if conv_id:
                    return conv_id
            try:
                with self.deps.db.session() as s:
                    conv_id = secrets.token_hex(16)
                    s.add(Conversation(id=conv_id, channel=channel, user_key=user_key))
                return conv_id
            except IntegrityError:
                continue  # another process made it first: read theirs
        raise RuntimeError(f"cannot create a conversation for {channel}:{user_key}")

    def _take(self, conv_id: str, text: str, external_id: str | None) -> tuple[int, bool] | None:
        """Store the inbound message. (id, False) if new; (id of the original, True) for a
        retry of the same external id; None if the resident is over the rate limit."""
        db = self.deps.db
        if external_id:
            with db.session() as s:
                seen = _message_with(s, conv_id, external_id)
            if seen:
                return seen, True
        since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        try:
            with db.session() as s:
                recent = s.scalar(
                    select(func.count(ChatMessage.id)).where(
                        ChatMessage.conversation_id == conv_id,
                        ChatMessage.direction == "in",
                        ChatMessage.created_at >= since,
                    )
                )
                if (recent or 0) >= self.deps.settings.chat_rate_per_minute:
                    return None
                row = ChatMessage(
                    conversation_id=conv_id,
                    direction="in",
                    author="resident",
                    text=text,
                    external_id=external_id,
                )
                s.add(row)
                s.flush()
                row_id = row.id
                conv = s.get(Conversation, conv_id)
                if conv is not None:
                    conv.updated_at = dt.datetime.now(dt.UTC)
            return row_id, False
        except IntegrityError:
            # the same retry arrived at another process a moment earlier
            with db.session() as s:
                original = _message_with(s, conv_id, external_id or "")
            assert original is not None
            return original, True

    def _answer_of(self, inbound_id: int) -> list[dict[str, Any]]:
        with self.deps.db.session() as s:
            rows = s.scalars(
                select(ChatMessage)
                .where(ChatMessage.reply_to == inbound_id)
                .order_by(ChatMessage.id)
            ).all()
            return [_as_message(r) for r in rows]

    def _held_by_person(self, conv_id: str) -> bool:
        with self.deps.db.session() as s:
            conv = s.get(Conversation, conv_id)
            return conv is not None and conv.state != "bot"

    def _store_out(self, conv_id: str, inbound_id: int, messages: list[dict[str, Any]]) -> None:
        with self.deps.db.session() as s:
            for m in messages:
                s.add(
                    ChatMessage(
                        conversation_id=conv_id,
                        direction="out",
                        author="bot",
                        text=m["text"],
                        payload={"buttons": m["buttons"], "links": m["links"]},
                        reply_to=inbound_id,
                    )
                )

    def _leaves_queue(self, conv_id: str, text: str) -> bool:
        """ "取消" while waiting for a person (not once one is talking with them)."""
        if self.deps.bridge is None or text.strip("。！!.～~ ") not in CANCEL_WAIT:
            return False
        with self.deps.db.session() as s:
            conv = s.get(Conversation, conv_id)
            if conv is None or conv.state != "waiting":
                return False
        return self.deps.bridge.cancel_wait(conv_id)

    def _after_ticket(self, conv_id: str, text: str) -> list[dict[str, Any]] | None:
        """Replies the ticket bridge gives without the bot: a rating word for a closed
        ticket (回访), or a phone number left for an out-of-hours ticket."""
        bridge = self.deps.bridge
        if bridge is None:
            return None
        if text in RATINGS:
            said = bridge.rate_from_chat(conv_id, text)
            return [message(said)] if said else None
        found = PHONE.search(text)
        if found and len(text) - len(found.group()) <= 12:
            number = bridge.attach_phone(conv_id, found.group())
            if number:
                return [message(f"已记下您的手机号，工作人员办理受理号{number}时会联系您。")]
        return None

    # -- for the ticket bridge: people writing to residents (ticket_bridge.live.Channels) --
    def channel_of(self, conversation_id: str) -> str | None:
        with self.deps.db.session() as s:
            conv = s.get(Conversation, conversation_id)
            return conv.channel if conv else None

    def set_state(self, conversation_id: str, state: str) -> None:
        with self.deps.db.session() as s:
            conv = s.get(Conversation, conversation_id)
            if conv is not None:
                conv.state = state
                conv.pending_question, conv.misses = None, 0

    def transcript(self, conversation_id: str) -> list[dict[str, Any]]:
        """What was said, for a ticket's record (buttons left out)."""
        return [
            {"author": m["author"], "text": m["text"], "at": m["at"]}
            for m in self.messages(conversation_id, 0, limit=500)
        ]

    def messages(
        self, conversation_id: str, after: int = 0, limit: int = 200
    ) -> list[dict[str, Any]]:
        with self.deps.db.session() as s:
            rows = s.scalars(
                select(ChatMessage)
                .where(ChatMessage.conversation_id == conversation_id, ChatMessage.id > after)
                .order_by(ChatMessage.id.desc())
                .limit(limit)
            ).all()
            return [_with_meta(r) for r in reversed(rows)]

    def post(
        self, conversation_id: str, author: str, messages: list[dict[str, Any]]
    ) -> concurrent.futures.Future[bool] | None:
        """Store messages from a person (or the system) and push them to the resident: live
        to an open widget, through the customer-service API to WeChat. For WeChat the future
        says whether WeChat took it."""
        with self.deps.db.session() as s:
            conv = s.get(Conversation, conversation_id)
            if conv is None:
                return None
            rows = [
                ChatMessage(
                    conversation_id=conversation_id,
                    direction="out",
                    author=author,
                    text=m["text"],
                    payload={"buttons": m.get("buttons") or [], "links": m.get("links") or []},
                )
                for m in messages
            ]
            s.add_all(rows)
            s.flush()
            pushed = [_with_meta(r) for r in rows]
            channel, user_key = conv.channel, conv.user_key
        return self._deliver(conversation_id, channel, user_key, pushed, messages)

    def post_once(
        self, conversation_id: str, author: str, msg: dict[str, Any], external_id: str
    ) -> tuple[dict[str, Any], bool, concurrent.futures.Future[bool] | None] | None:
        """``post`` of one message that carries the sender's id for it (an agent's retry of
        the same reply): (the stored message, duplicate?, WeChat's future). The unique
        (conversation, external id) decides, also when the retry reaches another process
        at the same moment; a duplicate is neither stored nor sent again. None: no such
        conversation."""
        pushed: dict[str, Any] | None = None
        with self.deps.db.session() as s:
            conv = s.get(Conversation, conversation_id)
            if conv is None:
                return None
            seen = s.get(ChatMessage, _message_with(s, conversation_id, external_id) or 0)
            if seen is not None:
                return _with_meta(seen), True, None
            row = ChatMessage(
                conversation_id=conversation_id,
                direction="out",
                author=author,
                text=msg["text"],
                payload={"buttons": msg.get("buttons") or [], "links": msg.get("links") or []},
                external_id=external_id,
            )
            try:
                with s.begin_nested():
                    s.add(row)
                pushed = _with_meta(row)
            except IntegrityError:
                pass  # stored by another process a moment ago
            channel, user_key = conv.channel, conv.user_key
        if pushed is not None:
            return pushed, False, self._deliver(conversation_id, channel, user_key, [pushed], [msg])
        with self.deps.db.session() as s:
            original = s.get(ChatMessage, _message_with(s, conversation_id, external_id))
            assert original is not None
            return _with_meta(original), True, None

    def _deliver(
        self,
        conversation_id: str,
        channel: str,
        user_key: str,
        pushed: list[dict[str, Any]],
        messages: list[dict[str, Any]],
    ) -> concurrent.futures.Future[bool] | None:
        self.bus.publish(topic(conversation_id), {"type": "push", "messages": pushed})
        if channel == "wechat" and self.wechat_send and self.loop:
            from assistant.wechat import render_text

            text = render_text(messages, self.deps.settings.public_url)
            return asyncio.run_coroutine_threadsafe(self.wechat_send(user_key, text), self.loop)
        return None

    def notify(self, conversation_id: str, event: dict[str, Any]) -> None:
        """A passing event for the resident's widget (their place in the queue): not stored."""
        self.bus.publish(topic(conversation_id), event)

    def conversation_for(self, channel: str, user_key: str) -> str:
        return self._conversation(channel, user_key)

    def history(self, channel: str, user_key: str, limit: int = 100) -> list[dict[str, Any]]:
        """The conversation as the resident saw it, oldest first."""
        with self.deps.db.session() as s:
            conv_id = _conversation_of(s, channel, user_key)
            if conv_id is None:
                return []
            rows = s.scalars(
                select(ChatMessage)
                .where(ChatMessage.conversation_id == conv_id)
                .order_by(ChatMessage.id.desc())
                .limit(limit)
            ).all()
            return [_with_meta(r) for r in reversed(rows)]


def _conversation_of(s: Session, channel: str, user_key: str) -> str | None:
    return s.scalar(
        select(Conversation.id).where(
            Conversation.channel == channel, Conversation.user_key == user_key
        )
    )


def _message_with(s: Session, conv_id: str, external_id: str) -> int | None:
    return s.scalar(
        select(ChatMessage.id).where(
            ChatMessage.conversation_id == conv_id, ChatMessage.external_id == external_id
        )
    )


def _with_meta(row: ChatMessage) -> dict[str, Any]:
    at = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=dt.UTC)
    return {**_as_message(row), "id": row.id, "author": row.author, "at": at.isoformat()}


def _as_message(row: ChatMessage) -> dict[str, Any]:
    payload = row.payload or {}
    return message(row.text, payload.get("buttons"), payload.get("links"))
