"""Call records: every call to the voice hotline, the path it took through the menu, what
the caller keyed and said, its recordings and the ticket it produced (migration 0006).

One row per call in ``voice_calls``, one row per step in ``voice_call_events`` written as it
happens (a power cut mid-call keeps the path so far), one row per recording in
``voice_recordings`` (the WAV itself is a file under the data directory, written before its
row). Times are UTC; ``at_ms`` counts from the start of the call, so a call reads as a
timeline.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from banshi.db import Base, UtcDateTime, now_utc


class VoiceCall(Base):
    __tablename__ = "voice_calls"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random hex
    channel: Mapped[str] = mapped_column(String(8))  # phone | web | wav
    call_ref: Mapped[str] = mapped_column(String(64), index=True)  # AudioSocket UUID, web id
    caller_id: Mapped[str] = mapped_column(String(32), default="")
    in_hours: Mapped[bool] = mapped_column(Boolean)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    end_reason: Mapped[str] = mapped_column(String(64), default="")  # hangup, goodbye, give_up…
    last_node: Mapped[str] = mapped_column(String(64), default="")
    ticket_number: Mapped[str | None] = mapped_column(String(16), index=True)
    # what the PBX should do once the call leaves AudioSocket: "" hang up, else a queue name
    next_step: Mapped[str] = mapped_column(String(64), default="")
    speech: Mapped[bool] = mapped_column(Boolean, default=False)  # recognition was on


class VoiceCallEvent(Base):
    __tablename__ = "voice_call_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("voice_calls.id"), index=True)
    at_ms: Mapped[int] = mapped_column(Integer)
    # enter (a step), key, timeout, invalid, heard (speech), action, prompt_failed, end
    kind: Mapped[str] = mapped_column(String(16))
    node: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class VoiceRecording(Base):
    __tablename__ = "voice_recordings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("voice_calls.id"), index=True)
    node: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(300))  # under the data directory
    seconds: Mapped[float] = mapped_column(Float)
    complete: Mapped[bool] = mapped_column(Boolean)  # False: the caller hung up mid-message
    transcript: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc)


def call_events(
    session: Session, call_id: str, *, times: bool = False
) -> list[tuple[str, str, dict[str, Any]]]:
    """A call's timeline as (kind, step, detail), in the order it happened; with ``times``
    each detail also holds ``at_ms``, the time from the start of the call."""
    rows = session.scalars(
        select(VoiceCallEvent).where(VoiceCallEvent.call_id == call_id).order_by(VoiceCallEvent.id)
    )
    return [(e.kind, e.node, {**e.detail, **({"at_ms": e.at_ms} if times else {})}) for e in rows]
