"""A kiosk that got no answer sends the same request again: the ``request_id`` of the
resident's tap gets the ticket it was given the first time (``duplicate``), never a second
number, without counting against the quota or the one-open-ticket rule; two processes
receiving the same retry at once still make one ticket (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from fake_printer import PAPER_OUT, READY, FakeNetworkPrinter
from queue_builders import MONDAY, at, id_number, make_desk
from sqlalchemy import func, select
from support import TestClient

from banshi.db import Database
from kiosk.errors import CannotIssue
from kiosk.printing.connection import parse_printer_url
from kiosk.printing.ticket_printer import TicketPrinter
from kiosk.queue.models import QueueDay, QueueTicket

RID = "3f0c1e9a-5b7d-4c2e-9a11-0d2b8c4e6f70"  # what crypto.randomUUID() gives


def tickets(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(QueueTicket)) or 0)


# -- the engine ------------------------------------------------------------------------------
def test_the_same_request_id_twice_is_one_ticket_and_the_numbering_goes_on(db: Database) -> None:
    desk = make_desk(db)
    first = desk.issue("C", request_id=RID, now=at("09:05"))
    again = desk.issue("C", request_id=RID, now=at("09:06"))
    assert (first["number"], first["duplicate"]) == ("C001", False)
    assert (again["number"], again["token"], again["duplicate"]) == ("C001", first["token"], True)
    assert again["printed"] is False  # nothing printed it yet
    assert tickets(db) == 1
    # the next different tap gets the next number: the retry did not take one
    assert desk.issue("C", request_id="another-tap-0001", now=at("09:07"))["number"] == "C002"
    assert desk.issue("C", now=at("09:07"))["number"] == "C003"  # and without an id as before
    with db.session() as s:
        day = s.get(QueueDay, ("C", MONDAY))
        assert day is not None and (day.last_seq, day.walk_in_issued) == (3, 3)


def test_a_retry_is_not_refused_by_the_rules_its_first_attempt_passed(db: Database) -> None:
    desk = make_desk(db)
    person = id_number()
    first = desk.issue("A", id_number=person, request_id=RID, now=at("09:00"))
    # one open ticket per ID: the retry is that ticket, not "您已经取过"
    again = desk.issue("A", id_number=person, request_id=RID, now=at("09:01"))
    assert (again["number"], again["duplicate"]) == (first["number"], True)
    # a new tap by the same person is still refused
    with pytest.raises(CannotIssue) as refused:
        desk.issue("A", id_number=person, request_id="new-tap-00001", now=at("09:02"))
    assert refused.value.reason == "already_waiting"
    # past the last walk-in time (16:30): the retry of a number issued before still answers
    late = desk.issue("C", request_id="late-tap-0001", now=at("16:29"))
    assert desk.issue("C", request_id="late-tap-0001", now=at("16:31"))["number"] == late["number"]
    with pytest.raises(CannotIssue) as closing:
        desk.issue("C", request_id="late-tap-0002", now=at("16:31"))
    assert closing.value.reason == "closing"


def test_a_retry_does_not_count_against_the_quota(db: Database) -> None:
    desk = make_desk(db)
    service = desk.config.services["C"]
    desk.config.services["C"] = type(service)(**{**service.__dict__, "walk_in_quota": 1})
    assert desk.issue("C", request_id=RID, now=at("09:00"))["number"] == "C001"
    assert desk.issue("C", request_id=RID, now=at("09:01"))["duplicate"] is True
    with pytest.raises(CannotIssue) as full:
        desk.issue("C", request_id="someone-else-01", now=at("09:02"))
    assert full.value.reason == "quota"


def test_a_request_id_is_per_day_and_never_hands_out_another_services_ticket(
    db: Database,
) -> None:
    desk = make_desk(db)
    desk.issue("C", request_id=RID, now=at("09:00"))
    with pytest.raises(CannotIssue) as reused:
        desk.issue("J", request_id=RID, now=at("09:01"))
    assert reused.value.reason == "request_reused"
    tuesday = MONDAY.replace(day=8)
    next_day = desk.issue("C", request_id=RID, now=at("09:00", tuesday))
    assert (next_day["number"], next_day["duplicate"]) == ("C001", False)
    assert tickets(db) == 2


def race_for_one_request(
    databases: list[Database], service: str, person: str | None, attempts: int = 6
) -> list[dict[str, Any]]:
    """``attempts`` threads, spread over the databases (each its own engine and pool, as
    separate API processes have), send the same request at the same moment. Without an ID
    number only the request id's unique key keeps them to one ticket."""
    desks = [make_desk(d) for d in databases]
    barrier = threading.Barrier(attempts)
    got: list[dict[str, Any]] = []
    failed: list[BaseException] = []

    def kiosk(k: int) -> None:
        barrier.wait()
        try:
            got.append(
                desks[k % len(desks)].issue(
                    service, id_number=person, request_id=RID, kiosk="k1", now=at("10:00")
                )
            )
        except BaseException as exc:  # reported below: a thread's exception is lost
            failed.append(exc)

    threads = [threading.Thread(target=kiosk, args=(k,)) for k in range(attempts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failed == []
    return got


WITH_AND_WITHOUT_ID = pytest.mark.parametrize(
    ("service", "person"), [("C", None), ("A", id_number())], ids=["no-id", "with-id"]
)


def check_one_ticket(got: list[dict[str, Any]], db: Database, service: str) -> None:
    assert {t["number"] for t in got} == {f"{service}001"} and len({t["token"] for t in got}) == 1
    assert sorted(t["duplicate"] for t in got) == [False] + [True] * 5
    assert tickets(db) == 1
    # the losers' sequence and quota were rolled back: the next number follows on
    later = make_desk(db).issue(service, id_number=id_number(serial="999"), now=at("10:01"))
    assert later["number"] == f"{service}002"
    with db.session() as s:
        day = s.get(QueueDay, (service, MONDAY))
        assert day is not None and (day.last_seq, day.walk_in_issued) == (2, 2)


@WITH_AND_WITHOUT_ID
def test_the_same_retry_at_once_makes_one_ticket(
    db: Database, service: str, person: str | None
) -> None:
    check_one_ticket(race_for_one_request([db], service, person), db, service)


@pytest.mark.postgres
@WITH_AND_WITHOUT_ID
def test_the_same_retry_reaching_two_processes_at_once_makes_one_ticket_on_postgresql(
    pg_url: str, service: str, person: str | None
) -> None:
    one, two = Database(pg_url), Database(pg_url)
    one.upgrade()
    try:
        check_one_ticket(race_for_one_request([one, two], service, person), two, service)
    finally:
        one.dispose()
        two.dispose()


# -- over HTTP -------------------------------------------------------------------------------
@pytest.fixture
def lobby(hashing_client: TestClient) -> TestClient:
    hashing_client.app.state.queue.clock = lambda: at("10:00")  # type: ignore[attr-defined]
    return hashing_client


def use_printer(client: TestClient, url: str) -> None:
    client.app.state.ticket_printer = TicketPrinter(  # type: ignore[attr-defined]
        parse_printer_url(url), 80, "青禾区政务服务中心"
    )


def test_a_retried_request_gets_the_same_ticket_and_its_slip_is_not_printed_twice(
    lobby: TestClient, fake_printer: Callable[..., FakeNetworkPrinter]
) -> None:
    printer = fake_printer(READY)
    use_printer(lobby, printer.url)
    body = {"service": "C", "kiosk": "k1", "request_id": RID}
    first = lobby.post("/api/kiosk/tickets", json=body).json()
    assert (first["number"], first["printed"], first["duplicate"]) == ("C001", True, False)
    printer.wait_for(1)
    again = lobby.post("/api/kiosk/tickets", json=body)
    assert again.status_code == 200, again.text
    second = again.json()
    assert (second["number"], second["token"]) == (first["number"], first["token"])
    assert (second["duplicate"], second["printed"], second["printer"]) == (True, True, None)
    assert second["status_url"] == first["status_url"]
    nxt = lobby.post("/api/kiosk/tickets", json={**body, "request_id": "next-resident-1"}).json()
    assert (nxt["number"], nxt["duplicate"]) == ("C002", False)
    printer.wait_for(2)
    assert len(printer.connections) == 2  # C001 once, C002


def test_a_retry_prints_the_slip_its_first_attempt_did_not(
    lobby: TestClient, fake_printer: Callable[..., FakeNetworkPrinter]
) -> None:
    # the first attempt's number came out of no printer (out of paper; or the process
    # stopped between issuing and printing)
    printer = fake_printer(PAPER_OUT)
    use_printer(lobby, printer.url)
    body = {"service": "C", "kiosk": "k1", "request_id": RID}
    first = lobby.post("/api/kiosk/tickets", json=body).json()
    assert first["printed"] is False
    printer.statuses = dict(READY)
    again = lobby.post("/api/kiosk/tickets", json=body).json()
    assert (again["number"], again["duplicate"], again["printed"]) == ("C001", True, True)
    printer.wait_for(2)
    assert len([c for c in printer.connections if b"C001" in c]) == 1


def test_a_checked_in_booking_scanned_again_is_a_duplicate(lobby: TestClient) -> None:
    # a booking checks in once: its token is the retry's key, no request_id needed
    lobby.app.state.queue.clock = lambda: at("08:00")  # type: ignore[attr-defined]
    booking = {"service": "E", "day": MONDAY.isoformat(), "start": "10:00"}
    booked = lobby.post("/api/kiosk/appointments", json={**booking, "id_number": id_number()})
    assert booked.status_code == 200, booked.text
    token = booked.json()["token"]
    lobby.app.state.queue.clock = lambda: at("09:50")  # type: ignore[attr-defined]
    first = lobby.post("/api/kiosk/check-in", json={"token": token, "print": False}).json()
    again = lobby.post("/api/kiosk/check-in", json={"token": token, "print": False}).json()
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert again["number"] == first["number"] and again["token"] == first["token"]


@pytest.mark.parametrize("bad", ["short", "有中文的请求编号12345", "a" * 65, "has space 12345", ""])
def test_a_malformed_request_id_is_refused_naming_the_field(lobby: TestClient, bad: str) -> None:
    before = walk_in_left(lobby)
    r = lobby.post("/api/kiosk/tickets", json={"service": "C", "request_id": bad})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert [p["field"] for p in error["fields"]["problems"]] == ["body.request_id"]
    assert walk_in_left(lobby) == before  # nothing was issued


def walk_in_left(client: TestClient) -> int:
    services = client.get("/api/kiosk/services").json()["services"]
    return int(next(s["walk_in_left"] for s in services if s["code"] == "C"))
