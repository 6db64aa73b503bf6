"""Delivering the outbox to a real HTTP receiver on 127.0.0.1: signed bodies, retries with
backoff (time is advanced by moving ``next_at``, never by sleeping), no loss while the
receiver is down, one ticket's events in order, leases between concurrent deliverers,
giving up after max_attempts and trying again on request; the settings and the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from support import build_settings

from banshi.auth import Principal
from banshi.db import Database
from banshi.settings import Settings, get_settings
from banshi.workcal import WorkCalendar
from ticket_bridge.cli import bridge
from ticket_bridge.delivery import OutboxDelivery, backoff, retry_failed, targets_from
from ticket_bridge.models import OutboxEvent, now_utc
from ticket_bridge.outbox import Target
from ticket_bridge.signing import verify
from ticket_bridge.tickets import Policy, TicketDesk

SECRET = "city-secret-0123456789abcdef"
SUPERVISOR = Principal("zhang", "supervisor")
ALL_DAY = {
    "timezone": "Asia/Shanghai",
    "periods": {d: ["00:00-23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
}


# -- a webhook receiver ----------------------------------------------------------------------
@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def event_id(self) -> str:
        return str(self.json["event_id"])


class Receiver:
    """Records every POST. Answers 500 while ``fail_next`` > 0 or for tickets in
    ``fail_numbers``, else 200; ``hold`` keeps requests in flight until it is set. Notes any
    event that arrives while an earlier request for it is still in flight."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[Received] = []
        self.fail_next = 0
        self.fail_numbers: set[str] = set()
        self.hold: threading.Event | None = None
        self.delay = threading.Event()  # never set: ``wait(delay_s)`` is a sleep that ends
        self.delay_s = 0.0
        self.in_flight: Counter[str] = Counter()
        self.overlaps: list[str] = []
        self.lock = threading.Lock()
        self.port = port
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/banshi"

    def delivered(self) -> list[Received]:
        return [r for r in self.requests if r.status == 200]

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                event = json.loads(body)
                with receiver.lock:
                    if receiver.in_flight[event["event_id"]]:
                        receiver.overlaps.append(event["event_id"])
                    receiver.in_flight[event["event_id"]] += 1
                    fail = receiver.fail_next > 0 or (
                        event["ticket"]["number"] in receiver.fail_numbers
                    )
                    receiver.fail_next -= 1 if receiver.fail_next > 0 else 0
                    status = 500 if fail else 200
                    receiver.requests.append(Received(dict(self.headers), body, status))
                if receiver.hold is not None:
                    receiver.hold.wait(5)
                if receiver.delay_s:
                    receiver.delay.wait(receiver.delay_s)
                with receiver.lock:
                    receiver.in_flight[event["event_id"]] -= 1
                answer = b"boom" if fail else b"ok"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


# -- tickets and the outbox ------------------------------------------------------------------
def make_desk(db: Database, *targets: Target) -> TicketDesk:
    policy = Policy(WorkCalendar.from_config(ALL_DAY), targets=targets)
    return TicketDesk(db, policy, {"police": "公安分局"})


def new_ticket(desk: TicketDesk, content: str = "窗口工作人员态度不好") -> str:
    with desk.db.session() as s:
        ticket = desk.create(
            s,
            channel="web",
            category="投诉",
            content=content,
            actor="test",
            phone="13812345678",
        )
        return ticket.number


def act(desk: TicketDesk, number: str, action: str, **kw: Any) -> None:
    with desk.db.session() as s:
        desk.act(s, number, action, SUPERVISOR, **kw)


def events(db: Database) -> list[OutboxEvent]:
    with db.session() as s:
        return list(s.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))


def make_due(db: Database) -> None:
    """Time passes: every waiting event is due now (instead of sleeping through backoff)."""
    with db.session() as s:
        s.execute(
            update(OutboxEvent)
            .where(OutboxEvent.status == "pending")
            .values(next_at=now_utc() - dt.timedelta(seconds=1))
        )


