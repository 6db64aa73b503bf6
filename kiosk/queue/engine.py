"""Issuing queue numbers and serving them at counters.

Issuing (walk-in or appointment check-in) checks the opening period (no new walk-ins in its
last ``last_ticket_minutes``), the ID number (GB 11643 check digit), the priority group and
the quota, then takes the next sequence of the service's day with one guarded UPDATE: the
row lock (PostgreSQL) or the single writer (SQLite) makes numbers consecutive and unique
across kiosks and processes, and a quota cannot be overrun. A person's unserved ticket
holds a unique ``open_key``, so a second one for the same service is refused even when two
kiosks try at the same moment. A kiosk that got no answer sends the same ``request_id``
again: the ticket that id issued that day is returned (``duplicate``), not a second one, and
nothing is counted again; a unique key on (request_id, day) decides when the retry reaches
another process while the first attempt is still being written.

Calling: appointments checked in and the 绿色通道 go first, but after ``priority_run`` of
them in a row at a window a waiting regular number is called (nobody is starved). Two
windows calling at once never get the same ticket: the ticket's status is the guard.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import secrets
import time
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from banshi.bus import LocalBus
from banshi.db import Database
from banshi.workcal import Period, WorkCalendar
from kiosk.errors import CannotIssue, CounterError
from kiosk.queue import idcard
from kiosk.queue.config import QueueConfig, QueueService
from kiosk.queue.models import (
    Appointment,
    AppointmentSlot,
    Counter,
    QueueCall,
    QueueDay,
    QueueTicket,
    now_utc,
)
from kiosk.queue.stats import queue_stats

CALLS = "calls"  # bus topic of the hall display (kiosk/display.py)
UNSERVED = ("waiting", "called")
STATUS = {
    "waiting": "排队中",
    "called": "已叫号，请到窗口",
    "serving": "正在办理",
    "done": "已办结",
    "no_show": "已过号",
    "transferred": "已转其他业务",
    "cancelled": "已取消",
}
ELDERLY_AGE = 70
RECENT_SERVICE_TIMES = 20  # finished tickets averaged for the estimate
PACE_TTL_S = 5.0  # how long a service's pace (time per ticket, open windows) is reused


class QueueDesk:
    def __init__(
        self,
        db: Database,
        config: QueueConfig,
        calendar: WorkCalendar,
        secret: str,
        bus: LocalBus | None = None,
        department_names: dict[str, str] | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.calendar = calendar
        self.secret = secret
        self.bus = bus or LocalBus()
        self.department_names = department_names or {}
        self.clock = now_utc  # tests set a fixed moment
        self._paces: dict[tuple[str, dt.date], tuple[float, float, int]] = {}

    # -- issuing ----------------------------------------------------------------------
    def issue(
        self,
        service_code: str,
        *,
        id_number: str | None = None,
        priority_group: str | None = None,
        kiosk: str = "",
        request_id: str | None = None,
        now: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """A walk-in number, or CannotIssue saying why in Chinese (nothing issued then).

        ``request_id`` (the kiosk's id of the resident's tap, the same on its retries): if
        it already issued a ticket today, that one is returned with ``duplicate`` true and
        ``printed`` (whether its slip came out), before any rule is checked again; the
        opening time, quota and one-open-ticket rules were passed when it was issued."""
        now = _utc(now or self.clock())
        if request_id:
            seen = self._issued_for(request_id, service_code, now)
            if seen is not None:
                return seen
        service = self._service(service_code)
        self._check_open(service, now)
        number = self._id_number(service, id_number, now)
        if priority_group is not None:
            self._check_priority(priority_group, number, now)
        elif number and idcard.age_on(number, self.local_day(now)) >= ELDERLY_AGE:
            priority_group = "elderly"  # 刷身份证自动识别: nobody has to ask for it
        try:
            return self._take(service, number, priority_group, kiosk, now, request_id)
        except CannotIssue:
            # refused (its own ticket is open, the quota just ran out, the unique key): the
            # same request may have been issued by another process meanwhile
            seen = self._issued_for(request_id, service_code, now) if request_id else None
            if seen is None:
                raise
            return seen

    def _issued_for(
        self, request_id: str, service_code: str, now: dt.datetime
    ) -> dict[str, Any] | None:
        """The ticket ``request_id`` issued today, as a duplicate's reply; None if none."""
        with self.db.session() as s:
            ticket = s.scalar(
                select(QueueTicket).where(
                    QueueTicket.request_id == request_id,
                    QueueTicket.day == self.local_day(now),
                )
            )
            if ticket is None:
                return None
            if ticket.service != service_code:  # a client bug: never hand out another's
                raise CannotIssue(
                    "request_reused",
                    "取号请求有误，请回到首页重新取号。",
                    f"request_id {request_id!r} issued {ticket.number}, not service "
                    f"{service_code!r}",
                )
            return self._duplicate_view(s, ticket, now)

    def mark_printed(self, token: str, now: dt.datetime | None = None) -> None:
        """The ticket's slip came out (the first time is kept)."""
        moment = _utc(now or self.clock())
        with self.db.session() as s:
            s.execute(
                update(QueueTicket)
                .where(QueueTicket.token == token, QueueTicket.printed_at.is_(None))
                .values(printed_at=moment)
            )

    def _take(
        self,
        service: QueueService,
        number: str | None,
        priority_group: str | None,
        kiosk: str,
        now: dt.datetime,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        day = self.local_day(now)
        id_hash = idcard.fingerprint(number, self.secret) if number else None
        open_key = _open_key(day, service.code, id_hash)
        with self.db.session() as s:
            if open_key:
                held = s.scalar(select(QueueTicket.number).where(QueueTicket.open_key == open_key))
                if held:
                    raise _already(service, held)
            ticket = self._insert_ticket(
                s,
                service,
                day,
                "walk_in",
                now,
                id_hash=id_hash,
                id_masked=idcard.mask(number) if number else "",
                priority_group=priority_group,
                kiosk=kiosk,
                request_id=request_id,
            )
            ticket_id = ticket.id
        return {**self._view_of(ticket_id, now), "duplicate": False}

    def _insert_ticket(
        self,
        s: Session,
        service: QueueService,
        day: dt.date,
        kind: str,
        now: dt.datetime,
        *,
        id_hash: str | None,
        id_masked: str,
        priority_group: str | None = None,
        appointment_id: int | None = None,
        kiosk: str = "",
        queued_at: dt.datetime | None = None,
        transferred_from: str | None = None,
        request_id: str | None = None,
    ) -> QueueTicket:
        """The next number of ``service`` (within the quota of ``kind``) as a waiting
        ticket; refused when this person already holds an unserved one (the unique
        ``open_key``, so also when another kiosk issued it a moment ago)."""
        seq = self._next_seq(s, service, day, kind)
        ticket = QueueTicket(
            day=day,
            service=service.code,
            seq=seq,
            number=f"{service.code}{seq:03d}",
            kind="walk_in" if kind == "transfer" else kind,
            priority_group=priority_group,
            id_hash=id_hash,
            id_masked=id_masked,
            status="waiting",
            open_key=_open_key(day, service.code, id_hash),
            token=secrets.token_urlsafe(12),
            appointment_id=appointment_id,
            kiosk=kiosk[:32],
            issued_at=now,
            queued_at=queued_at or now,
            transferred_from=transferred_from,
            request_id=request_id,
        )
        s.add(ticket)
        try:
            with s.begin_nested():
                s.flush()
        except IntegrityError as exc:
            raise _already(service, None) from exc
        return ticket

    def _next_seq(self, s: Session, service: QueueService, day: dt.date, kind: str) -> int:
        """The next number of the service's day, within the quota for ``kind``."""
        if kind == "walk_in":
            used, quota = QueueDay.walk_in_issued, service.walk_in_quota
        elif kind == "appointment":
            used, quota = QueueDay.appointment_issued, service.appointment_quota
        else:  # a transfer: already admitted today, no quota of its own
            used, quota = QueueDay.last_seq, 999
        bump = (
            update(QueueDay)
            .where(QueueDay.service == service.code, QueueDay.day == day, used < quota)
            .values({QueueDay.last_seq: QueueDay.last_seq + 1, used: used + 1})
            .returning(QueueDay.last_seq)
        )
        seq = s.execute(bump).scalar_one_or_none()
        if seq is None:
            # the day's first number, or the quota is used up: make sure the row exists
            # (an INSERT that another process beats us to fails and waits for its commit,
            # so the second UPDATE sees the row) and try once more
            try:
                with s.begin_nested():
                    s.add(QueueDay(service=service.code, day=day))
            except IntegrityError:
                pass
            seq = s.execute(bump).scalar_one_or_none()
        if seq is not None:
            return int(seq)
        what = "现场号" if kind == "walk_in" else "预约号"
        raise CannotIssue(
            "quota",
            f"今天“{service.name}”的{what}已经发完了。可以在“青禾办”小程序预约以后的时段，"
            "或到综合咨询台问问工作人员。",
            f"{kind} quota {quota} of {service.code} used up on {day}",
        )

    def _check_open(self, service: QueueService, now: dt.datetime) -> None:
        period = self._period(now)
        if period is None:
            opening = self.calendar.describe_next(now)
            raise CannotIssue(
                "closed",
                f"现在不是取号时间。大厅{opening}开门，欢迎那时再来，也可以在“青禾办”小程序预约。",
                f"no opening period now for {service.code}",
            )
        local = now.astimezone(self.calendar.tz)
        stop = dt.datetime.combine(local.date(), period.end, self.calendar.tz) - dt.timedelta(
            minutes=self.config.rules.last_ticket_minutes
        )
        if local >= stop:
            raise CannotIssue(
                "closing",
                f"本时段{period.end:%H:%M}结束，结束前{self.config.rules.last_ticket_minutes}"
                "分钟停止现场取号。请下一个时段再来，或预约办理。",
                f"past the last walk-in time {stop:%H:%M}",
            )

    def _period(self, now: dt.datetime) -> Period | None:
        local = now.astimezone(self.calendar.tz)
        return next(
            (p for p in self.calendar.periods_on(local.date()) if p.start <= local.time() < p.end),
            None,
        )

    def _id_number(self, service: QueueService, raw: str | None, now: dt.datetime) -> str | None:
        if not raw or not raw.strip():
            if service.id_required:
                raise CannotIssue(
                    "id_required",
                    f"办理“{service.name}”需要先刷身份证，或输入身份证号码。",
                    f"{service.code} needs an ID number",
                )
            return None
        number = idcard.normalise(raw)
        wrong = idcard.problem(number, self.local_day(now))
        if wrong:
            raise CannotIssue("bad_id", wrong, "invalid ID number")
        return number

    def _check_priority(self, group: str, number: str | None, now: dt.datetime) -> None:
        if group not in self.config.priority_groups:
            raise CannotIssue("bad_priority", "请选择正确的优先类别。", f"unknown group {group!r}")
        if group == "elderly" and (
            number is None or idcard.age_on(number, self.local_day(now)) < ELDERLY_AGE
        ):
            raise CannotIssue(
                "not_elderly",
                f"老年人绿色通道需刷{ELDERLY_AGE}周岁以上本人的身份证。其他情况请取普通号，"
                "或请导办人员帮助。",
                "elderly priority needs an ID showing the age",
            )

    # -- appointments -----------------------------------------------------------------
    def slots(self, service_code: str, day: dt.date) -> list[dict[str, Any]]:
        service = self._service(service_code)
        starts = self._slot_starts(day)
        capacity = self._slot_capacity(service, len(starts))
        with self.db.session() as s:
            booked = dict(
                s.execute(
                    select(AppointmentSlot.start, AppointmentSlot.booked).where(
                        AppointmentSlot.service == service.code, AppointmentSlot.day == day
                    )
                ).all()
            )
        return [
            {
                "start": f"{a:%H:%M}",
                "end": f"{b:%H:%M}",
                "capacity": capacity,
                "left": max(0, capacity - int(booked.get(f"{a:%H:%M}", 0))),
            }
            for a, b in starts
        ]

    def book(
        self,
        service_code: str,
        day: dt.date,
        start: str,
        id_number: str,
        phone: str = "",
        now: dt.datetime | None = None,
    ) -> dict[str, Any]:
        now = _utc(now or self.clock())
        service = self._service(service_code)
        number = idcard.normalise(id_number or "")
        wrong = idcard.problem(number, self.local_day(now))
        if wrong:
            raise CannotIssue("bad_id", wrong, "invalid ID number")
        starts = self._slot_starts(day)
        slot = next(((a, b) for a, b in starts if f"{a:%H:%M}" == start), None)
        if slot is None:
            raise CannotIssue(
                "bad_slot", "这个时段不能预约，请重新选择。", f"no slot {start} on {day}"
            )
        begins = dt.datetime.combine(day, slot[0], self.calendar.tz)
        ahead = self.config.rules.book_days_ahead
        if begins <= now or day > self.local_day(now) + dt.timedelta(days=ahead):
            raise CannotIssue(
                "bad_slot", f"只能预约{ahead}天内还没开始的时段。", "slot not bookable"
            )
        capacity = self._slot_capacity(service, len(starts))
        id_hash = idcard.fingerprint(number, self.secret)
        with self.db.session() as s:
            if not s.get(AppointmentSlot, (service.code, day, start)):
                try:
                    with s.begin_nested():
                        s.add(AppointmentSlot(service=service.code, day=day, start=start))
                except IntegrityError:
                    pass
            taken = s.execute(
                update(AppointmentSlot)
                .where(
                    AppointmentSlot.service == service.code,
                    AppointmentSlot.day == day,
                    AppointmentSlot.start == start,
                    AppointmentSlot.booked < capacity,
                )
                .values(booked=AppointmentSlot.booked + 1)
            ).rowcount  # type: ignore[attr-defined]
            if not taken:
                raise CannotIssue("slot_full", "这个时段已约满，请选择其他时段。", "slot full")
            appointment = Appointment(
                service=service.code,
                day=day,
                start=start,
                end=f"{slot[1]:%H:%M}",
                id_hash=id_hash,
                id_masked=idcard.mask(number),
                phone=phone[:20],
                status="booked",
                open_key=_open_key(day, service.code, id_hash),
            )
            s.add(appointment)
            try:
                with s.begin_nested():
                    s.flush()
            except IntegrityError as exc:
                raise CannotIssue(
                    "already_booked",
                    f"您当天已预约过“{service.name}”，如需改时间请先取消原预约。",
                    "one booking per person, service and day",
                ) from exc
            return self._appointment_view(appointment)

    def cancel(self, token: str) -> dict[str, Any]:
        with self.db.session() as s:
            appointment = self._appointment(s, token)
            if appointment.status != "booked":
                raise CannotIssue(
                    "not_booked", "这个预约已签到、取消或过期，不能再取消。", "not booked"
                )
            appointment.status, appointment.open_key = "cancelled", None
            s.execute(
                update(AppointmentSlot)
                .where(
                    AppointmentSlot.service == appointment.service,
                    AppointmentSlot.day == appointment.day,
                    AppointmentSlot.start == appointment.start,
                )
                .values(booked=AppointmentSlot.booked - 1)
            )
            return self._appointment_view(appointment)

    def check_in(
        self, token: str, kiosk: str = "", now: dt.datetime | None = None
    ) -> dict[str, Any]:
        """The appointment's QR at the kiosk: a number, if within its slot (early/grace)."""
        now = _utc(now or self.clock())
        rules = self.config.rules
        with self.db.session() as s:
            appointment = self._appointment(s, token)
            if appointment.status == "checked_in" and appointment.ticket_id:
                ticket = s.get(QueueTicket, appointment.ticket_id)
                if ticket is not None:  # scanned twice (or a retry): the same number
                    return self._duplicate_view(s, ticket, now)
            if appointment.status != "booked":
                raise CannotIssue(
                    "not_booked", "这个预约已取消或已过期，请重新取号或预约。", appointment.status
                )
            start = dt.datetime.combine(
                appointment.day, dt.time.fromisoformat(appointment.start), self.calendar.tz
            )
            if now < start - dt.timedelta(minutes=rules.check_in_early_minutes):
                raise CannotIssue(
                    "too_early",
                    f"您预约的是{appointment.day.month}月{appointment.day.day}日"
                    f"{appointment.start}—{appointment.end}，请在{appointment.start}前"
                    f"{rules.check_in_early_minutes}分钟到开始后{rules.check_in_late_minutes}"
                    "分钟之间签到。",
                    "too early",
                )
            expired = now > start + dt.timedelta(minutes=rules.check_in_late_minutes)
            if expired:  # recorded as 爽约 (committed), then refused
                appointment.status, appointment.open_key = "no_show", None
            slot = f"{appointment.start}—{appointment.end}"
            service = self._service(appointment.service)
            appointment_id = appointment.id
        if expired:
            raise CannotIssue(
                "expired",
                f"您预约的{slot}时段已开始超过{rules.check_in_late_minutes}分钟，预约已失效。"
                "请现场取号，或重新预约。",
                "slot and grace period over",
            )
        return self._take_for_appointment(service, appointment_id, kiosk, now)

    def _take_for_appointment(
        self, service: QueueService, appointment_id: int, kiosk: str, now: dt.datetime
    ) -> dict[str, Any]:
        day = self.local_day(now)
        with self.db.session() as s:
            # the appointment row is the guard: one check-in wins, a second gets its number
            claimed = s.execute(
                update(Appointment)
                .where(Appointment.id == appointment_id, Appointment.status == "booked")
                .values(status="checked_in", checked_in_at=now, open_key=None)
            ).rowcount  # type: ignore[attr-defined]
            appointment = s.get(Appointment, appointment_id)
            assert appointment is not None
            if not claimed:
                s.refresh(appointment)
                ticket = s.get(QueueTicket, appointment.ticket_id or 0)
                if ticket is None:
                    raise CannotIssue("not_booked", "这个预约刚刚已签到，请稍候再扫一次。", "race")
                return self._duplicate_view(s, ticket, now)
            ticket = self._insert_ticket(
                s,
                service,
                day,
                "appointment",
                now,
                id_hash=appointment.id_hash,
                id_masked=appointment.id_masked,
                appointment_id=appointment_id,
                kiosk=kiosk,
            )
            appointment.ticket_id = ticket.id
            ticket_id = ticket.id
        return {**self._view_of(ticket_id, now), "duplicate": False}

    def mark_no_shows(self, now: dt.datetime | None = None) -> int:
        """Bookings not checked in by ``check_in_late_minutes`` after their start: 爽约.

        Run every minute by every API process, at the same moments as check-ins: the rows
        are changed only by the conditional UPDATE of :meth:`_write_no_shows` (still
        ``booked``, and of a slot whose grace is over), so a check-in that commits between
        this sweep's read and its write keeps its number."""
        now = _utc(now or self.clock())
        return self._write_no_shows(self._overdue_slots(now))

    def _overdue_slots(self, now: dt.datetime) -> dict[dt.date, list[str]]:
        """The sweep's read: per day, the slot starts whose check-in grace is over at
        ``now`` and that still have bookings nobody checked in for."""
        late = dt.timedelta(minutes=self.config.rules.check_in_late_minutes)
        with self.db.session() as s:
            slots = s.execute(
                select(Appointment.day, Appointment.start)
                .where(Appointment.status == "booked", Appointment.day <= self.local_day(now))
                .distinct()
            ).all()
        overdue: dict[dt.date, list[str]] = {}
        for day, start in slots:
            begins = dt.datetime.combine(day, dt.time.fromisoformat(start), self.calendar.tz)
            if now > begins + late:
                overdue.setdefault(day, []).append(start)
        return overdue

    def _write_no_shows(self, overdue: dict[dt.date, list[str]]) -> int:
        """The sweep's write: one UPDATE per day that carries both conditions (the status
        is still ``booked``; the slot is one whose grace is over), whatever was read."""
        marked = 0
        with self.db.session() as s:
            for day, starts in sorted(overdue.items()):
                marked += s.execute(
                    update(Appointment)
                    .where(
                        Appointment.status == "booked",
                        Appointment.day == day,
                        Appointment.start.in_(sorted(starts)),
                    )
                    .values(status="no_show", open_key=None)
                    .execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
        return marked

    def appointment_token(self, appointment_id: int) -> str:
        sig = hmac.new(
            self.secret.encode(), f"appointment:{appointment_id}".encode(), hashlib.sha256
        ).hexdigest()[:20]
        return f"{appointment_id}-{sig}"

    def _appointment(self, s: Session, token: str) -> Appointment:
        head, _, _sig = token.partition("-")
        # isascii: "¹".isdigit() is true, but int() refuses it
        digits = head.isascii() and head.isdigit()
        if not digits or not hmac.compare_digest(token, self.appointment_token(int(head))):
            raise CannotIssue(
                "bad_qr", "这个二维码不是本中心的预约码，请核对。", "bad appointment token"
            )
        appointment = s.get(Appointment, int(head))
        if appointment is None:
            raise CannotIssue("bad_qr", "没有找到这个预约。", "no such appointment")
        return appointment

    def _appointment_view(self, a: Appointment) -> dict[str, Any]:
        service = self.config.services[a.service]
        return {
            "token": self.appointment_token(a.id),
            "service": a.service,
            "service_name": service.name,
            "day": a.day.isoformat(),
            "start": a.start,
            "end": a.end,
            "status": a.status,
            "id_masked": a.id_masked,
        }

    def _slot_starts(self, day: dt.date) -> list[tuple[dt.time, dt.time]]:
        step = dt.timedelta(minutes=self.config.rules.slot_minutes)
        out = []
        for p in self.calendar.periods_on(day):
            at = dt.datetime.combine(day, p.start)
            end = dt.datetime.combine(day, p.end)
            while at + step <= end:
                out.append(((at).time(), (at + step).time()))
                at += step
        return out

    @staticmethod
    def _slot_capacity(service: QueueService, slots: int) -> int:
        return math.ceil(service.appointment_quota / slots) if slots else 0

    # -- counters ---------------------------------------------------------------------
    def open_counter(self, window: str, clerk: str) -> dict[str, Any]:
        self._window(window)
        with self.db.session() as s:
            counter = s.get(Counter, window)
            if counter is None:
                counter = Counter(window=window)
                s.add(counter)
            elif counter.clerk not in (None, clerk) and counter.status != "closed":
                raise CounterError(
                    f"{window}号窗口已由{counter.clerk}登录，请先在那台电脑上退出。",
                    f"window {window} held by {counter.clerk}",
                )
            counter.clerk, counter.status, counter.updated_at = clerk, "open", _utc(self.clock())
            s.flush()
            return self._counter_view(s, counter)

    def set_counter(self, window: str, clerk: str, status: str) -> dict[str, Any]:
        """Pause (暂停服务), resume, or close (log out of) the window."""
        if status not in ("open", "paused", "closed"):
            raise CounterError("状态无效。", f"bad counter status {status!r}")
        with self.db.session() as s:
            counter = self._my_counter(s, window, clerk)
            if status == "closed" and counter.ticket_id:
                raise CounterError(
                    "请先办结或过号当前的号，再退出窗口。", "a ticket is at the window"
                )
            counter.status, counter.updated_at = status, _utc(self.clock())
            if status == "closed":
                counter.clerk = None
            return self._counter_view(s, counter)

    def counter(self, window: str) -> dict[str, Any]:
        self._window(window)
        with self.db.session() as s:
            counter = s.get(Counter, window) or Counter(window=window, status="closed")
            return self._counter_view(s, counter)

    def call_next(self, window: str, clerk: str, now: dt.datetime | None = None) -> dict[str, Any]:
        now = _utc(now or self.clock())
        services = self._window(window)
        rank = _rank()
        waiting = (
            select(QueueTicket.id, rank)
            .where(
                QueueTicket.day == self.local_day(now),
                QueueTicket.service.in_(services),
                QueueTicket.status == "waiting",
            )
            .order_by(rank, QueueTicket.queued_at, QueueTicket.id)
            .limit(50)
        )
        # read first: an empty queue (a clerk pressing 叫号 again and again) costs no write
        with self.db.session() as s:
            if not s.execute(waiting.limit(1)).first():
                counter = s.get(Counter, window)
                ready = counter is not None and counter.clerk == clerk and counter.status == "open"
                if not ready or (counter is not None and counter.ticket_id):
                    raise self._why_cannot_call(counter, clerk, window)
                raise CounterError("现在没有人在排队。", "nobody waiting", empty=True)
        with self.db.session() as s:
            # lock the window: a double click calls once
            locked = s.execute(
                update(Counter)
                .where(
                    Counter.window == window,
                    Counter.clerk == clerk,
                    Counter.status == "open",
                    Counter.ticket_id.is_(None),
                )
                .values(updated_at=now)
            ).rowcount  # type: ignore[attr-defined]
            counter = s.get(Counter, window)
            if not locked:
                raise self._why_cannot_call(counter, clerk, window)
            assert counter is not None
            candidates = s.execute(waiting).all()
            if counter.priority_run >= self.config.rules.priority_run:
                regular = [c for c in candidates if c[1] == 2]
                others = [c for c in candidates if c[1] != 2]
                candidates = regular + others  # fairness: a regular number's turn
            for ticket_id, rank_of in candidates:  # noqa: B007 (the winner's, below)
                won = s.execute(
                    update(QueueTicket)
                    .where(QueueTicket.id == ticket_id, QueueTicket.status == "waiting")
                    .values(status="called", window=window, clerk=clerk, called_at=now)
                ).rowcount  # type: ignore[attr-defined]
                if won:
                    break
            else:
                raise CounterError("现在没有人在排队。", "all candidates taken", empty=True)
            counter.ticket_id = ticket_id
            counter.priority_run = 0 if rank_of == 2 else counter.priority_run + 1
            ticket = s.get(QueueTicket, ticket_id)
            assert ticket is not None
            s.refresh(ticket)
            call = self._record_call(s, ticket, window, recall=False, now=now)
        self.bus.publish(CALLS, call)  # committed: the display may show it now
        return self._view_of(ticket_id, now)

    def recall(self, window: str, clerk: str) -> dict[str, Any]:
        now = _utc(self.clock())
        with self.db.session() as s:
            ticket = self._at_window(s, window, clerk, ("called",))
            ticket.recalls += 1
            call = self._record_call(s, ticket, window, recall=True, now=now)
            ticket_id = ticket.id
        self.bus.publish(CALLS, call)
        return self._view_of(ticket_id, now)

    def start(self, window: str, clerk: str) -> dict[str, Any]:
        with self.db.session() as s:
            ticket = self._at_window(s, window, clerk, ("called",))
            ticket.status, ticket.started_at = "serving", _utc(self.clock())
            ticket_id = ticket.id
        return self._view_of(ticket_id)

    def finish(self, window: str, clerk: str) -> dict[str, Any]:
        now = _utc(self.clock())
        with self.db.session() as s:
            ticket = self._at_window(s, window, clerk, ("called", "serving"))
            ticket.started_at = ticket.started_at or ticket.called_at or now
            ticket.status, ticket.finished_at, ticket.open_key = "done", now, None
            self._free(s, window)
            ticket_id = ticket.id
        return self._view_of(ticket_id, now)

    def no_show(self, window: str, clerk: str) -> dict[str, Any]:
        """过号: the resident did not come. They may re-queue once (to the end)."""
        with self.db.session() as s:
            ticket = self._at_window(s, window, clerk, ("called",))
            ticket.status, ticket.open_key = "no_show", None
            ticket.no_shows += 1
            self._free(s, window)
            ticket_id = ticket.id
        return self._view_of(ticket_id)

    def requeue(self, token: str, now: dt.datetime | None = None) -> dict[str, Any]:
        now = _utc(now or self.clock())
        limit = self.config.rules.requeue_after_no_show
        with self.db.session() as s:
            ticket = self._by_token(s, token)
            if ticket.status != "no_show" or ticket.day != self.local_day(now):
                raise CannotIssue("cannot_requeue", "这个号现在不能重新排队。", ticket.status)
            if ticket.no_shows > limit:
                raise CannotIssue(
                    "requeue_used",
                    f"这个号已经过号{ticket.no_shows}次，不能再重新排队，请重新取号。",
                    "re-queue allowance used",
                )
            ticket.status, ticket.window = "waiting", None
            ticket.queued_at = self._requeue_time(s, ticket, now)
            if ticket.id_hash:
                ticket.open_key = _open_key(ticket.day, ticket.service, ticket.id_hash)
            try:
                with s.begin_nested():
                    s.flush()
            except IntegrityError as exc:
                raise _already(self.config.services[ticket.service], None) from exc
            ticket_id = ticket.id
        return self._view_of(ticket_id, now)

    def _requeue_time(self, s: Session, ticket: QueueTicket, now: dt.datetime) -> dt.datetime:
        """A moment just after the regular ticket that comes ``requeue_position - 1``-th,
        so the re-queued number goes in at that place (or at the end of a short queue)."""
        before = self.config.rules.requeue_position - 1
        ahead = s.scalars(
            select(QueueTicket.queued_at)
            .where(
                QueueTicket.day == ticket.day,
                QueueTicket.service == ticket.service,
                QueueTicket.status == "waiting",
                QueueTicket.kind == "walk_in",
                QueueTicket.priority_group.is_(None),
                QueueTicket.id != ticket.id,
            )
            .order_by(QueueTicket.queued_at, QueueTicket.id)
            .limit(before + 1)
        ).all()
        if len(ahead) <= before:
            return now
        if before == 0:
            return _aware(ahead[0]) - dt.timedelta(microseconds=1)
        return _aware(ahead[before - 1]) + dt.timedelta(microseconds=1)

    def transfer(
        self, window: str, clerk: str, to_service: str, now: dt.datetime | None = None
    ) -> dict[str, Any]:
        """The resident needs another service: a number there, queued by their original
        time (they do not start again at the end); this one is marked transferred."""
        target = self._service(to_service)
        now = _utc(now or self.clock())
        with self.db.session() as s:
            ticket = self._at_window(s, window, clerk, ("called", "serving"))
            if target.code == ticket.service:
                raise CounterError("已经是这个业务了。", "transfer to the same service")
            ticket.status, ticket.finished_at, ticket.open_key = "transferred", now, None
            ticket.started_at = ticket.started_at or ticket.called_at or now
            self._free(s, window)
            # in the same transaction: if the new number is refused (the resident already
            # holds one there), the old one stays at the window instead of being lost
            new = self._insert_ticket(
                s,
                target,
                self.local_day(now),
                "transfer",
                now,
                id_hash=ticket.id_hash,
                id_masked=ticket.id_masked,
                queued_at=ticket.issued_at,
                transferred_from=ticket.number,
            )
            new_id = new.id
        return self._view_of(new_id, now)

    # -- reading ----------------------------------------------------------------------
    def status(self, token: str) -> dict[str, Any]:
        with self.db.session() as s:
            return self._view(s, self._by_token(s, token))

    def services(self, now: dt.datetime | None = None) -> list[dict[str, Any]]:
        """Departments with their services: open now, walk-in numbers left, waiting, wait."""
        now = _utc(now or self.clock())
        day = self.local_day(now)
        with self.db.session() as s:
            used = {
                r.service: r.walk_in_issued
                for r in s.scalars(select(QueueDay).where(QueueDay.day == day)).all()
            }
            waiting = dict(
                s.execute(
                    select(QueueTicket.service, func.count())
                    .where(QueueTicket.day == day, QueueTicket.status == "waiting")
                    .group_by(QueueTicket.service)
                ).all()
            )
            rows = []
            for service in self.config.services.values():
                ahead = int(waiting.get(service.code, 0))
                rows.append(
                    {
                        "code": service.code,
                        "name": service.name,
                        "department": service.department,
                        "department_name": self.department_names.get(service.department, ""),
                        "windows": _windows_text(service.windows),
                        "id_required": service.id_required,
                        "walk_in_left": max(0, service.walk_in_quota - used.get(service.code, 0)),
                        "waiting": ahead,
                        "wait_minutes": self._estimate(s, service, ahead, day),
                    }
                )
        return rows

    def waiting_for_item(self, item_id: str) -> dict[str, Any] | None:
        """For the chat: the queue of the service that handles ``item_id``, while the hall
        is issuing numbers (None otherwise, or when no queue service handles it)."""
        service = self.config.service_for_item(item_id)
        now = _utc(self.clock())
        if service is None or self._period(now) is None:
            return None
        row = next(r for r in self.services(now) if r["code"] == service.code)
        return {k: row[k] for k in ("code", "name", "waiting", "wait_minutes")}

    def stats(self, since: dt.date, until: dt.date, service: str | None = None) -> dict[str, Any]:
        """The lobby's figures over the centre's days [since, until] (kiosk/queue/stats.py)."""
        with self.db.session() as s:
            return queue_stats(s, since, until, self.calendar.tz, service)

    def recent_calls(self, after_id: int = 0, limit: int = 30) -> list[dict[str, Any]]:
        """For the hall display: calls after ``after_id`` (oldest first); from 0, the last
        ``limit`` calls of today."""
        with self.db.session() as s:
            stmt = select(QueueCall)
            if after_id:
                stmt = stmt.where(QueueCall.id > after_id).order_by(QueueCall.id).limit(limit)
                rows = list(s.scalars(stmt).all())
            else:  # a display starting up: today's last calls
                local = self.clock().astimezone(self.calendar.tz)
                midnight = dt.datetime.combine(local.date(), dt.time(0), self.calendar.tz)
                stmt = stmt.where(QueueCall.at >= _utc(midnight))
                rows = list(s.scalars(stmt.order_by(QueueCall.id.desc()).limit(limit)).all())
                rows.reverse()
            return [self._call_view(c) for c in rows]

    def call(self, call_id: int) -> dict[str, Any] | None:
        with self.db.session() as s:
            row = s.get(QueueCall, call_id)
            return self._call_view(row) if row else None

    def local_day(self, now: dt.datetime) -> dt.date:
        return now.astimezone(self.calendar.tz).date()

    # -- helpers ----------------------------------------------------------------------
    def _service(self, code: str) -> QueueService:
        service = self.config.services.get(code)
        if service is None:
            raise CannotIssue(
                "unknown_service", "没有这个取号业务，请重新选择。", f"no service {code!r}"
            )
        return service

    def _window(self, window: str) -> tuple[str, ...]:
        services = self.config.windows.get(window)
        if not services:
            raise CounterError("没有这个窗口。", f"unknown window {window!r}")
        return services

    def _my_counter(self, s: Session, window: str, clerk: str) -> Counter:
        self._window(window)
        counter = s.get(Counter, window)
        if counter is None or counter.clerk != clerk or counter.status == "closed":
            raise CounterError(f"请先登录{window}号窗口。", f"{clerk} is not at {window}")
        return counter

    def _why_cannot_call(self, counter: Counter | None, clerk: str, window: str) -> CounterError:
        if counter is None or counter.clerk != clerk or counter.status == "closed":
            return CounterError(f"请先登录{window}号窗口。", f"{clerk} is not at {window}")
        if counter.status == "paused":
            return CounterError("窗口暂停服务中，请先恢复服务。", "counter paused")
        return CounterError("请先办结、过号或重呼当前的号。", "a ticket is at the window")

    def _at_window(
        self, s: Session, window: str, clerk: str, statuses: tuple[str, ...]
    ) -> QueueTicket:
        counter = self._my_counter(s, window, clerk)
        ticket = s.get(QueueTicket, counter.ticket_id) if counter.ticket_id else None
        if ticket is None or ticket.status not in statuses:
            raise CounterError("窗口当前没有可操作的号，请先叫号。", "no ticket at the window")
        return ticket

    def _free(self, s: Session, window: str) -> None:
        s.execute(update(Counter).where(Counter.window == window).values(ticket_id=None))

    def _by_token(self, s: Session, token: str) -> QueueTicket:
        ticket = s.scalar(select(QueueTicket).where(QueueTicket.token == token))
        if ticket is None:
            raise CannotIssue(
                "unknown_ticket", "没有找到这个排队号，请核对二维码。", "no such token"
            )
        return ticket

    def _record_call(
        self, s: Session, ticket: QueueTicket, window: str, *, recall: bool, now: dt.datetime
    ) -> dict[str, Any]:
        row = QueueCall(
            ticket_id=ticket.id,
            number=ticket.number,
            service=ticket.service,
            window=window,
            recall=recall,
            priority=ticket.kind == "appointment" or ticket.priority_group is not None,
            at=now,
        )
        s.add(row)
        s.flush()
        return self._call_view(row)

    def _call_view(self, c: QueueCall) -> dict[str, Any]:
        service = self.config.services.get(c.service)
        at = c.at if c.at.tzinfo else c.at.replace(tzinfo=dt.UTC)
        return {
            "type": "call",
            "id": c.id,
            "number": c.number,
            "window": c.window,
            "window_name": f"{c.window}号窗口",
            "service": service.name if service else c.service,
            "recall": bool(c.recall),
            "at": at.astimezone(self.calendar.tz).isoformat(),
        }

    def _ahead(self, s: Session, t: QueueTicket) -> int:
        """Waiting tickets of the same service that are called before ``t``."""
        if t.status != "waiting":
            return 0
        mine = 0 if t.kind == "appointment" else 1 if t.priority_group else 2
        rank = _rank()
        earlier = (rank < mine) | (
            (rank == mine)
            & (
                (QueueTicket.queued_at < t.queued_at)
                | ((QueueTicket.queued_at == t.queued_at) & (QueueTicket.id < t.id))
            )
        )
        return int(
            s.scalar(
                select(func.count())
                .select_from(QueueTicket)
                .where(
                    QueueTicket.day == t.day,
                    QueueTicket.service == t.service,
                    QueueTicket.status == "waiting",
                    earlier,
                )
            )
            or 0
        )

    def _estimate(self, s: Session, service: QueueService, ahead: int, day: dt.date) -> int:
        """Minutes until a number with ``ahead`` people before it is called: today's recent
        service times (or queue.yml's typical one) over the windows open for the service."""
        if ahead == 0:
            return 0
        per_ticket, windows = self._pace(s, service, day)
        return math.ceil(ahead * per_ticket / windows)

    def _pace(self, s: Session, service: QueueService, day: dt.date) -> tuple[float, int]:
        """(minutes a ticket takes, windows open) for the service, read at most every
        PACE_TTL_S: every issued number and status page asks, and a few seconds' age
        does not change an estimate in minutes."""
        key = (service.code, day)
        cached = self._paces.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1], cached[2]
        durations = s.execute(
            select(QueueTicket.started_at, QueueTicket.finished_at)
            .where(
                QueueTicket.day == day,
                QueueTicket.service == service.code,
                QueueTicket.status == "done",
            )
            .order_by(QueueTicket.finished_at.desc())
            .limit(RECENT_SERVICE_TIMES)
        ).all()
        minutes = [
            (b - a).total_seconds() / 60 for a, b in durations if a is not None and b is not None
        ]
        per_ticket = sum(minutes) / len(minutes) if len(minutes) >= 3 else service.minutes
        open_windows = int(
            s.scalar(
                select(func.count())
                .select_from(Counter)
                .where(Counter.window.in_(service.windows), Counter.status == "open")
            )
            or 0
        )
        windows = open_windows or len(service.windows)  # before anyone logs in: all of them
        self._paces[key] = (time.monotonic() + PACE_TTL_S, per_ticket, windows)
        return per_ticket, windows

    def _view_of(self, ticket_id: int, now: dt.datetime | None = None) -> dict[str, Any]:
        """A ticket's view in a read-only session: computed after the write committed, so
        the counting queries do not hold SQLite's write lock (or a PostgreSQL row lock)."""
        with self.db.session() as s:
            ticket = s.get(QueueTicket, ticket_id)
            assert ticket is not None
            return self._view(s, ticket, now)

    def _duplicate_view(self, s: Session, t: QueueTicket, now: dt.datetime) -> dict[str, Any]:
        """An already issued ticket asked for again: ``printed`` says if its slip came out."""
        return {**self._view(s, t, now), "duplicate": True, "printed": t.printed_at is not None}

    def _view(self, s: Session, t: QueueTicket, now: dt.datetime | None = None) -> dict[str, Any]:
        service = self.config.services[t.service]
        ahead = self._ahead(s, t)
        issued = t.issued_at if t.issued_at.tzinfo else t.issued_at.replace(tzinfo=dt.UTC)
        return {
            "number": t.number,
            "token": t.token,
            "service": t.service,
            "service_name": service.name,
            "department_name": self.department_names.get(service.department, ""),
            "windows": _windows_text(service.windows),
            "kind": t.kind,
            "priority_group": t.priority_group,
            "status": t.status,
            "status_label": STATUS.get(t.status, t.status),
            "window": t.window,
            "ahead": ahead,
            "wait_minutes": self._estimate(s, service, ahead, t.day)
            if t.status == "waiting"
            else 0,
            "issued_at": issued.astimezone(self.calendar.tz).isoformat(),
            "transferred_from": t.transferred_from,
            "id_masked": t.id_masked,
        }

    def _counter_view(self, s: Session, c: Counter) -> dict[str, Any]:
        ticket = s.get(QueueTicket, c.ticket_id) if c.ticket_id else None
        services = self.config.windows.get(c.window, ())
        waiting = int(
            s.scalar(
                select(func.count())
                .select_from(QueueTicket)
                .where(
                    QueueTicket.day == self.local_day(self.clock()),
                    QueueTicket.service.in_(services),
                    QueueTicket.status == "waiting",
                )
            )
            or 0
        )
        return {
            "window": c.window,
            "clerk": c.clerk,
            "status": c.status,
            "services": [
                {"code": code, "name": self.config.services[code].name} for code in services
            ],
            "waiting": waiting,
            "ticket": self._view(s, ticket) if ticket else None,
        }


def _already(service: QueueService, number: str | None) -> CannotIssue:
    held = f"（{number}）" if number else ""
    return CannotIssue(
        "already_waiting",
        f"您已经取过“{service.name}”的号{held}，还没有办理。请留意叫号，不用重复取号。",
        "one unserved ticket per ID and service",
        number=number,
    )


def _open_key(day: dt.date, service: str, id_hash: str | None) -> str | None:
    """The unique key a person's unserved ticket (or open booking) holds for a service and
    day; None without an ID (nothing to hold)."""
    return f"{day.isoformat()}:{service}:{id_hash}" if id_hash else None


def _rank() -> Any:
    """The calling order's classes: checked-in appointments, then 绿色通道, then the rest."""
    return case(
        (QueueTicket.kind == "appointment", 0),
        (QueueTicket.priority_group.is_not(None), 1),
        else_=2,
    )


def _utc(moment: dt.datetime) -> dt.datetime:
    """Every moment is stored in UTC: SQLite keeps a datetime's wall-clock digits without
    its offset, so mixing zones there would compare 09:00+08:00 with 01:00+00:00 as text."""
    return moment.astimezone(dt.UTC)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)  # SQLite drops it


def _windows_text(windows: tuple[str, ...]) -> str:
    if len(windows) == 1:
        return f"{windows[0]}号窗口"
    return f"{windows[0]}—{windows[-1]}号窗口"
