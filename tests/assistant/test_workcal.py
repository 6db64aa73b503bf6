"""The centre's working calendar (banshi/workcal.py) over the sample centre.yml ``opening:``:
opening periods, holidays, 调休 workdays, the next opening and how it is said, and configs
that cannot be read."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from banshi.settings import SAMPLE_KB_DIR
from banshi.workcal import CalendarInvalid, Period, WorkCalendar

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def opening() -> dict[str, Any]:
    centre = yaml.safe_load((SAMPLE_KB_DIR / "centre.yml").read_text(encoding="utf-8"))
    return dict(centre["opening"])


@pytest.fixture(scope="module")
def cal(opening: dict[str, Any]) -> WorkCalendar:
    return WorkCalendar.from_config(opening)


def at(day: str, hhmm: str, tz: ZoneInfo = SHANGHAI) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time.fromisoformat(hhmm), tz)


# -- reading the sample config -------------------------------------------------------------
def test_sample_config_is_read_in_full(cal: WorkCalendar) -> None:
    assert cal.tz.key == "Asia/Shanghai"
    assert cal.periods[0] == (
        Period(dt.time(9, 0), dt.time(12, 0)),
        Period(dt.time(13, 30), dt.time(17, 0)),
    )
    assert cal.periods[5] == (Period(dt.time(9, 0), dt.time(12, 0)),)
    assert 6 not in cal.periods  # no Sunday hours
    # ranges are expanded day by day, both ends included
    assert {dt.date(2026, 10, d) for d in range(1, 8)} <= cal.holidays
    assert dt.date(2026, 9, 30) not in cal.holidays
    assert dt.date(2026, 10, 8) not in cal.holidays
    assert dt.date(2026, 2, 23) in cal.holidays  # last day of 2026-02-15..2026-02-23
    # YAML hands the workdays over as dates already
    assert dt.date(2026, 9, 20) in cal.workdays
    assert dt.date(2026, 10, 10) in cal.workdays
    assert len(cal.workdays) == 6


def test_period_text_uses_the_dash_of_the_hours_notice() -> None:
    assert Period(dt.time(13, 30), dt.time(17, 0)).text() == "13:30—17:00"


def test_missing_opening_means_shanghai_and_never_open() -> None:
    cal = WorkCalendar.from_config(None)
    assert cal.tz.key == "Asia/Shanghai"
    assert not cal.is_open(at("2026-09-14", "10:00"))
    assert cal.next_opening(at("2026-09-14", "10:00")) is None
    assert cal.describe_next(at("2026-09-14", "10:00")) == "下一个工作日"


# -- is_open -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("day", "hhmm", "open_"),
    [
        ("2026-09-14", "08:59", False),  # Monday, before opening
        ("2026-09-14", "09:00", True),  # the first minute
        ("2026-09-14", "10:00", True),  # weekday morning
        ("2026-09-14", "11:59", True),
        ("2026-09-14", "12:00", False),  # lunch break starts: the end is not included
        ("2026-09-14", "12:45", False),  # lunch
        ("2026-09-14", "13:30", True),  # afternoon
        ("2026-09-14", "16:59", True),
        ("2026-09-14", "17:00", False),  # closed for the day
        ("2026-09-18", "15:00", True),  # Friday afternoon
        ("2026-09-19", "10:00", True),  # Saturday morning (extended service windows)
        ("2026-09-19", "14:00", False),  # Saturday afternoon
        ("2026-09-13", "10:00", False),  # Sunday
        ("2026-10-02", "10:00", False),  # 国庆 holiday on a Friday
        ("2026-10-01", "15:00", False),  # 国庆 holiday on a Thursday
        ("2026-10-08", "10:00", True),  # first day back
        ("2026-09-20", "10:00", True),  # Sunday worked instead (调休): open
        ("2026-09-20", "15:00", True),  # ... the whole day, like a Monday
        ("2026-10-10", "15:00", True),  # Saturday worked instead: afternoon too
        ("2026-10-11", "10:00", False),  # the Sunday after it is an ordinary Sunday
    ],
)
def test_is_open(cal: WorkCalendar, day: str, hhmm: str, open_: bool) -> None:
    assert cal.is_open(at(day, hhmm)) is open_


def test_is_open_reads_other_timezones_in_centre_time(cal: WorkCalendar) -> None:
    # 02:00 UTC is 10:00 in Shanghai on a Monday; 10:00 UTC is 18:00 there
    assert cal.is_open(dt.datetime(2026, 9, 14, 2, 0, tzinfo=dt.UTC))
    assert not cal.is_open(dt.datetime(2026, 9, 14, 10, 0, tzinfo=dt.UTC))


def test_periods_on_a_worked_weekend_day_are_mondays(cal: WorkCalendar) -> None:
    assert cal.periods_on(dt.date(2026, 9, 20)) == cal.periods[0]
    assert cal.periods_on(dt.date(2026, 10, 3)) == ()  # a holiday Saturday
    assert cal.periods_on(dt.date(2026, 9, 13)) == ()  # an ordinary Sunday


# -- next_opening --------------------------------------------------------------------------
def test_next_opening_is_now_when_open(cal: WorkCalendar) -> None:
    now = at("2026-09-14", "10:17")
    assert cal.next_opening(now) == now


@pytest.mark.parametrize(
    ("day", "hhmm", "expected"),
    [
        ("2026-09-14", "07:30", ("2026-09-14", "09:00")),  # early morning: today
        ("2026-09-14", "12:10", ("2026-09-14", "13:30")),  # lunch: the afternoon
        ("2026-09-14", "17:00", ("2026-09-15", "09:00")),  # evening: tomorrow
        ("2026-09-18", "18:00", ("2026-09-19", "09:00")),  # Friday evening: Saturday
        ("2026-09-19", "12:00", ("2026-09-20", "09:00")),  # Saturday noon: 调休 Sunday
        ("2026-09-12", "13:00", ("2026-09-14", "09:00")),  # Saturday noon: Monday
        # across the 国庆 week: Wednesday evening before it to the Thursday after it
        ("2026-09-30", "17:30", ("2026-10-08", "09:00")),
        ("2026-10-03", "10:00", ("2026-10-08", "09:00")),  # in the middle of it
    ],
)
def test_next_opening(cal: WorkCalendar, day: str, hhmm: str, expected: tuple[str, str]) -> None:
    nxt = cal.next_opening(at(day, hhmm))
    assert nxt == at(*expected)
    assert nxt is not None and cal.is_open(nxt)


def test_next_opening_is_in_centre_time(cal: WorkCalendar) -> None:
    # Sunday 20:00 UTC is Monday 04:00 in Shanghai
    nxt = cal.next_opening(dt.datetime(2026, 9, 13, 20, 0, tzinfo=dt.UTC))
    assert nxt is not None
    assert nxt.tzinfo == SHANGHAI
    assert (nxt.date(), nxt.time()) == (dt.date(2026, 9, 14), dt.time(9, 0))


def test_next_opening_gives_up_beyond_the_horizon() -> None:
    cal = WorkCalendar.from_config(
        {"periods": {"mon": ["09:00-12:00"]}, "holidays": ["2026-09-15..2026-12-31"]}
    )
    assert cal.next_opening(at("2026-09-14", "13:00")) is None
    assert cal.next_opening(at("2026-09-14", "13:00"), horizon_days=120) == at(
        "2027-01-04", "09:00"
    )


# -- describe_next -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("day", "hhmm", "words"),
    [
        ("2026-09-14", "07:30", "今天（周一）上午9:00"),
        ("2026-09-14", "12:30", "今天（周一）下午13:30"),
        ("2026-09-13", "20:00", "明天（周一）上午9:00"),
        ("2026-09-14", "18:00", "明天（周二）上午9:00"),
        ("2026-09-19", "13:00", "明天（周日）上午9:00"),  # the 调休 Sunday
        ("2026-09-12", "13:00", "后天（周一）上午9:00"),
        ("2026-09-30", "17:30", "10月8日（周四）上午9:00"),
    ],
)
def test_describe_next(cal: WorkCalendar, day: str, hhmm: str, words: str) -> None:
    assert cal.describe_next(at(day, hhmm)) == words


def test_describe_next_counts_days_in_centre_time(cal: WorkCalendar) -> None:
    # Monday 23:30 UTC is already Tuesday 07:30 in Shanghai: opening is "today"
    assert (
        cal.describe_next(dt.datetime(2026, 9, 14, 23, 30, tzinfo=dt.UTC)) == "今天（周二）上午9:00"
    )


# -- invalid configs -----------------------------------------------------------------------
def broken(opening: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**opening, **changes}


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"periods": {"monday": ["09:00-12:00"]}}, "opening.periods.monday", "mon/tue"),
        ({"periods": {"mon": ["9-12"]}}, "opening.periods.mon", "应写成 09:00-12:00"),
        ({"periods": {"tue": ["09:00"]}}, "opening.periods.tue", "应写成 09:00-12:00"),
        ({"periods": {"wed": ["12:00-09:00"]}}, "opening.periods.wed", "结束时间应晚于开始时间"),
        ({"periods": {"thu": ["09:00-09:00"]}}, "opening.periods.thu", "结束时间应晚于开始时间"),
        ({"timezone": "Asia/Qinghe"}, "opening.timezone", "未知时区"),
        ({"holidays": ["2026-10-07..2026-10-01"]}, "opening.holidays", "结束日期早于开始日期"),
        ({"holidays": ["2026-13-01"]}, "opening.holidays", "应为 2026-10-01"),
        ({"workdays": ["国庆后第一个周六"]}, "opening.workdays", "应为 2026-10-01"),
    ],
)
def test_invalid_config_names_the_field(
    opening: dict[str, Any], changes: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(CalendarInvalid) as exc:
        WorkCalendar.from_config(broken(opening, **changes))
    assert str(exc.value).startswith(f"{field}: ")
    assert words in str(exc.value)


def test_calendar_invalid_is_a_value_error() -> None:
    # callers that validate centre.yml catch ValueError
    with pytest.raises(ValueError, match=r"opening\.timezone"):
        WorkCalendar.from_config({"timezone": "Mars/Olympus"})