def seconds(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


def aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def run(coro_factory: Callable[[], Any]) -> Any:
    return asyncio.run(coro_factory())


# -- delivering ------------------------------------------------------------------------------
def test_an_event_is_posted_signed_and_marked_delivered_once(
    db: Database, receiver: Receiver
) -> None:
    desk = make_desk(db, Target("city12345", receiver.url, SECRET))
    number = new_ticket(desk)
    [row] = events(db)
    assert (row.status, row.target, row.event) == ("pending", "city12345", "ticket.created")

    delivery = OutboxDelivery(db, (Target("city12345", receiver.url, SECRET),))
    assert run(delivery.deliver_due) == 1

    [got] = receiver.requests
    assert verify(SECRET, got.headers, got.body)
    assert not verify("some-other-secret-0123456789", got.headers, got.body)
    assert got.headers["Content-Type"] == "application/json; charset=utf-8"
    assert got.headers["X-Banshi-Event"] == "ticket.created"
    assert got.headers["X-Banshi-Event-Id"] == row.event_id
    body = got.json
    assert body["event_id"] == row.event_id
    assert body["event"] == "ticket.created"
    assert body["ticket"]["number"] == number
    assert body["ticket"]["content"] == "窗口工作人员态度不好"
    assert body["ticket"]["status"] == "pending"
    assert "窗口工作人员态度不好".encode() in got.body  # UTF-8, not \u escapes

    [row] = events(db)
    assert (row.status, row.attempts, row.lease_until) == ("delivered", 1, None)
    assert row.delivered_at is not None
    # delivered is final: another pass sends nothing
    assert run(delivery.deliver_due) == 0
    assert len(receiver.requests) == 1


def test_each_target_gets_its_own_copy(db: Database, receiver: Receiver) -> None:
    other = Receiver()
    other.start()
    try:
        targets = (
            Target("city12345", receiver.url, SECRET),
            Target("district", other.url, "district-secret-0123456789"),
        )
        desk = make_desk(db, *targets)
        new_ticket(desk)
        assert run(OutboxDelivery(db, targets).deliver_due) == 2
        [to_city], [to_district] = receiver.requests, other.requests
        assert verify(SECRET, to_city.headers, to_city.body)
        assert verify("district-secret-0123456789", to_district.headers, to_district.body)
        assert to_city.event_id != to_district.event_id
    finally:
        other.stop()


def test_a_ticket_s_events_arrive_in_order_and_a_failing_one_holds_back_only_its_ticket(
    db: Database, receiver: Receiver
) -> None:
    target = Target("city12345", receiver.url, SECRET)
    desk = make_desk(db, target)
    first = new_ticket(desk, "噪音扰民")
    act(desk, first, "dispatch", department="police")
    act(desk, first, "accept")
    second = new_ticket(desk, "路灯不亮")
    delivery = OutboxDelivery(db, (target,))

    receiver.fail_numbers = {first}
    # only the oldest event of each ticket is eligible: 'first' fails, 'second' goes through
    assert run(delivery.deliver_due) == 1
    assert [r.json["ticket"]["number"] for r in receiver.delivered()] == [second]
    make_due(db)
    assert run(delivery.deliver_due) == 0  # 'first' fails again; its later events wait
    sent_for_first = [
        r.json["event"] for r in receiver.requests if r.json["ticket"]["number"] == first
    ]
    assert sent_for_first == ["ticket.created", "ticket.created"]

    receiver.fail_numbers = set()
    make_due(db)
    while run(delivery.deliver_due):
        pass
    in_order = [
        r.json["event"] for r in receiver.delivered() if r.json["ticket"]["number"] == first
    ]
    assert in_order == ["ticket.created", "ticket.dispatch", "ticket.accept"]
    assert [r.json["ticket"]["status"] for r in receiver.delivered()][-1] == "handling"
    assert {e.status for e in events(db)} == {"delivered"}


def test_nothing_is_lost_while_the_receiver_is_down(db: Database) -> None:
    port = free_port()  # nobody listens: connection refused
    target = Target("city12345", f"http://127.0.0.1:{port}/hooks/banshi", SECRET)
    desk = make_desk(db, target)
    numbers = [new_ticket(desk, f"第{i}号投诉") for i in range(3)]
    delivery = OutboxDelivery(db, (target,))

    before = now_utc()
    assert run(delivery.deliver_due) == 0
    after = now_utc()
    rows = events(db)
    assert {(e.status, e.attempts) for e in rows} == {("pending", 1)}
    assert all(e.last_error.startswith("ConnectError") for e in rows)
    for e in rows:  # the first retry waits about 2 s (±20 % jitter) after the attempt
        assert seconds(1.6) + before <= aware(e.next_at) <= after + seconds(2.4)
    assert run(delivery.deliver_due) == 0  # not due yet: no attempt at all
    assert {e.attempts for e in events(db)} == {1}

    receiver = Receiver(port)  # back, but answering 500 at first
    receiver.start()
    try:
        receiver.fail_next = 3
        make_due(db)
        before = now_utc()
        assert run(delivery.deliver_due) == 0
        after = now_utc()
        rows = events(db)
        assert {(e.status, e.attempts, e.last_error) for e in rows} == {
            ("pending", 2, "HTTP 500: boom")
        }
        for e in rows:  # the second retry waits about twice as long
            assert seconds(3.2) + before <= aware(e.next_at) <= after + seconds(4.8)

        make_due(db)
        assert run(delivery.deliver_due) == 3
        assert sorted(r.json["ticket"]["number"] for r in receiver.delivered()) == sorted(numbers)
        assert {(e.status, e.attempts) for e in events(db)} == {("delivered", 3)}
        assert all(verify(SECRET, r.headers, r.body) for r in receiver.requests)
    finally:
        receiver.stop()


def test_failed_after_max_attempts_is_kept_and_retry_failed_sends_it_again(
    db: Database, receiver: Receiver
) -> None:
    target = Target("city12345", receiver.url, SECRET)
    desk = make_desk(db, target)
    number = new_ticket(desk)
    delivery = OutboxDelivery(db, (target,), max_attempts=3)
    receiver.fail_next = 1000

    for _ in range(5):
        run(delivery.deliver_due)
        make_due(db)
    assert len(receiver.requests) == 3
    [row] = events(db)
    assert (row.status, row.attempts, row.last_error) == ("failed", 3, "HTTP 500: boom")

    # a failed event no longer holds back the ticket's later events
    receiver.fail_next = 0
    act(desk, number, "remind", note="请尽快办理")
    assert run(delivery.deliver_due) == 1
    assert receiver.requests[-1].json["event"] == "ticket.remind"
    assert receiver.requests[-1].json["note"] == "请尽快办理"

    assert retry_failed(db, target="some-other-target") == 0
    assert retry_failed(db) == 1
    first = events(db)[0]
    assert (first.status, first.attempts, first.lease_until) == ("pending", 0, None)
    assert run(delivery.deliver_due) == 1
    assert receiver.requests[-1].event_id == first.event_id
    assert {e.status for e in events(db)} == {"delivered"}


def test_backoff_doubles_from_two_seconds_with_jitter_and_caps_at_an_hour() -> None:
    middle = [backoff(n, rand=lambda: 0.5) for n in range(1, 6)]
    assert middle == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert backoff(1, rand=lambda: 0.0) == pytest.approx(1.6)
    assert backoff(1, rand=lambda: 1.0) == pytest.approx(2.4)
    assert backoff(12, rand=lambda: 0.5) == 3600.0
    assert backoff(10_000, rand=lambda: 1.0) == 3600.0
    assert all(1.6 <= backoff(1) <= 2.4 for _ in range(50))


# -- several deliverers ----------------------------------------------------------------------
def test_a_leased_event_is_not_sent_by_another_deliverer(db: Database, receiver: Receiver) -> None:
    target = Target("city12345", receiver.url, SECRET)
    new_ticket(make_desk(db, target))
    second_db = Database(db.url)  # another process's engine
    first, second = OutboxDelivery(db, (target,)), OutboxDelivery(second_db, (target,))
    receiver.hold = threading.Event()

    async def scenario() -> tuple[int, int]:
        sending = asyncio.create_task(first.deliver_due())
        for _ in range(200):  # until the first deliverer's request has arrived
            if receiver.requests:
                break
            await asyncio.sleep(0.005)
        other = await second.deliver_due()  # the event is leased: nothing for it
        assert receiver.hold is not None
        receiver.hold.set()
        return await sending, other

    try:
        assert run(scenario) == (1, 0)
        assert len(receiver.requests) == 1
        assert run(second.deliver_due) == 0  # and once delivered, never again
    finally:
        second_db.dispose()


def test_an_expired_lease_lets_another_deliverer_take_over(
    db: Database, receiver: Receiver
) -> None:
    """A deliverer that died mid-send holds its lease only until it runs out."""
    target = Target("city12345", receiver.url, SECRET)
    new_ticket(make_desk(db, target))
    delivery = OutboxDelivery(db, (target,))
    with db.session() as s:  # as if a process claimed it and died
        s.execute(update(OutboxEvent).values(lease_until=now_utc() + dt.timedelta(seconds=60)))
    assert run(delivery.deliver_due) == 0
    with db.session() as s:
        s.execute(update(OutboxEvent).values(lease_until=now_utc() - dt.timedelta(seconds=1)))
    assert run(delivery.deliver_due) == 1
    assert [e.status for e in events(db)] == ["delivered"]


def test_a_crash_after_sending_means_the_event_is_sent_again(
    db: Database, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At-least-once: the receiver sees the same event_id twice and must dedupe on it."""
    target = Target("city12345", receiver.url, SECRET)
    new_ticket(make_desk(db, target))
    delivery = OutboxDelivery(db, (target,))

    def crash(_: Any) -> None:
        raise OperationalError("UPDATE outbox_events", {}, Exception("server closed"))

    monkeypatch.setattr(delivery, "_record", crash)
    with pytest.raises(OperationalError):
        run(delivery.deliver_due)
    monkeypatch.undo()
    assert events(db)[0].status == "pending"
    with db.session() as s:  # the dead process's lease runs out
        s.execute(update(OutboxEvent).values(lease_until=now_utc() - dt.timedelta(seconds=1)))
    assert run(delivery.deliver_due) == 1
    first, again = receiver.requests
    assert first.event_id == again.event_id
    assert events(db)[0].status == "delivered"


def deliver_concurrently(url: str, receiver: Receiver) -> None:
    """Two deliverers with their own engines on one database, passes run side by side."""
    target = Target("city12345", receiver.url, SECRET)
    dbs = [Database(url), Database(url)]
    try:
        desk = make_desk(dbs[0], target)
        numbers = [new_ticket(desk, f"第{i}号投诉") for i in range(12)]
        act(desk, numbers[0], "dispatch", department="police")
        act(desk, numbers[0], "accept")
        deliverers = [OutboxDelivery(d, (target,)) for d in dbs]
        receiver.delay_s = 0.02  # requests overlap in time

        async def both() -> int:
            done = await asyncio.gather(*(d.deliver_due(limit=5) for d in deliverers))
            return sum(done)

        passes = []
        for _ in range(20):
            passes.append(asyncio.run(both()))
            if not passes[-1]:
                break
        # many tickets per pass (grouping by ticket works), one event per ticket per pass
        assert passes[0] == 10
        assert sum(passes) == 14
        assert receiver.overlaps == []
        ids = [r.event_id for r in receiver.requests]
        assert len(ids) == len(set(ids)) == 14  # every event exactly once
        assert {e.status for e in events(dbs[0])} == {"delivered"}
        firsts = [
            r.json["event"] for r in receiver.requests if r.json["ticket"]["number"] == numbers[0]
        ]
        assert firsts == ["ticket.created", "ticket.dispatch", "ticket.accept"]
    finally:
        for d in dbs:
            d.dispose()


def test_two_deliverers_never_send_the_same_event(db: Database, receiver: Receiver) -> None:
    deliver_concurrently(db.url, receiver)


@pytest.mark.postgres
def test_two_deliverers_never_send_the_same_event_on_postgres(
    pg_url: str, receiver: Receiver
) -> None:
    database = Database(pg_url)
    database.upgrade()
    database.dispose()
    deliver_concurrently(pg_url, receiver)


# -- the loop ----------------------------------------------------------------------------------
def test_run_delivers_until_stopped_and_survives_database_errors(
    db: Database, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    target = Target("city12345", receiver.url, SECRET)
    desk = make_desk(db, target)
    number = new_ticket(desk)
    act(desk, number, "dispatch", department="police")
    delivery = OutboxDelivery(db, (target,))
    real_claim = delivery._claim
    calls = {"n": 0}

    def flaky_claim(limit: int) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("SELECT", {}, Exception("database is locked"))
        return real_claim(limit)

    monkeypatch.setattr(delivery, "_claim", flaky_claim)

    async def scenario() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(delivery.run(stop, interval_s=0.02))
        for _ in range(200):
            if len(receiver.delivered()) == 2:
                break
            await asyncio.sleep(0.005)
        stop.set()
        await asyncio.wait_for(loop, 2)

    with caplog.at_level(logging.ERROR, logger="ticket_bridge.delivery"):
        run(scenario)
    assert [r.json["event"] for r in receiver.delivered()] == ["ticket.created", "ticket.dispatch"]
    assert "outbox delivery failed (1 in a row)" in caplog.text
    assert {e.status for e in events(db)} == {"delivered"}


def test_run_returns_when_stopped_with_nothing_to_do(db: Database) -> None:
    delivery = OutboxDelivery(db, (Target("city12345", "http://127.0.0.1:9/x", SECRET),))

    async def scenario() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(delivery.run(stop, interval_s=0.02))
        await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(loop, 2)

    run(scenario)
    assert events(db) == []


# -- settings --------------------------------------------------------------------------------
def test_targets_come_from_the_environment_as_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert targets_from(build_settings(tmp_path)) == ()  # none by default
    monkeypatch.setenv("BANSHI_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(
        "BANSHI_BRIDGE_TARGETS",
        json.dumps(
            [{"name": "city12345", "url": "https://12345.example.gov.cn/hook", "secret": SECRET}]
        ),
    )
    monkeypatch.setenv("BANSHI_BRIDGE_INBOUND_SECRETS", json.dumps({"city12345": SECRET}))
    s = get_settings()
    assert targets_from(s) == (Target("city12345", "https://12345.example.gov.cn/hook", SECRET),)
    assert s.bridge_inbound_secrets == {"city12345": SECRET}


@pytest.mark.parametrize(
    ("targets", "inbound", "message"),
    [
        ([{"name": "City", "url": "https://x.cn/h", "secret": SECRET}], {}, "[0].name"),
        ([{"name": "a" * 33, "url": "https://x.cn/h", "secret": SECRET}], {}, "[0].name"),
        ([{"name": "city\n", "url": "https://x.cn/h", "secret": SECRET}], {}, "[0].name"),
        ([{"name": "city", "url": "ftp://x.cn/h", "secret": SECRET}], {}, "[0].url"),
        ([{"name": "city", "url": "https:///h", "secret": SECRET}], {}, "[0].url"),
        ([{"name": "city", "url": "https://x.cn/h"}], {}, "exactly the keys"),
        ([{"name": "city", "url": "https://x.cn/h", "secret": ""}], {}, "[0].secret"),
        ([{"name": "city", "url": "https://x.cn/h", "secret": "short"}], {}, "at least 16"),
        (
            [
                {"name": "city", "url": "https://x.cn/h", "secret": SECRET},
                {"name": "city", "url": "https://y.cn/h", "secret": SECRET},
            ],
            {},
            "[1].name",
        ),
        ([], {"City": SECRET}, "BANSHI_BRIDGE_INBOUND_SECRETS key"),
        ([], {"city": "short"}, "BANSHI_BRIDGE_INBOUND_SECRETS['city']"),
    ],
)
def test_bad_bridge_settings_are_refused_naming_the_field(
    targets: list[dict[str, str]], inbound: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        Settings(
            env="production",
            secret_key="k7Hq2-real-production-secret",
            bridge_targets=targets,
            bridge_inbound_secrets=inbound,
        )
    assert message in str(exc.value)


@pytest.mark.parametrize("env", ["development", "test"])
def test_short_secrets_are_fine_for_development_and_tests(
    env: Literal["development", "test"],
) -> None:
    s = Settings(
        env=env,
        bridge_targets=[{"name": "local", "url": "http://127.0.0.1:9000/h", "secret": "dev"}],
        bridge_inbound_secrets={"local": "dev"},
    )
    assert targets_from(s) == (Target("local", "http://127.0.0.1:9000/h", "dev"),)


# -- the CLI ---------------------------------------------------------------------------------
def test_cli_reports_the_outbox_and_retries_failed_events(
    db: Database,
    settings: Settings,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BANSHI_ENV", "test")
    monkeypatch.setenv("BANSHI_DATA_DIR", str(settings.data_dir))
    target = Target("city12345", receiver.url, SECRET)
    desk = make_desk(db, target)
    new_ticket(desk)
    new_ticket(desk)
    receiver.fail_next = 1  # one of the two fails, for good
    run(OutboxDelivery(db, (target,), max_attempts=1).deliver_due)
    runner = CliRunner()

    shown = runner.invoke(bridge, ["outbox"])
    assert shown.exit_code == 0, shown.output
    assert "city12345" in shown.output
    row = next(line for line in shown.output.splitlines() if line.startswith("city12345"))
    assert row.split() == ["city12345", "0", "1", "1"]
    assert "HTTP 500: boom" in shown.output

    assert runner.invoke(bridge, ["outbox", "--target", "nobody"]).output.startswith(
        "outbox is empty"
    )
    retried = runner.invoke(bridge, ["outbox", "--retry-failed", "--target", "city12345"])
    assert retried.exit_code == 0, retried.output
    assert retried.output.strip() == "1 failed events are pending again for city12345"
    assert sorted(e.status for e in events(db)) == ["delivered", "pending"]
