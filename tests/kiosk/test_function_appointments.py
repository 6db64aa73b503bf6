"""Appointments: hour slots from the opening periods with capacity from the quota, one
booking per person, QR check-in from 30 minutes before to 15 minutes after the start (as the
queue-appointment guide tells residents), cancel, no-shows."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from queue_builders import MONDAY, at, id_number, make_desk

from banshi.db import Database
from kiosk.errors import CannotIssue


def test_slots_follow_the_opening_periods_with_capacity_from_the_quota(db: Database) -> None:
    desk = make_desk(db)
    slots = desk.slots("E", MONDAY)  # 民政: 24 appointments a day
    assert [(s["start"], s["end"]) for s in slots] == [
        ("09:00", "10:00"),
        ("10:00", "11:00"),
        ("11:00", "12:00"),
        ("13:30", "14:30"),
        ("14:30", "15:30"),
        ("15:30", "16:30"),
    ]
    assert {s["capacity"] for s in slots} == {4}  # 24 / 6
    assert desk.slots("E", MONDAY - dt.timedelta(days=1)) == []  # a Sunday


def test_booking_checks_in_within_its_window_only(db: Database) -> None:
    desk = make_desk(db)
    booked = desk.book("E", MONDAY, "10:00", id_number(), "13812345678", now=at("08:00"))
    assert booked["service_name"] == "民政（婚姻登记、低保、高龄津贴、残疾人补贴）"
    assert booked["end"] == "11:00"
    with pytest.raises(CannotIssue) as early:
        desk.check_in(booked["token"], now=at("09:29"))
    assert early.value.message == (
        "您预约的是12月7日10:00—11:00，请在10:00前30分钟到开始后15分钟之间签到。"
    )
    ticket = desk.check_in(booked["token"], now=at("09:31"))
    assert ticket["number"] == "E001" and ticket["kind"] == "appointment"
    assert desk.check_in(booked["token"], now=at("09:32"))["number"] == "E001"  # scanned twice
    token = booked["token"]
    with pytest.raises(CannotIssue) as forged:
        desk.check_in(token[:-1] + ("1" if token[-1] == "0" else "0"), now=at("09:33"))
    assert forged.value.message == "这个二维码不是本中心的预约码，请核对。"


def test_a_late_arrival_lapses_and_cancelled_ones_free_the_slot(db: Database) -> None:
    desk = make_desk(db)
    late = desk.book("E", MONDAY, "09:00", id_number(serial="401"), now=at("08:00"))
    with pytest.raises(CannotIssue) as expired:
        desk.check_in(late["token"], now=at("09:16"))
    assert expired.value.message == (
        "您预约的09:00—10:00时段已开始超过15分钟，预约已失效。请现场取号，或重新预约。"
    )
    with pytest.raises(CannotIssue) as again:  # recorded: it stays lapsed
        desk.check_in(late["token"], now=at("09:16"))
    assert again.value.reason == "not_booked"
    for i in range(4):
        desk.book("E", MONDAY, "11:00", id_number(serial=f"5{i:02d}"), now=at("08:00"))
    with pytest.raises(CannotIssue) as full:
        desk.book("E", MONDAY, "11:00", id_number(serial="599"), now=at("08:00"))
    assert full.value.message == "这个时段已约满，请选择其他时段。"
    first = desk.book("E", MONDAY, "13:30", id_number(serial="600"), now=at("08:00"))
    with pytest.raises(CannotIssue) as twice:
        desk.book("E", MONDAY, "14:30", id_number(serial="600"), now=at("08:00"))
    assert twice.value.reason == "already_booked"
    desk.cancel(first["token"])
    assert desk.book("E", MONDAY, "14:30", id_number(serial="600"), now=at("08:00"))
    # at 15:20 the four 11:00 and the 14:30 bookings were never checked in (the 09:00 one
    # was marked when it came late); the 15:30 one still can
    kept = desk.book("E", MONDAY, "15:30", id_number(serial="700"), now=at("08:00"))
    assert desk.mark_no_shows(now=at("15:20")) == 5
    assert desk.check_in(kept["token"], now=at("15:25"))["number"] == "E001"


def test_past_far_and_unknown_slots_cannot_be_booked(db: Database) -> None:
    desk = make_desk(db)
    with pytest.raises(CannotIssue) as past:
        desk.book("E", MONDAY, "09:00", id_number(), now=at("09:10"))
    assert past.value.message == "只能预约7天内还没开始的时段。"
    with pytest.raises(CannotIssue) as far:
        desk.book("E", MONDAY + dt.timedelta(days=8), "09:00", id_number(), now=at("08:00"))
    assert far.value.reason == "bad_slot"
    with pytest.raises(CannotIssue) as lunch:
        desk.book("E", MONDAY, "12:30", id_number(), now=at("08:00"))
    assert lunch.value.message == "这个时段不能预约，请重新选择。"
    with pytest.raises(CannotIssue) as bad_id:
        desk.book("E", MONDAY, "10:00", "123", now=at("08:00"))
    assert bad_id.value.message == "身份证号码应为18位，您输入了3位。"


def test_a_slot_is_never_overbooked_by_simultaneous_bookings(db: Database) -> None:
    desk = make_desk(db)
    barrier = threading.Barrier(10)
    ok: list[str] = []
    refused: list[str] = []

    def book(i: int) -> None:
        barrier.wait()
        person = id_number(serial=f"8{i:02d}")
        try:
            ok.append(desk.book("E", MONDAY, "15:30", person, now=at("08:00"))["token"])
        except CannotIssue as exc:
            refused.append(exc.reason)

    threads = [threading.Thread(target=book, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ok) == 4 and refused == ["slot_full"] * 6
    assert [s["left"] for s in desk.slots("E", MONDAY) if s["start"] == "15:30"] == [0]
