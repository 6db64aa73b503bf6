"""Tables of the ticket bridge. A conversation is referred to by its id only: the chat part
owns its tables and hands us what we need (channel, transcript) through ``channels.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from banshi.db import Base, UtcDateTime, now_utc


class Counter(Base):
    """Monotonic counters (the 受理号 sequence): incremented in the database, never reused."""

    __tablename__ = "ticket_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(8), unique=True)  # 受理号
    channel: Mapped[str] = mapped_column(String(16))  # web | wechat | voice | kiosk | counter
    category: Mapped[str] = mapped_column(String(8))  # 咨询 求助 投诉 建议 举报
    status: Mapped[str] = mapped_column(String(16), index=True)  # see lifecycle.STATUS
    title: Mapped[str] = mapped_column(String(200), default="")
    content: Mapped[str] = mapped_column(Text, default="")  # the request, in the resident's words
    item_id: Mapped[str | None] = mapped_column(String(64))
    department: Mapped[str | None] = mapped_column(String(32), index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)  # 0 normal, 1 urgent
    phone: Mapped[str] = mapped_column(String(20), default="")
    conversation_id: Mapped[str | None] = mapped_column(String(32), index=True)
    recording: Mapped[str | None] = mapped_column(String(300))  # voice: path under data dir
    # [{author, text, at}], copied when the ticket is made: the record of what was said
    transcript: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    result: Mapped[str] = mapped_column(Text, default="")  # 办理结果, told to the resident
    assignee: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    satisfaction: Mapped[str | None] = mapped_column(String(8))  # 非常满意 满意 不满意
    reopened: Mapped[int] = mapped_column(Integer, default=0)
    external_ref: Mapped[str | None] = mapped_column(String(64))  # id on a city platform
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class TicketEvent(Base):
    """Every transition and note: who, when, from what to what, and why."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(24))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))  # a username, "resident", "system", "ext:<src>"
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc)


class AuditEntry(Base):
    """Who viewed or changed a ticket or a conversation (and failed resident look-ups)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(24), index=True)
    ticket_id: Mapped[int | None] = mapped_column(Integer, index=True)
    subject: Mapped[str] = mapped_column(String(64), default="")  # conversation id, number…
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc, index=True)


class AgentState(Base):
    """An agent's presence and capacity for live chats (the account itself is ``users``)."""

    __tablename__ = "agent_states"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(8), default="offline")  # online | away | offline
    capacity: Mapped[int] = mapped_column(Integer, default=3)
    department: Mapped[str | None] = mapped_column(String(32))  # None: the general hotline
    last_assigned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc)


class LiveChat(Base):
    """A conversation handed to people: waiting in the queue, held by an agent, or closed."""

    __tablename__ = "live_chats"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(32), index=True)
    # = conversation_id while waiting or active, NULL once closed: the unique key lets one
    # conversation be in the queue once, whichever process enqueues it
    open_key: Mapped[str | None] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(8), index=True)  # waiting | active | closed
    reason: Mapped[str] = mapped_column(String(16))  # request | misses | complaint | transfer
    summary: Mapped[str] = mapped_column(Text, default="")
    phone: Mapped[str] = mapped_column(String(20), default="")
    item_id: Mapped[str | None] = mapped_column(String(64))
    department: Mapped[str | None] = mapped_column(String(32))
    agent: Mapped[str | None] = mapped_column(String(64), index=True)
    outcome: Mapped[str | None] = mapped_column(String(16))  # bot | ticket | closed_hours
    ticket_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc)
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class CannedReply(Base):
    """常用语, maintained by supervisors."""

    __tablename__ = "canned_replies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc)


class OutboxEvent(Base):
    """A ticket event for one outside system, written in the transaction that made it."""

    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)  # receivers dedupe on it
    target: Mapped[str] = mapped_column(String(32), index=True)
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc, index=True)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class InboundEvent(Base):
    """Events taken from outside systems, by their id: a repeat changes nothing."""

    __tablename__ = "inbound_events"
    __table_args__ = (UniqueConstraint("source", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(128))
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc)
