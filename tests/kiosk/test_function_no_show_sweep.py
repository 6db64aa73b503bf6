"""The no-show sweep (every API process runs it every minute) against check-ins at the same
moment: a check-in that commits between the sweep's read and its write keeps its number.
The sweep and the kiosk are two "processes" (each its own QueueDesk on its own Database
engine) over one database, on SQLite and (marker ``postgres``) on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from queue_builders import MONDAY, at, id_number, make_desk
from sqlalchemy import select

from banshi.db import Database
from kiosk.queue.engine import QueueDesk
from kiosk.queue.models import Appointment, QueueTicket


@pytest.fixture
def two_desks(database_url: str) -> Iterator[tuple[QueueDesk, QueueDesk]]:
    sweeper_db, kiosk_db = Database(database_url), Database(database_url)
    try:
        yield make_desk(sweeper_db), make_desk(kiosk_db)
    finally:
        sweeper_db.dispose()
        kiosk_db.dispose()


def statuses(desk: QueueDesk) -> dict[str, str]:
    with desk.db.session() as s:
        return {a.id_masked: a.status for a in s.scalars(select(Appointment))}


def test_a_check_in_between_the_sweeps_read_and_write_wins(
    two_desks: tuple[QueueDesk, QueueDesk],
) -> None:
    sweeper, kiosk = two_desks
    late_comer = kiosk.book("E", MONDAY, "09:00", id_number(serial="101"), now=at("08:00"))
    kiosk.book("E", MONDAY, "09:00", id_number(serial="102"), now=at("08:00"))  # never comes
    # the sweep at 09:15:01 reads: the 09:00 slot's grace (15 minutes) is over ...
    overdue = sweeper._overdue_slots(at("09:15:01"))
    assert overdue == {MONDAY: ["09:00"]}
    # ... meanwhile a kiosk of another process checks the late comer in, at 09:15:00
    ticket = kiosk.check_in(late_comer["token"], now=at("09:15"))
    assert ticket["number"] == "E001"
    # ... and then the sweep writes: only the one nobody checked in for is 爽约
    assert sweeper._write_no_shows(overdue) == 1
    by_person = statuses(kiosk)
    assert sorted(by_person.values()) == ["checked_in", "no_show"]
    with kiosk.db.session() as s:
        a = s.scalars(select(Appointment).where(Appointment.status == "checked_in")).one()
        t = s.get(QueueTicket, a.ticket_id)
        assert t is not None and (t.number, t.status) == ("E001", "waiting")
    # the resident's number stands: scanning again gives it back, the queue calls it
    assert kiosk.check_in(late_comer["token"], now=at("09:16"))["number"] == "E001"
    assert sweeper.mark_no_shows(now=at("09:20")) == 0  # a later sweep leaves it too


def test_the_write_keeps_the_time_condition_whatever_was_read(
    two_desks: tuple[QueueDesk, QueueDesk],
) -> None:
    """A stale or wrong read cannot make the write touch a slot whose grace is not over:
    the UPDATE names the overdue slots, not the rows read."""
    sweeper, kiosk = two_desks
    kiosk.book("E", MONDAY, "09:00", id_number(serial="201"), now=at("08:00"))
    kiosk.book("E", MONDAY, "10:00", id_number(serial="202"), now=at("08:00"))
    overdue = sweeper._overdue_slots(at("09:20"))
    assert overdue == {MONDAY: ["09:00"]}
    assert sweeper._write_no_shows(overdue) == 1
    assert sweeper._write_no_shows(overdue) == 0  # a second process's sweep: nothing left
    assert sorted(statuses(kiosk).values()) == ["booked", "no_show"]


def test_sweeps_of_several_processes_mark_each_booking_once(
    two_desks: tuple[QueueDesk, QueueDesk],
) -> None:
    sweeper, other = two_desks
    yesterday = MONDAY - dt.timedelta(days=3)  # the Friday before
    for i, (day, start) in enumerate([(yesterday, "15:30"), (MONDAY, "09:00"), (MONDAY, "13:30")]):
        other.book("E", day, start, id_number(serial=f"3{i:02d}"), now=at("08:00", yesterday))
    read_a = sweeper._overdue_slots(at("10:00"))
    read_b = other._overdue_slots(at("10:00"))
    assert read_a == read_b == {yesterday: ["15:30"], MONDAY: ["09:00"]}
    assert sweeper._write_no_shows(read_a) + other._write_no_shows(read_b) == 2
    assert sorted(statuses(other).values()) == ["booked", "no_show", "no_show"]
    with other.db.session() as s:
        assert {a.open_key for a in s.scalars(select(Appointment)) if a.status == "no_show"} == {
            None
        }
