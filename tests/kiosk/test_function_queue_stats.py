"""The lobby's statistics match the day the queue engine recorded: a scripted morning at
two windows (numbers issued, called, served and missed at known moments), on SQLite and
(marker ``postgres``) on PostgreSQL. Every expected figure is worked out by hand from the
script below."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from queue_builders import MONDAY, TZ, at, make_desk

from banshi.db import Database
from kiosk.queue.engine import QueueDesk
from kiosk.queue.stats import queue_stats


@pytest.fixture
def desk(database_url: str) -> Iterator[QueueDesk]:
    database = Database(database_url)
    try:
        yield make_desk(database)
    finally:
        database.dispose()


def act(desk: QueueDesk, hhmm: str, step: str, window: str, *args: Any) -> Any:
    desk.clock = lambda: at(hhmm)  # type: ignore[method-assign]
    return getattr(desk, step)(window, "clerk", *args)


@pytest.fixture
def morning(desk: QueueDesk) -> QueueDesk:
    """Service C (医疗保障): C001 09:00, C002 09:02, C003 09:10, C004 10:05; service G: G001
    09:30. Window B09 serves C001 (called 09:05, done 09:15: waited 5, served 10 min) and
    C003 (called 09:40, done 09:44: waited 30, served 4); B10 calls C002 at 09:20 (waited 18)
    and marks it missed. C004 and G001 are still waiting."""
    for hhmm, service in [("09:00", "C"), ("09:02", "C"), ("09:10", "C"), ("10:05", "C")]:
        desk.issue(service, now=at(hhmm))
    desk.issue("G", now=at("09:30"))
    for window in ("B09", "B10"):
        desk.open_counter(window, "clerk")
    assert act(desk, "09:05", "call_next", "B09")["number"] == "C001"
    act(desk, "09:05", "start", "B09")
    act(desk, "09:15", "finish", "B09")
    assert act(desk, "09:20", "call_next", "B10")["number"] == "C002"
    act(desk, "09:25", "no_show", "B10")
    assert act(desk, "09:40", "call_next", "B09")["number"] == "C003"
    act(desk, "09:40", "start", "B09")
    act(desk, "09:44", "finish", "B09")
    return desk


def stats(desk: QueueDesk, service: str | None = None) -> dict[str, Any]:
    with desk.db.session() as s:
        return queue_stats(s, MONDAY, MONDAY, TZ, service)


def test_issued_served_and_missed_match_the_script(morning: QueueDesk) -> None:
    got = stats(morning)
    total = got["total"]
    assert (total["issued"], total["walk_in"], total["appointment"]) == (5, 5, 0)
    assert (total["served"], total["no_show"], total["no_show_rate"]) == (2, 1, 0.333)
    assert got["services"]["C"]["issued"] == 4 and got["services"]["G"]["issued"] == 1
    assert got["services"]["G"]["served"] == 0 and got["services"]["G"]["no_show_rate"] is None


def test_waiting_and_service_times_are_the_scripts_minutes(morning: QueueDesk) -> None:
    c = stats(morning)["services"]["C"]
    # waited 5 (C001), 18 (C002), 30 (C003); C004 was never called
    assert c["waiting"]["n"] == 3
    assert (c["waiting"]["p50_min"], c["waiting"]["p90_min"]) == (18.0, 30.0)
    assert c["waiting"]["mean_min"] == round(53 / 3, 1)
    bars = {b["minutes"]: b["count"] for b in c["waiting"]["bars"]}
    assert (bars["5–10"], bars["15–20"], bars["30–45"], bars["0–5"]) == (1, 1, 1, 0)
    # served 10 (C001) and 4 (C003) minutes; the missed C002 has no service time
    assert c["service_time"]["n"] == 2
    assert (c["service_time"]["p50_min"], c["service_time"]["p90_min"]) == (4.0, 10.0)


def test_windows_count_what_each_window_did(morning: QueueDesk) -> None:
    windows = stats(morning)["windows"]
    assert set(windows) == {"B09", "B10"}
    assert (windows["B09"]["served"], windows["B09"]["no_show"]) == (2, 0)
    assert (windows["B10"]["served"], windows["B10"]["no_show"]) == (0, 1)
    assert windows["B09"]["service_time"]["mean_min"] == 7.0


def test_hours_are_the_centres_hours(morning: QueueDesk) -> None:
    got = stats(morning)
    # issued at 09:00, 09:02, 09:10, 09:30 and 10:05 Beijing time (01:00–02:05 UTC)
    assert got["hours"] == [{"hour": 9, "issued": 4}, {"hour": 10, "issued": 1}]
    assert got["busiest_hour"] == 9


def test_one_service_and_another_day(morning: QueueDesk) -> None:
    only_g = stats(morning, "G")
    assert only_g["total"]["issued"] == 1 and set(only_g["services"]) == {"G"}
    with morning.db.session() as s:
        other_day = queue_stats(s, MONDAY + dt.timedelta(days=1), MONDAY + dt.timedelta(7), TZ)
    assert other_day["total"]["issued"] == 0 and other_day["busiest_hour"] is None
    assert other_day["total"]["waiting"]["p50_min"] is None
