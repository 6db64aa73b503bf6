"""Tables of the chat part. Every message in and out is stored here, whatever the channel,
so a conversation's transcript survives Rasa restarts and goes with a hand-off to a person."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from banshi.db import Base, UtcDateTime, now_utc


class Conversation(Base):
    """One per resident and channel (a web browser's session id, a WeChat OpenID)."""

    __tablename__ = "chat_conversations"
    __table_args__ = (UniqueConstraint("channel", "user_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    user_key: Mapped[str] = mapped_column(String(128))
    # bot: the assistant answers; waiting/agent: a person has it (the bot stays silent)
    state: Mapped[str] = mapped_column(String(16), default="bot")
    # context for answering without Rasa: the service item last talked about
    item_id: Mapped[str | None] = mapped_column(String(64))
    misses: Mapped[int] = mapped_column(Integer, default=0)
    # set while a person is offered: the unanswered question a "yes" hands over
    pending_question: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc)


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    # A channel's message id (WeChat MsgId, the widget's client id) is taken once per
    # conversation: the database, not a process, decides what is a retry.
    __table_args__ = (UniqueConstraint("conversation_id", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("chat_conversations.id", ondelete="CASCADE"), index=True
    )
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    author: Mapped[str] = mapped_column(String(16))  # resident | bot | agent | system
    text: Mapped[str] = mapped_column(Text, default="")
    # buttons and links as the widget shows them
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    external_id: Mapped[str | None] = mapped_column(String(64))
    reply_to: Mapped[int | None] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc)


class Handoff(Base):
    """A resident's request for a person (asked for, complaint, repeated misses) or a
    suggestion, kept until the ticket bridge turns it into a ticket or a live chat."""

    __tablename__ = "chat_handoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("chat_conversations.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(String(16))  # request | misses | complaint | suggestion
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    phone: Mapped[str] = mapped_column(String(20), default="")
    in_hours: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc)


class WeChatToken(Base):
    """The WeChat access token of one app id, shared by every API process: fetching a new
    one invalidates the old, so only the process holding the lease (``lease_owner`` until
    ``lease_until``, taken by a conditional UPDATE) fetches; the others use the stored one
    (see ``assistant.wechat.DatabaseTokenStore``)."""

    __tablename__ = "wechat_tokens"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str] = mapped_column(Text, default="")
    refresh_after: Mapped[datetime | None] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    lease_owner: Mapped[str] = mapped_column(String(32), default="")
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc)
