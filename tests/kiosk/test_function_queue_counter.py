"""Counters: call next (appointments and 绿色通道 first, with the fairness rule), recall,
start and finish, 过号 with one re-queue, transfer, pause; two windows calling at once; the
calls the hall display reads."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from queue_builders import at, id_number, make_desk

from banshi.db import Database
from kiosk.errors import CannotIssue, CounterError


def elderly(serial: str) -> str:
    return id_number("19500101", serial=serial)


def test_priority_goes_first_but_a_regular_number_gets_its_turn(db: Database) -> None:
    """GIVEN regular C001–C003 and then five 70+ residents, WHEN the window calls eight
    times with priority_run 3, THEN three priority, one regular, three priority, ..."""
    desk = make_desk(db, priority_run=3)
    for i in range(3):
        desk.issue("C", now=at(f"09:0{i}"))
    for i in range(5):
        desk.issue("C", id_number=elderly(f"10{i}"), priority_group="elderly", now=at("09:05"))
    desk.open_counter("B09", "li")
    called = []
    for _ in range(8):
        called.append(desk.call_next("B09", "li", now=at("09:30"))["number"])
        desk.finish("B09", "li")
    assert called == ["C004", "C005", "C006", "C001", "C007", "C008", "C002", "C003"]


def test_checked_in_appointments_are_called_before_walk_ins(db: Database) -> None:
    desk = make_desk(db)
    desk.issue("C", now=at("09:00"))
    booked = desk.book("C", at("09:00").date(), "10:00", id_number(), now=at("08:00"))
    checked = desk.check_in(booked["token"], now=at("09:45"))
    assert checked["kind"] == "appointment" and checked["ahead"] == 0
    desk.open_counter("B10", "zhao")
    assert desk.call_next("B10", "zhao", now=at("09:50"))["number"] == checked["number"]


def test_recall_no_show_and_one_re_queue_to_the_end(db: Database) -> None:
    desk = make_desk(db)
    first = desk.issue("J", now=at("09:00"))
    desk.issue("J", now=at("09:01"))
    desk.open_counter("F01", "wu")
    assert desk.call_next("F01", "wu", now=at("09:10"))["number"] == "J001"
    recalled = desk.recall("F01", "wu")
    assert recalled["status_label"] == "已叫号，请到窗口"
    assert [c["recall"] for c in desk.recent_calls()] == [False, True]
    skipped = desk.no_show("F01", "wu")
    assert skipped["status_label"] == "已过号"
    back = desk.requeue(first["token"], now=at("09:12"))
    assert (back["status"], back["ahead"]) == ("waiting", 1)  # behind J002 now
    assert desk.call_next("F01", "wu", now=at("09:13"))["number"] == "J002"
    desk.finish("F01", "wu")
    assert desk.call_next("F01", "wu", now=at("09:20"))["number"] == "J001"
    desk.no_show("F01", "wu")
    with pytest.raises(CannotIssue) as twice:
        desk.requeue(first["token"], now=at("09:25"))
    assert twice.value.message == "这个号已经过号2次，不能再重新排队，请重新取号。"


def test_start_finish_records_the_service_time_used_for_estimates(db: Database) -> None:
    desk = make_desk(db)
    desk.open_counter("Z01", "sun")
    for i in range(3):
        desk.issue("Z", now=at(f"09:0{i}"))
    for _ in range(3):
        desk.call_next("Z01", "sun", now=at("09:10"))
        desk.start("Z01", "sun")
        desk.finish("Z01", "sun")
    later = desk.issue("Z", now=at("09:30"))
    assert later["ahead"] == 0 and later["wait_minutes"] == 0
    with db.session() as s:
        from kiosk.queue.models import QueueTicket

        done = s.query(QueueTicket).filter_by(status="done").all()
        assert all(t.started_at and t.finished_at and t.finished_at >= t.started_at for t in done)


def test_transfer_gives_a_number_in_the_other_service_keeping_the_place(db: Database) -> None:
    desk = make_desk(db)
    desk.issue("B", id_number=id_number(serial="201"), now=at("09:00"))
    mine = desk.issue("Z", now=at("09:00"))
    desk.issue("B", id_number=id_number(serial="202"), now=at("09:05"))
    desk.open_counter("Z01", "sun")
    desk.call_next("Z01", "sun", now=at("09:10"))
    moved = desk.transfer("Z01", "sun", "B", now=at("09:12"))
    assert moved["number"] == "B003" and moved["transferred_from"] == mine["number"]
    assert moved["ahead"] == 1  # queued by its 09:00 ticket: only the 09:00 B001 is ahead
    assert desk.status(mine["token"])["status_label"] == "已转其他业务"


def test_counter_rules_paused_empty_and_not_logged_in(db: Database) -> None:
    desk = make_desk(db)
    with pytest.raises(CounterError) as not_in:
        desk.call_next("A01", "li")
    assert not_in.value.message == "请先登录A01号窗口。"
    desk.open_counter("A01", "li")
    with pytest.raises(CounterError) as empty:
        desk.call_next("A01", "li", now=at("09:00"))
    assert empty.value.message == "现在没有人在排队。"
    with pytest.raises(CounterError) as taken:
        desk.open_counter("A01", "zhao")
    assert taken.value.message == "A01号窗口已由li登录，请先在那台电脑上退出。"
    desk.set_counter("A01", "li", "paused")
    desk.issue("A", id_number=id_number(), now=at("09:00"))
    with pytest.raises(CounterError) as paused:
        desk.call_next("A01", "li", now=at("09:01"))
    assert paused.value.message == "窗口暂停服务中，请先恢复服务。"
    desk.set_counter("A01", "li", "open")
    desk.call_next("A01", "li", now=at("09:02"))
    with pytest.raises(CounterError) as busy:
        desk.call_next("A01", "li", now=at("09:03"))
    assert busy.value.message == "请先办结、过号或重呼当前的号。"
    with pytest.raises(CounterError):
        desk.set_counter("A01", "li", "closed")
    with pytest.raises(CounterError):
        desk.open_counter("X99", "li")


def windows_race(db: Database) -> list[str]:
    desk = make_desk(db)
    for i in range(8):
        desk.issue("H", id_number=id_number(serial=f"3{i:02d}"), now=at("09:00"))
    windows = [f"E{i:02d}" for i in range(1, 9)]
    for w in windows:
        desk.open_counter(w, f"clerk-{w}")
    barrier = threading.Barrier(len(windows))
    called: list[str] = []

    def window(w: str) -> None:
        barrier.wait()
        called.append(desk.call_next(w, f"clerk-{w}", now=at("09:10"))["number"])

    threads = [threading.Thread(target=window, args=(w,)) for w in windows]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return called


def test_eight_windows_calling_at_once_each_get_a_different_number(db: Database) -> None:
    assert sorted(windows_race(db)) == [f"H{i:03d}" for i in range(1, 9)]


@pytest.mark.postgres
def test_eight_windows_calling_at_once_each_get_a_different_number_on_postgresql(
    pg_url: str,
) -> None:
    database = Database(pg_url)
    database.upgrade()
    try:
        assert sorted(windows_race(database)) == [f"H{i:03d}" for i in range(1, 9)]
    finally:
        database.dispose()


def test_calls_are_published_for_the_display_and_readable_after(db: Database) -> None:
    desk = make_desk(db)
    seen: list[dict[str, Any]] = []
    desk.bus.publish = lambda topic, event: seen.append({"topic": topic, **event})  # type: ignore[method-assign]
    desk.issue("C", now=at("09:00"))
    desk.open_counter("B11", "qian")
    desk.call_next("B11", "qian", now=at("09:05"))
    assert seen[0]["topic"] == "calls"
    [call] = desk.recent_calls()
    assert {k: call[k] for k in ("number", "window", "window_name", "service", "recall")} == {
        "number": "C001",
        "window": "B11",
        "window_name": "B11号窗口",
        "service": "医疗保障",
        "recall": False,
    }
    assert dt.datetime.fromisoformat(call["at"]).utcoffset() == dt.timedelta(hours=8)
    assert desk.recent_calls(after_id=call["id"]) == []
    assert desk.call(call["id"]) == call and desk.call(call["id"] + 1) is None


def test_a_re_queued_number_goes_in_third_and_seventy_plus_is_recognised(db: Database) -> None:
    """The queue-appointment guide: 过号重排 puts the number third in the queue, and a card
    of someone 70 or older gives a priority number without asking."""
    desk = make_desk(db)
    late = desk.issue("J", now=at("09:00"))
    for i in range(4):
        desk.issue("J", now=at(f"09:0{i + 1}"))
    desk.open_counter("F02", "he")
    assert desk.call_next("F02", "he", now=at("09:10"))["number"] == "J001"
    desk.no_show("F02", "he")
    back = desk.requeue(late["token"], now=at("09:11"))
    assert back["ahead"] == 2  # J002 and J003 before it, J004 and J005 after
    order = []
    for _ in range(5):
        order.append(desk.call_next("F02", "he", now=at("09:12"))["number"])
        desk.finish("F02", "he")
    assert order == ["J002", "J003", "J001", "J004", "J005"]
    old = desk.issue("J", id_number=elderly("901"), now=at("09:20"))
    assert old["priority_group"] == "elderly"


def test_a_refused_transfer_keeps_the_ticket_at_the_window(db: Database) -> None:
    desk = make_desk(db)
    person = id_number(serial="777")
    desk.issue("B", id_number=person, now=at("09:00"))  # already queued for 社会保险
    mine = desk.issue("A", id_number=person, now=at("09:01"))
    desk.open_counter("A01", "li")
    desk.call_next("A01", "li", now=at("09:05"))
    with pytest.raises(CannotIssue) as refused:
        desk.transfer("A01", "li", "B", now=at("09:06"))
    assert refused.value.reason == "already_waiting"
    assert desk.status(mine["token"])["status_label"] == "已叫号，请到窗口"
    assert desk.counter("A01")["ticket"]["number"] == mine["number"]
