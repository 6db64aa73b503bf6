"""The centre's working calendar: opening periods per weekday, public holidays and the
weekend days worked instead (调休). One definition (centre.yml ``opening:``) serves the chat
("are people there now?"), ticket deadlines in working hours and the kiosk's opening times."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_ZH = "一二三四五六日"


class CalendarInvalid(ValueError):
    """centre.yml ``opening:`` cannot be read; the message names the field."""


@dataclass(frozen=True)
class Period:
    start: dt.time
    end: dt.time

    def text(self) -> str:
        return f"{self.start:%H:%M}—{self.end:%H:%M}"


@dataclass(frozen=True)
class WorkCalendar:
    tz: ZoneInfo
    periods: dict[int, tuple[Period, ...]]  # weekday (0 = Monday) -> periods
    holidays: frozenset[dt.date] = field(default_factory=frozenset)
    workdays: frozenset[dt.date] = field(default_factory=frozenset)  # weekend days worked

    @classmethod
    def from_config(cls, opening: dict[str, Any] | None) -> WorkCalendar:
        opening = opening or {}
        try:
            tz = ZoneInfo(str(opening.get("timezone", "Asia/Shanghai")))
        except Exception as exc:
            raise CalendarInvalid(
                f"opening.timezone: 未知时区 {opening.get('timezone')!r}"
            ) from exc
        periods: dict[int, tuple[Period, ...]] = {}
        for key, spans in (opening.get("periods") or {}).items():
            if key not in WEEKDAYS:
                raise CalendarInvalid(f"opening.periods.{key}: 应为 {'/'.join(WEEKDAYS)} 之一")
            periods[WEEKDAYS.index(key)] = tuple(
                _period(f"opening.periods.{key}", s) for s in spans
            )
        holidays: set[dt.date] = set()
        for entry in opening.get("holidays") or []:
            holidays.update(_dates("opening.holidays", entry))
        workdays: set[dt.date] = set()
        for entry in opening.get("workdays") or []:
            workdays.update(_dates("opening.workdays", entry))
        return cls(tz, periods, frozenset(holidays), frozenset(workdays))

    @classmethod
    def always(cls, timezone: str = "Asia/Shanghai") -> WorkCalendar:
        """Open every hour of every day (a hotline staffed day and night)."""
        whole_day = (Period(dt.time(0, 0), dt.time.max),)
        return cls(ZoneInfo(timezone), dict.fromkeys(range(7), whole_day))

    def now(self) -> dt.datetime:
        return dt.datetime.now(self.tz)

    def periods_on(self, day: dt.date) -> tuple[Period, ...]:
        if day in self.holidays:
            return ()
        if day in self.workdays:  # 调休上班: a weekend day run like a Monday
            return self.periods.get(0, ())
        return self.periods.get(day.weekday(), ())

    def is_open(self, when: dt.datetime) -> bool:
        local = when.astimezone(self.tz)
        return any(p.start <= local.time() < p.end for p in self.periods_on(local.date()))

    def next_opening(self, when: dt.datetime, horizon_days: int = 60) -> dt.datetime | None:
        """The start of the next opening period after ``when`` (``when`` itself if open)."""
        local = when.astimezone(self.tz)
        if self.is_open(local):
            return local
        for offset in range(horizon_days):
            day = local.date() + dt.timedelta(days=offset)
            for p in self.periods_on(day):
                start = dt.datetime.combine(day, p.start, self.tz)
                if start > local:
                    return start
        return None

    def add_working_hours(self, start: dt.datetime, hours: float) -> dt.datetime:
        """The moment ``hours`` of opening time after ``start`` (a ticket's due time)."""
        left = dt.timedelta(hours=hours)
        local = start.astimezone(self.tz)
        for offset in range(366 * 2):
            day = local.date() + dt.timedelta(days=offset)
            for p in self.periods_on(day):
                begin = max(dt.datetime.combine(day, p.start, self.tz), local)
                end = dt.datetime.combine(day, p.end, self.tz)
                if begin >= end:
                    continue
                if end - begin >= left:
                    return begin + left
                left -= end - begin
        raise CalendarInvalid("opening: 两年内没有足够的工作时间，请检查 periods 与 holidays")

    def working_hours_between(self, start: dt.datetime, end: dt.datetime) -> float:
        """Opening hours from ``start`` to ``end`` (negative when ``end`` is earlier)."""
        if end < start:
            return -self.working_hours_between(end, start)
        a, b = start.astimezone(self.tz), end.astimezone(self.tz)
        total = dt.timedelta()
        for offset in range((b.date() - a.date()).days + 1):
            day = a.date() + dt.timedelta(days=offset)
            for p in self.periods_on(day):
                lo = max(dt.datetime.combine(day, p.start, self.tz), a)
                hi = min(dt.datetime.combine(day, p.end, self.tz), b)
                if hi > lo:
                    total += hi - lo
        return total.total_seconds() / 3600

    def describe_next(self, when: dt.datetime) -> str:
        """「明天（周一）上午9:00」-style words for the next opening, as residents say it."""
        nxt = self.next_opening(when)
        if nxt is None:
            return "下一个工作日"
        local = when.astimezone(self.tz)
        days = (nxt.date() - local.date()).days
        day = {0: "今天", 1: "明天", 2: "后天"}.get(days, f"{nxt.month}月{nxt.day}日")
        half = "上午" if nxt.hour < 12 else "下午"
        return f"{day}（周{WEEKDAY_ZH[nxt.weekday()]}）{half}{nxt.hour}:{nxt.minute:02d}"


def _period(where: str, span: Any) -> Period:
    try:
        start, end = (dt.time.fromisoformat(part.strip()) for part in str(span).split("-"))
    except ValueError as exc:
        raise CalendarInvalid(f"{where}: {span!r} 应写成 09:00-12:00") from exc
    if start >= end:
        raise CalendarInvalid(f"{where}: {span!r} 结束时间应晚于开始时间")
    return Period(start, end)


def _dates(where: str, entry: Any) -> list[dt.date]:
    """A date, or a range written ``2026-10-01..2026-10-07`` (YAML may hand us a date)."""
    if isinstance(entry, dt.date):
        return [entry]
    try:
        first, _, last = str(entry).partition("..")
        start = dt.date.fromisoformat(first.strip())
        end = dt.date.fromisoformat(last.strip()) if last else start
    except ValueError as exc:
        raise CalendarInvalid(
            f"{where}: {entry!r} 应为 2026-10-01 或 2026-10-01..2026-10-07"
        ) from exc
    if end < start:
        raise CalendarInvalid(f"{where}: {entry!r} 结束日期早于开始日期")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
