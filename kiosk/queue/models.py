"""Tables of the queue. Every write that must be unique or counted (numbers, quotas, one
unserved ticket per person, slot capacity) is decided by the database: a guarded UPDATE or
a unique key, so several API processes and kiosks can issue at once."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Date, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from banshi.db import Base, UtcDateTime, now_utc


class QueueDay(Base):
    """One row per service and day: the last sequence issued and the quota used."""

    __tablename__ = "queue_days"

    service: Mapped[str] = mapped_column(String(1), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    walk_in_issued: Mapped[int] = mapped_column(Integer, default=0)
    appointment_issued: Mapped[int] = mapped_column(Integer, default=0)


class QueueTicket(Base):
    __tablename__ = "queue_tickets"
    __table_args__ = (
        UniqueConstraint("day", "service", "seq"),
        # a kiosk's retry of the same tap (no answer came): one ticket, whichever process
        # gets it; per queue day, so an id only has to be unique for a day
        UniqueConstraint("request_id", "day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    service: Mapped[str] = mapped_column(String(1))
    seq: Mapped[int] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(String(8))  # A012
    kind: Mapped[str] = mapped_column(String(12))  # walk_in | appointment
    priority_group: Mapped[str | None] = mapped_column(String(16))  # 绿色通道, see queue.yml
    id_hash: Mapped[str | None] = mapped_column(String(32))
    id_masked: Mapped[str] = mapped_column(String(18), default="")
    # waiting | called | serving | done | no_show | transferred | cancelled
    status: Mapped[str] = mapped_column(String(12), index=True)
    # "<day>:<service>:<id_hash>" while waiting or called, NULL afterwards: one unserved
    # ticket per person and service, whichever kiosk or process issues
    open_key: Mapped[str | None] = mapped_column(String(48), unique=True)
    token: Mapped[str] = mapped_column(String(24), unique=True)  # the QR's status link
    window: Mapped[str | None] = mapped_column(String(8))
    clerk: Mapped[str | None] = mapped_column(String(64))
    no_shows: Mapped[int] = mapped_column(Integer, default=0)
    recalls: Mapped[int] = mapped_column(Integer, default=0)
    transferred_from: Mapped[str | None] = mapped_column(String(8))  # the earlier number
    appointment_id: Mapped[int | None] = mapped_column(Integer)
    kiosk: Mapped[str] = mapped_column(String(32), default="")
    # the client's id of the request that issued it (IssueIn.request_id), if it sent one
    request_id: Mapped[str | None] = mapped_column(String(64))
    issued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=now_utc)
    # when it (re)joined the queue: a re-queue after a no-show goes to the end
    queued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=now_utc)
    called_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # when its slip first came out of a printer: a retried request prints only if it has not
    printed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class QueueCall(Base):
    """Each call and recall, for the hall display (and its catch-up across processes)."""

    __tablename__ = "queue_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(Integer, index=True)
    number: Mapped[str] = mapped_column(String(8))
    service: Mapped[str] = mapped_column(String(1))
    window: Mapped[str] = mapped_column(String(8))
    recall: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=now_utc)


class Counter(Base):
    """A window's state: who sits there, open or paused, whom they are serving."""

    __tablename__ = "queue_counters"

    window: Mapped[str] = mapped_column(String(8), primary_key=True)
    clerk: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(8), default="closed")  # open | paused | closed
    ticket_id: Mapped[int | None] = mapped_column(Integer)
    priority_run: Mapped[int] = mapped_column(Integer, default=0)  # priority calls in a row
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=now_utc)


class AppointmentSlot(Base):
    """Bookings taken per service, day and slot: the capacity is checked in the UPDATE."""

    __tablename__ = "queue_slots"

    service: Mapped[str] = mapped_column(String(1), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    start: Mapped[str] = mapped_column(String(5), primary_key=True)  # "09:30"
    booked: Mapped[int] = mapped_column(Integer, default=0)


class Appointment(Base):
    __tablename__ = "queue_appointments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str] = mapped_column(String(1))
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    start: Mapped[str] = mapped_column(String(5))
    end: Mapped[str] = mapped_column(String(5))
    id_hash: Mapped[str] = mapped_column(String(32), index=True)
    id_masked: Mapped[str] = mapped_column(String(18))
    phone: Mapped[str] = mapped_column(String(20), default="")
    # booked | checked_in | cancelled | no_show
    status: Mapped[str] = mapped_column(String(12), index=True)
    # "<day>:<service>:<id_hash>" while booked: one booking per person, service and day
    open_key: Mapped[str | None] = mapped_column(String(48), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=now_utc)
    checked_in_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
