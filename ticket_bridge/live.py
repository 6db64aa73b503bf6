"""Live hand-off: conversations the bot could not serve wait in a queue, are given to online
agents round-robin within each agent's capacity (or claimed from the queue: exactly one
claim wins), and end by going back to the bot, to another agent or department, or closed
with a ticket. Outside working hours an escalation becomes a ticket straight away.

The methods are blocking (database work); the API runs them in threads. Every claim is a
guarded UPDATE on the chat row after locking the agent's row, so two processes cannot give
one conversation to two agents, nor an agent more chats than their capacity."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from banshi.auth import ROLE_RANK, Principal
from banshi.bus import LocalBus
from banshi.db import Database
from banshi.errors import BanshiError, Conflict
from banshi.workcal import WorkCalendar
from ticket_bridge import numbers
from ticket_bridge.errors import ChatTaken, NotYours, TicketNotFound
from ticket_bridge.lifecycle import CATEGORIES, OPEN, RATINGS
from ticket_bridge.models import AgentState, LiveChat, OutboxEvent, Ticket, now_utc
from ticket_bridge.privacy import mask_phone, mask_text
from ticket_bridge.tickets import TicketDesk, aware

log = logging.getLogger(__name__)

INBOX = "inbox"  # bus topic every agent's inbox listens to
CATEGORY_OF_REASON = {
    "complaint": "投诉",
    "misses": "咨询",
    "request": "求助",
    "suggestion": "建议",
}
RECENT_TICKET = dt.timedelta(hours=12)  # asking again out of hours: the same ticket
RATING_BUTTONS = [{"title": r, "payload": r} for r in RATINGS]
DEFAULT_CAPACITY = 3
PRESENCE_TTL = dt.timedelta(minutes=3)  # an inbox unseen this long is a closed one
PRESENCE_TOUCH = dt.timedelta(seconds=30)  # how stale "seen" may get before it is written
AGENT_ID_PREFIX = "agent:"  # an agent's reply id among the chat's message ids (64 chars)


class Channels(Protocol):
    """What the chat part does for us (implemented by assistant.chat.ChatService)."""

    def channel_of(self, conversation_id: str) -> str | None: ...

    def set_state(self, conversation_id: str, state: str) -> None: ...

    def transcript(self, conversation_id: str) -> list[dict[str, Any]]: ...

    def messages(self, conversation_id: str, after: int = 0) -> list[dict[str, Any]]: ...

    def post(
        self, conversation_id: str, author: str, messages: list[dict[str, Any]]
    ) -> concurrent.futures.Future[bool] | None: ...

    def post_once(
        self, conversation_id: str, author: str, msg: dict[str, Any], external_id: str
    ) -> tuple[dict[str, Any], bool, concurrent.futures.Future[bool] | None] | None: ...

    def notify(self, conversation_id: str, event: dict[str, Any]) -> None: ...


def _msg(text: str, buttons: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"text": text, "buttons": buttons or [], "links": []}


@dataclass
class Reply:
    """An agent's reply as stored: ``message`` (None when sent without a client id),
    ``duplicate`` (the same client id again: nothing stored or sent a second time), and
    ``delivery``, WeChat's answer to the sending (None on other channels, and for a
    duplicate: the first attempt sent it); ``channel`` of the chat (web, wechat…)."""

    message: dict[str, Any] | None
    duplicate: bool
    delivery: concurrent.futures.Future[bool] | None
    channel: str


class LiveDesk:
    def __init__(
        self,
        db: Database,
        tickets: TicketDesk,
        calendar: WorkCalendar,
        bus: LocalBus,
        channels: Channels,
        hotline: str = "12345",
    ) -> None:
        self.db = db
        self.tickets = tickets
        self.calendar = calendar
        self.bus = bus
        self.channels = channels
        self.hotline = hotline
        # one assignment pass at a time in this process; a request made during a pass is
        # served by one more pass of the thread running (threads would only queue on the
        # same agent rows, which is what made busy hours slow on PostgreSQL)
        self._assigning = threading.Lock()
        self._assign_again = False

    # -- escalation (called by the chat's skills) ----------------------------------------
    def escalate(
        self,
        conversation_id: str,
        reason: str,
        summary: str,
        phone: str = "",
        item_id: str | None = None,
    ) -> dict[str, Any]:
        """Queue the conversation for a person (in hours) or record a ticket (out of hours,
        and always for suggestions). Returns what to tell the resident."""
        channel = self.channels.channel_of(conversation_id) or "web"
        now = now_utc()
        if reason == "suggestion" or not self.calendar.is_open(now):
            number = self._ticket_for_escalation(
                conversation_id, channel, reason, summary, phone, item_id
            )
            return {
                "kind": "ticket",
                "number": number,
                "spoken": " ".join(number),
                "callback": self.calendar.describe_next(now),
                "has_phone": bool(phone or self._ticket_phone(number)),
            }
        try:
            with self.db.session() as s:
                s.add(
                    LiveChat(
                        conversation_id=conversation_id,
                        open_key=conversation_id,
                        channel=channel,
                        status="waiting",
                        reason=reason if reason in CATEGORY_OF_REASON else "request",
                        summary=summary[:500],
                        phone=phone,
                        item_id=item_id,
                    )
                )
        except IntegrityError:
            pass  # already queued or held: tell them where they are, do not queue twice
        self.channels.set_state(conversation_id, "waiting")
        self.bus.publish(INBOX, {"type": "queue"})
        self.assign_waiting()
        self._tell_positions()
        return self._place(conversation_id)

    def cancel_wait(self, conversation_id: str) -> bool:
        """The resident no longer wants to wait: out of the queue, back to the bot."""
        with self.db.session() as s:
            left = _close_waiting(s, LiveChat.open_key == conversation_id, "cancelled")
        if left:
            self.channels.set_state(conversation_id, "bot")
            self.bus.publish(INBOX, {"type": "queue"})
            self._tell_positions()
        return bool(left)

    def _place(self, conversation_id: str) -> dict[str, Any]:
        with self.db.session() as s:
            chat = s.scalar(select(LiveChat).where(LiveChat.open_key == conversation_id))
            if chat is None:
                return {"kind": "closed"}
            if chat.status == "active":
                return {"kind": "active", "agent": chat.agent}
            ahead = _ahead(s, chat)
            online = s.scalar(
                select(func.count()).select_from(AgentState).where(AgentState.status == "online")
            )
        return {"kind": "queued", "ahead": ahead, "agents_online": int(online or 0)}

    def _ticket_for_escalation(
        self,
        conversation_id: str,
        channel: str,
        reason: str,
        summary: str,
        phone: str,
        item_id: str | None,
    ) -> str:
        category = CATEGORY_OF_REASON.get(reason, "求助")
        with self.db.session() as s:
            recent = self.tickets.for_conversation(s, conversation_id)
            if (
                recent is not None
                and recent.status in OPEN
                and recent.category == category
                and aware(recent.created_at) > now_utc() - RECENT_TICKET
            ):
                if phone and not recent.phone:
                    recent.phone = phone
                return recent.number
        transcript = self.channels.transcript(conversation_id)
        with self.db.session() as s:
            ticket = self.tickets.create(
                s,
                channel=_ticket_channel(channel),
                category=category,
                content=summary or "（见对话记录）",
                actor="assistant",
                phone=phone,
                item_id=item_id,
                department=self.tickets.department_of_item(item_id),
                conversation_id=conversation_id,
                transcript=transcript,
            )
            return ticket.number

    def _ticket_phone(self, number: str) -> str:
        with self.db.session() as s:
            return s.scalar(select(Ticket.phone).where(Ticket.number == number)) or ""

    # -- agents ------------------------------------------------------------------------
    def agent_state(self, username: str) -> dict[str, Any]:
        with self.db.session() as s:
            state = s.get(AgentState, username)
            return {
                "username": username,
                "status": state.status if state else "offline",
                "capacity": state.capacity if state else DEFAULT_CAPACITY,
                "department": state.department if state else None,
                "active": _active_count(s, username),
            }

    def seen(self, username: str) -> None:
        """The agent's inbox is open (it polls): keeps their presence fresh."""
        now = now_utc()
        with self.db.session() as s:
            s.execute(
                update(AgentState)
                .where(
                    AgentState.username == username,
                    AgentState.updated_at < now - PRESENCE_TOUCH,
                )
                .values(updated_at=now)
            )

    def expire_presence(self) -> int:
        """Agents whose inbox has not been seen for PRESENCE_TTL (a closed tab, a crashed
        PC) go offline, and their chats back to the queue: nobody talks to an empty chair."""
        cutoff = now_utc() - PRESENCE_TTL
        with self.db.session() as s:
            gone = s.scalars(
                select(AgentState.username).where(
                    AgentState.status != "offline", AgentState.updated_at < cutoff
                )
            ).all()
        for username in gone:
            log.info("agent %s not seen since %s: set offline", username, cutoff)
            self.set_agent_state(username, "offline")
        return len(gone)

    def set_agent_state(
        self,
        username: str,
        status: str | None = None,
        capacity: int | None = None,
        department: str | None = "",
    ) -> dict[str, Any]:
        """online / away / offline. Going offline puts the agent's chats back at the head of
        the queue so no resident is left with nobody."""
        if status not in (None, "online", "away", "offline"):
            raise BanshiError("状态应为在线、离开或下线。", "status must be online|away|offline")
        returned: list[str] = []
        with self.db.session() as s:
            state = _agent(s, username)
            if status:
                state.status = status
            if capacity is not None:
                if not 1 <= capacity <= 20:
                    raise BanshiError("同时接待数应在1到20之间。", "capacity must be 1..20")
                state.capacity = capacity
            if department != "":
                state.department = department
            state.updated_at = now_utc()
            if status == "offline":
                held = s.scalars(
                    select(LiveChat).where(LiveChat.agent == username, LiveChat.status == "active")
                ).all()
                for chat in held:
                    chat.status, chat.agent = "waiting", None
                    returned.append(chat.conversation_id)
        for conv in returned:
            self.channels.set_state(conv, "waiting")
            self.channels.post(
                conv, "system", [_msg("工作人员暂时离开，正在为您转接其他工作人员，请稍候。")]
            )
        self.bus.publish(INBOX, {"type": "agents"})
        self.assign_waiting()
        if returned:
            self._tell_positions()
        return self.agent_state(username)

    # -- the queue ----------------------------------------------------------------------
    def assign_waiting(self) -> int:
        """Give waiting chats, oldest first, to online agents with room, least recently
        assigned first (round-robin). Returns how many this call gave (0 when a pass
        already running in another thread takes the request)."""
        given = 0
        self._assign_again = True
        while self._assign_again:
            if not self._assigning.acquire(blocking=False):
                return given  # the running pass sees the flag and goes once more
            try:
                while self._assign_again:
                    self._assign_again = False
                    given += self._assign_pass()
            finally:
                self._assigning.release()
        return given

    def _assign_pass(self) -> int:
        given = 0
        with self.db.session() as s:
            waiting = s.execute(
                select(LiveChat.id, LiveChat.department)
                .where(LiveChat.status == "waiting")
                .order_by(LiveChat.queued_at, LiveChat.id)
                .limit(100)
            ).all()
        for chat_id, department in waiting:
            for username in self._candidates(department):
                try:
                    self.claim(chat_id, username, automatic=True)
                except ChatTaken:
                    break  # claimed by hand or in another process, or cancelled
                except Conflict:
                    continue  # this agent filled up meanwhile: the next one
                given += 1
                break
            else:
                if department is None:
                    break  # nobody has room for the general queue: later chats neither
        return given

    def _candidates(self, department: str | None) -> list[str]:
        with self.db.session() as s:
            fresh = now_utc() - PRESENCE_TTL
            stmt = select(AgentState).where(
                AgentState.status == "online", AgentState.updated_at >= fresh
            )
            agents = s.scalars(stmt).all()
            active = _active_by_agent(s)
        # a chat sent to a department waits for that department's people; a general one
        # goes to anyone
        eligible = [
            a
            for a in agents
            if (department is None or a.department == department)
            and active.get(a.username, 0) < a.capacity
        ]
        oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
        eligible.sort(key=lambda a: aware(a.last_assigned_at) if a.last_assigned_at else oldest)
        return [a.username for a in eligible]

    def claim(self, chat_id: int, username: str, automatic: bool = False) -> dict[str, Any]:
        """Give a waiting chat to ``username``. Exactly one of two concurrent claims wins;
        the loser gets ChatTaken. An agent at capacity gets Conflict."""
        now = now_utc()
        with self.db.session() as s:
            # Lock the agent's row first: claims for one agent are serialised, so the count
            # below cannot be overtaken by a parallel claim (PostgreSQL row lock; SQLite's
            # single writer).
            locked = _rowcount(
                s.execute(
                    update(AgentState)
                    .where(AgentState.username == username)
                    .values(last_assigned_at=now)
                )
            )
            if not locked:
                s.add(AgentState(username=username, status="online", last_assigned_at=now))
                s.flush()
            state = s.get(AgentState, username)
            assert state is not None
            if _active_count(s, username) >= state.capacity:
                raise Conflict("您已达到同时接待上限，请先结束一个对话。", "agent at capacity")
            won = _rowcount(
                s.execute(
                    update(LiveChat)
                    .where(LiveChat.id == chat_id, LiveChat.status == "waiting")
                    .values(status="active", agent=username, claimed_at=now)
                )
            )
            if not won:
                raise ChatTaken("这个对话已被其他工作人员接入或已结束。", "chat already taken")
            chat = s.get(LiveChat, chat_id)
            assert chat is not None
            s.refresh(chat)
            conv = chat.conversation_id
            self.tickets.audit(
                s, username, "claim_chat", subject=conv, detail="auto" if automatic else ""
            )
        self.channels.set_state(conv, "agent")
        self.channels.post(
            conv, "system", [_msg("工作人员已接入，正在查看您和智能助手的对话，请直接留言。")]
        )
        self.bus.publish(INBOX, {"type": "assigned", "chat_id": chat_id, "agent": username})
        self._tell_positions()
        return self.chat_view(chat_id)

    def _tell_positions(self) -> None:
        with self.db.session() as s:
            waiting = s.scalars(
                select(LiveChat.conversation_id)
                .where(LiveChat.status == "waiting")
                .order_by(LiveChat.queued_at, LiveChat.id)
            ).all()
        for ahead, conv in enumerate(waiting):
            self.channels.notify(conv, {"type": "queue", "ahead": ahead})

    def queue(self) -> list[dict[str, Any]]:
        with self.db.session() as s:
            chats = s.scalars(
                select(LiveChat)
                .where(LiveChat.status == "waiting")
                .order_by(LiveChat.queued_at, LiveChat.id)
            ).all()
            return [self._row(c, i) for i, c in enumerate(chats)]

    def mine(self, username: str) -> list[dict[str, Any]]:
        with self.db.session() as s:
            chats = s.scalars(
                select(LiveChat)
                .where(LiveChat.agent == username, LiveChat.status == "active")
                .order_by(LiveChat.claimed_at)
            ).all()
            return [self._row(c) for c in chats]

    def _row(self, chat: LiveChat, ahead: int | None = None) -> dict[str, Any]:
        now = now_utc()
        return {
            "id": chat.id,
            "conversation_id": chat.conversation_id,
            "channel": chat.channel,
            "status": chat.status,
            "reason": chat.reason,
            "summary": mask_text(chat.summary),
            "phone": mask_phone(chat.phone),
            "department": chat.department,
            "agent": chat.agent,
            "ahead": ahead,
            "waited_s": int((now - aware(chat.queued_at)).total_seconds()),
            "claimed_at": aware(chat.claimed_at).isoformat() if chat.claimed_at else None,
        }

    def chat_view(self, chat_id: int) -> dict[str, Any]:
        with self.db.session() as s:
            chat = s.get(LiveChat, chat_id)
            if chat is None:
                raise TicketNotFound("对话不存在。", f"no live chat {chat_id}")
            return self._row(chat)

    # -- an agent at work ----------------------------------------------------------------
    def _held(self, s: Session, chat_id: int, who: Principal) -> LiveChat:
        chat = s.get(LiveChat, chat_id)
        if chat is None:
            raise TicketNotFound("对话不存在。", f"no live chat {chat_id}")
        if chat.status != "active":
            raise ChatTaken("这个对话已结束或还在排队。", f"chat {chat_id} is {chat.status}")
        if chat.agent != who.username:
            raise NotYours("这个对话由其他工作人员接待。", "chat held by another agent")
        return chat

    def messages(self, chat_id: int, who: Principal, after: int = 0) -> dict[str, Any]:
        with self.db.session() as s:
            chat = s.get(LiveChat, chat_id)
            if chat is None:
                raise TicketNotFound("对话不存在。", f"no live chat {chat_id}")
            mine = chat.agent == who.username
            supervisor = ROLE_RANK.get(who.role, 0) >= ROLE_RANK["supervisor"]
            # a waiting chat may be read before claiming it; a held one only by its agent
            if not mine and not supervisor and chat.status != "waiting":
                raise NotYours("这个对话由其他工作人员接待。", "chat held by another agent")
            conv = chat.conversation_id
            if after == 0:
                self.tickets.audit(s, who.username, "view_chat", subject=conv)
            view = self._row(chat)
        rows = self.channels.messages(conv, after)
        return {**view, "messages": [{**m, "text": mask_text(m["text"])} for m in rows]}

    def reply(self, chat_id: int, who: Principal, text: str, client_id: str | None = None) -> Reply:
        """Store and send an agent's reply. With ``client_id`` (the inbox's id for this
        reply, the same when it retries after no answer) a second request with the same id
        returns the stored message instead of storing and sending another."""
        text = text.strip()
        if not text:
            raise BanshiError("回复内容不能为空。", "empty reply")
        if len(text) > 2000:
            raise BanshiError("回复太长了，请分几条发送（每条不超过2000字）。", "reply too long")
        with self.db.session() as s:
            chat = self._held(s, chat_id, who)
            conv, channel = chat.conversation_id, chat.channel
        if not client_id:
            return Reply(None, False, self.channels.post(conv, "agent", [_msg(text)]), channel)
        # in the chat's messages, where a resident's own ids live too: a prefix keeps apart
        posted = self.channels.post_once(conv, "agent", _msg(text), AGENT_ID_PREFIX + client_id)
        if posted is None:
            raise TicketNotFound("对话不存在。", f"no conversation {conv}")
        message, duplicate, delivery = posted
        return Reply({**message, "text": mask_text(message["text"])}, duplicate, delivery, channel)

    def release(self, chat_id: int, who: Principal) -> None:
        """Back to the bot."""
        with self.db.session() as s:
            chat = self._held(s, chat_id, who)
            _close(chat, "bot")
            conv = chat.conversation_id
        self.channels.set_state(conv, "bot")
        self.channels.post(conv, "system", [_msg("工作人员已结束接待，智能助手继续为您服务。")])
        self.bus.publish(INBOX, {"type": "closed", "chat_id": chat_id})
        self.assign_waiting()

    def transfer(
        self, chat_id: int, who: Principal, agent: str | None = None, department: str | None = None
    ) -> dict[str, Any]:
        if bool(agent) == bool(department):
            raise BanshiError(
                "请选择转给哪位工作人员或哪个部门。", "give exactly one of agent, department"
            )
        if department is not None and department not in self.tickets.departments:
            raise BanshiError("部门不存在。", f"unknown department {department!r}")
        with self.db.session() as s:
            chat = self._held(s, chat_id, who)
            conv = chat.conversation_id
            chat.status, chat.agent, chat.reason = "waiting", None, "transfer"
            if department:
                chat.department = department
        if agent:
            try:
                self.claim(chat_id, agent)
            except (ChatTaken, Conflict) as exc:
                with self.db.session() as s:  # undo: the chat stays with the first agent
                    s.execute(
                        update(LiveChat)
                        .where(LiveChat.id == chat_id, LiveChat.status == "waiting")
                        .values(status="active", agent=who.username)
                    )
                raise Conflict(f"转接失败：{exc}", "transfer target unavailable") from exc
            return self.chat_view(chat_id)
        self.channels.set_state(conv, "waiting")
        name = self.tickets.departments[department or ""]
        self.channels.post(conv, "system", [_msg(f"正在为您转接{name}的工作人员，请稍候。")])
        self.bus.publish(INBOX, {"type": "queue"})
        self.assign_waiting()
        self._tell_positions()
        return self.chat_view(chat_id)

    def close_with_ticket(
        self,
        chat_id: int,
        who: Principal,
        *,
        category: str,
        content: str = "",
        resolved: bool = False,
        result: str = "",
        item_id: str | None = None,
        department: str | None = None,
        phone: str = "",
    ) -> dict[str, Any]:
        """End the chat and record it as a ticket: 即时办结 when solved (the resident is asked
        to rate it), or 待分派 for a department to handle."""
        if category not in CATEGORIES:
            raise BanshiError("请选择工单类别。", f"category must be one of {CATEGORIES}")
        if resolved and not result.strip():
            raise BanshiError("即时办结需要填写答复内容。", "resolved needs a result")
        with self.db.session() as s:
            chat = self._held(s, chat_id, who)
            conv = chat.conversation_id
            summary, chat_phone, chat_item = chat.summary, chat.phone, chat.item_id
        transcript = self.channels.transcript(conv)
        with self.db.session() as s:
            chat = self._held(s, chat_id, who)
            item = item_id or chat_item
            ticket = self.tickets.create(
                s,
                channel=_ticket_channel(chat.channel),
                category=category,
                content=content or summary or "（见对话记录）",
                actor=who.username,
                phone=phone or chat_phone,
                item_id=item,
                department=department or self.tickets.department_of_item(item),
                conversation_id=conv,
                transcript=transcript,
                result=result if resolved else None,
            )
            _close(chat, "ticket")
            chat.ticket_id = ticket.id
            number = ticket.number
        self.channels.set_state(conv, "bot")
        if resolved:
            text = f"本次服务已结束，受理号{number}。请您对本次服务进行评价："
            buttons = RATING_BUTTONS
        else:
            text = (
                f"您的问题已登记为工单，受理号{number}，将转有关部门办理，结果会告知您。"
                "可凭受理号和手机号后四位在“办理进度”查询。"
            )
            buttons = []
        self.channels.post(conv, "system", [_msg(text, buttons)])
        self.bus.publish(INBOX, {"type": "closed", "chat_id": chat_id})
        self.assign_waiting()
        return {"number": number, "status": "closed" if resolved else "pending"}

    async def tell_resident(self, conversation_id: str, text: str, author: str = "agent") -> None:
        """A reply from outside (a city platform's webhook) to the conversation's channel.
        The resident sees it as from the staff ("agent"); ``author`` (ext:<source>) is kept
        in the ticket's event log by the caller."""
        future = self.channels.post(conversation_id, "agent", [_msg(text)])
        if future is not None:
            import asyncio

            await asyncio.wrap_future(future)

    # -- residents after the chat ----------------------------------------------------------
    def rate_from_chat(self, conversation_id: str, rating: str) -> str | None:
        """A rating word sent in the conversation of a closed, unrated ticket (回访).
        None when there is nothing to rate (the bot answers as usual)."""
        with self.db.session() as s:
            ticket = self.tickets.for_conversation(s, conversation_id)
            if (
                ticket is None
                or ticket.status != "closed"
                or ticket.satisfaction not in (None, "不满意")
            ):
                return None
            self.tickets.act(s, ticket.number, "rate", None, rating=rating)
        if rating == "不满意":
            return "很抱歉没能让您满意。工单已重新办理，工作人员会再联系您。"
        return "感谢您的评价！祝您生活愉快。"

    def status_for_chat(
        self, conversation_id: str, number: str | None, last4: str | None
    ) -> dict[str, Any]:
        """受理号 look-up from a chat: a ticket made in this conversation needs no phone
        digits; any other needs the last four digits of its phone."""
        with self.db.session() as s:
            own = self.tickets.for_conversation(s, conversation_id)
            if own is not None and (number is None or own.number == number):
                return {"found": True, **self.tickets.public(own)}
        if number is None:
            return {"found": False, "need": "number"}
        if not numbers.is_well_formed(number):
            return {"found": False, "need": "valid_number"}
        if not last4:
            return {"found": False, "need": "last4"}
        try:
            return {"found": True, **self.tickets.lookup(number, last4, f"chat:{conversation_id}")}
        except TicketNotFound:
            return {"found": False, "need": "match"}

    def attach_phone(self, conversation_id: str, phone: str) -> str | None:
        """A phone number left after an out-of-hours ticket: put it on that ticket."""
        with self.db.session() as s:
            ticket = self.tickets.for_conversation(s, conversation_id)
            if ticket is None or ticket.phone or ticket.status not in OPEN:
                return None
            ticket.phone = phone
            return ticket.number

    def sweep(self) -> int:
        """At closing time, chats still waiting become tickets: nobody waits all night."""
        if self.calendar.is_open(now_utc()):
            return 0
        with self.db.session() as s:
            waiting = s.scalars(select(LiveChat).where(LiveChat.status == "waiting")).all()
            items = [
                (c.id, c.conversation_id, c.reason, c.summary, c.phone, c.item_id) for c in waiting
            ]
        done = 0
        for chat_id, conv, reason, summary, phone, item in items:
            with self.db.session() as s:
                claimed = _close_waiting(s, LiveChat.id == chat_id, "closed_hours")
            if not claimed:
                continue
            channel = self.channels.channel_of(conv) or "web"
            number = self._ticket_for_escalation(conv, channel, reason, summary, phone, item)
            self.channels.set_state(conv, "bot")
            self.channels.post(
                conv,
                "system",
                [
                    _msg(
                        f"现在已下班，您的转人工请求已登记为工单，受理号{number}。工作人员"
                        f"{self.calendar.describe_next(now_utc())}上班后会联系您。"
                        + ("" if phone else "如需回电，请留下手机号码。")
                    )
                ],
            )
            done += 1
        if done:
            self.bus.publish(INBOX, {"type": "queue"})
        return done

    def health(self) -> dict[str, Any]:
        """For /healthz: the queue, people online, and events outside systems never took."""
        with self.db.session() as s:
            waiting = s.scalar(
                select(func.count()).select_from(LiveChat).where(LiveChat.status == "waiting")
            )
            online = s.scalar(
                select(func.count()).select_from(AgentState).where(AgentState.status == "online")
            )
            failed = s.scalar(
                select(func.count()).select_from(OutboxEvent).where(OutboxEvent.status == "failed")
            )
        report: dict[str, Any] = {
            "status": "ok",
            "waiting": int(waiting or 0),
            "agents_online": int(online or 0),
            "outbox_failed": int(failed or 0),
        }
        if failed:
            report["status"] = "degraded"
            report["effect"] = "some ticket events were not delivered: `banshi bridge outbox`"
        return report

    def overview(self) -> dict[str, Any]:
        """Numbers for the supervisor view."""
        now = now_utc()
        with self.db.session() as s:
            waiting = s.scalars(select(LiveChat).where(LiveChat.status == "waiting")).all()
            agents = s.scalars(select(AgentState).order_by(AgentState.username)).all()
            active = _active_by_agent(s)
            longest = max(
                (int((now - aware(c.queued_at)).total_seconds()) for c in waiting), default=0
            )
            return {
                "queue_length": len(waiting),
                "longest_wait_s": longest,
                "agents": [
                    {
                        "username": a.username,
                        "status": a.status,
                        "department": a.department,
                        "capacity": a.capacity,
                        "active": int(active.get(a.username, 0)),
                    }
                    for a in agents
                ],
                "agents_online": sum(1 for a in agents if a.status == "online"),
            }


def _ticket_channel(chat_channel: str) -> str:
    return chat_channel if chat_channel in ("web", "wechat", "voice", "kiosk", "counter") else "web"


def _agent(s: Session, username: str) -> AgentState:
    state = s.get(AgentState, username)
    if state is None:
        state = AgentState(username=username, status="offline", capacity=DEFAULT_CAPACITY)
        s.add(state)
        s.flush()
    return state


def _active_by_agent(s: Session) -> dict[str, int]:
    rows = s.execute(
        select(LiveChat.agent, func.count())
        .where(LiveChat.status == "active")
        .group_by(LiveChat.agent)
    ).all()
    return {str(agent): int(count) for agent, count in rows}


def _active_count(s: Session, username: str) -> int:
    return int(
        s.scalar(
            select(func.count())
            .select_from(LiveChat)
            .where(LiveChat.agent == username, LiveChat.status == "active")
        )
        or 0
    )


def _ahead(s: Session, chat: LiveChat) -> int:
    return int(
        s.scalar(
            select(func.count())
            .select_from(LiveChat)
            .where(
                LiveChat.status == "waiting",
                (LiveChat.queued_at < chat.queued_at)
                | ((LiveChat.queued_at == chat.queued_at) & (LiveChat.id < chat.id)),
            )
        )
        or 0
    )


def _close_waiting(s: Session, which: Any, outcome: str) -> int:
    """Close a chat only if it is still waiting (a guarded update): 1 if this call did it."""
    return _rowcount(
        s.execute(
            update(LiveChat)
            .where(which, LiveChat.status == "waiting")
            .values(status="closed", open_key=None, outcome=outcome, closed_at=now_utc())
        )
    )


def _close(chat: LiveChat, outcome: str) -> None:
    chat.status, chat.open_key, chat.outcome, chat.closed_at = "closed", None, outcome, now_utc()


def _rowcount(result: Any) -> int:
    return int(result.rowcount)
