"""Updates from an outside system through ``POST /api/bridge/inbound/{source}``: signed
events act on tickets as a supervisor would, exactly once per event_id, without echoing the
change back to the sender; bad signatures, bodies and transitions are refused and leave no
trace; replies reach the resident's conversation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from support import TestClient, build_settings

from banshi.auth import Principal
from banshi.db import Database
from banshi.errors import install_handlers
from banshi.workcal import WorkCalendar
from ticket_bridge import inbound
from ticket_bridge.inbound import router
from ticket_bridge.models import InboundEvent, OutboxEvent, Ticket, TicketEvent
from ticket_bridge.outbox import Target
from ticket_bridge.signing import sign
from ticket_bridge.tickets import Policy, TicketDesk

SECRET = "city-inbound-secret-0123456789"
SOURCE = "city12345"
SUPERVISOR = Principal("zhang", "supervisor")
ALL_DAY = {
    "timezone": "Asia/Shanghai",
    "periods": {d: ["00:00-23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
}
# the sender is a target too (its own changes are not sent back to it); "district" hears all
TARGETS = (
    Target(SOURCE, "http://127.0.0.1:9/city", "city-outbound-secret-0123456789"),
    Target("district", "http://127.0.0.1:9/district", "district-secret-0123456789"),
)


class FakeLive:
    """Stands in for the LiveDesk: records what would be said to residents."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str, str]] = []
        self.fail = False

    async def tell_resident(self, conversation_id: str, text: str, author: str = "agent") -> None:
        if self.fail:
            raise RuntimeError("the resident's channel is closed")
        self.told.append((conversation_id, text, author))


class Bridge:
    def __init__(self, db: Database, data_dir: Path) -> None:
        self.db = db
        self.desk = TicketDesk(
            db, Policy(WorkCalendar.from_config(ALL_DAY), targets=TARGETS), {"police": "公安分局"}
        )
        self.live = FakeLive()
        self.app = FastAPI()
        install_handlers(self.app)
        self.app.include_router(router)
        self.app.state.settings = build_settings(
            data_dir, bridge_inbound_secrets={SOURCE: SECRET, "quiet": "quiet-secret-0123456789"}
        )
        self.app.state.db = db
        self.app.state.tickets = self.desk
        self.app.state.live = self.live
        self.client: TestClient

    def ticket(self, conversation_id: str | None = None, dispatched: bool = False) -> str:
        with self.db.session() as s:
            t = self.desk.create(
                s,
                channel="web",
                category="投诉",
                content="窗口工作人员态度不好",
                actor="test",
                phone="13812345678",
                conversation_id=conversation_id,
            )
            if dispatched:
                self.desk.act(s, t.number, "dispatch", SUPERVISOR, department="police")
            return t.number

    def post(
        self,
        payload: dict[str, Any] | bytes,
        *,
        source: str = SOURCE,
        secret: str = SECRET,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sent = {"Content-Type": "application/json", **sign(secret, body, timestamp)}
        if headers is not None:
            sent = {"Content-Type": "application/json", **headers}
        return self.client.post(f"/api/bridge/inbound/{source}", content=body, headers=sent)

    def get(self, number: str) -> Ticket:
        with self.db.session() as s:
            ticket = s.scalar(select(Ticket).where(Ticket.number == number))
            assert ticket is not None
            return ticket

    def events(self, number: str) -> list[TicketEvent]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(TicketEvent)
                    .join(Ticket, Ticket.id == TicketEvent.ticket_id)
                    .where(Ticket.number == number)
                    .order_by(TicketEvent.id)
                )
            )

    def outbox(self, event: str) -> list[OutboxEvent]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(OutboxEvent).where(OutboxEvent.event == event).order_by(OutboxEvent.id)
                )
            )

    def recorded(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count(InboundEvent.id))) or 0)


@pytest.fixture
def bridge(db: Database, tmp_path: Path) -> Iterator[Bridge]:
    b = Bridge(db, tmp_path / "data")
    with TestClient(b.app) as client:
        b.client = client
        yield b


def error(r: httpx.Response) -> dict[str, Any]:
    return dict(r.json()["error"])


# -- applying events -------------------------------------------------------------------------
def test_a_signed_event_is_applied_recorded_and_not_echoed_to_its_sender(
    bridge: Bridge,
) -> None:
    number = bridge.ticket(dispatched=True)
    r = bridge.post({"event_id": "evt-001", "ticket": number, "action": "accept"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "ok": True,
        "event_id": "evt-001",
        "ticket": number,
        "action": "accept",
        "status": "handling",
        "status_label": "处理中",
        "duplicate": False,
    }
    ticket = bridge.get(number)
    assert (ticket.status, ticket.assignee) == ("handling", f"ext:{SOURCE}")
    last = bridge.events(number)[-1]
    assert (last.action, last.from_status, last.to_status, last.actor) == (
        "accept",
        "dispatched",
        "handling",
        f"ext:{SOURCE}",
    )
    with bridge.db.session() as s:
        stored = s.scalar(select(InboundEvent))
        assert stored is not None
        assert (stored.source, stored.event_id) == (SOURCE, "evt-001")
        assert stored.result["status"] == "handling"
    # the other system hears of it, the sender does not
    [told] = bridge.outbox("ticket.accept")
    assert told.target == "district"
    assert told.payload["actor"] == f"ext:{SOURCE}"


def test_the_same_event_twice_changes_the_ticket_once(bridge: Bridge) -> None:
    number = bridge.ticket()
    event = {"event_id": "evt-note-1", "ticket": number, "action": "note", "note": "已电话联系"}
    first = bridge.post(event)
    again = bridge.post(event)  # the sender did not hear our answer and retries
    assert first.status_code == again.status_code == 200
    assert first.json()["duplicate"] is False
    assert again.json() == {**first.json(), "duplicate": True}
    notes = [e.note for e in bridge.events(number) if e.action == "note"]
    assert notes == ["已电话联系"]
    assert bridge.recorded() == 1
    assert len(bridge.outbox("ticket.note")) == 1


def test_event_ids_are_per_source(bridge: Bridge) -> None:
    number = bridge.ticket()
    event = {"event_id": "1", "ticket": number, "action": "remind"}
    assert bridge.post(event).json()["duplicate"] is False
    other = bridge.post(event, source="quiet", secret="quiet-secret-0123456789")
    assert other.json()["duplicate"] is False
    assert [e.actor for e in bridge.events(number) if e.action == "remind"] == [
        f"ext:{SOURCE}",
        "ext:quiet",
    ]


def test_a_twin_past_the_first_look_is_stopped_by_the_unique_key(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deliveries of one event at the same moment: both look, neither finds it; the
    insert of the second fails on (source, event_id) and nothing of it is kept."""
    number = bridge.ticket()
    event = {"event_id": "evt-race", "ticket": number, "action": "note", "note": "第一次"}
    assert bridge.post(event).json()["duplicate"] is False

    real = inbound._stored
    looks: list[str] = []

    def miss_once(s: Any, source: str, event_id: str) -> dict[str, Any] | None:
        looks.append(event_id)
        return None if len(looks) == 1 else real(s, source, event_id)

    monkeypatch.setattr(inbound, "_stored", miss_once)
    r = bridge.post(event)
    assert r.status_code == 200, r.text
    assert r.json()["duplicate"] is True
    assert len(looks) == 2  # the first look missed, the one after the unique violation found
    assert [e.note for e in bridge.events(number) if e.action == "note"] == ["第一次"]


def post_at_once(b: Bridge, event: dict[str, Any], n: int) -> list[httpx.Response]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: b.post(event), range(n)))


def check_concurrent_twins(b: Bridge) -> None:
    number = b.ticket(dispatched=True)
    accept = {"event_id": "evt-accept", "ticket": number, "action": "accept"}
    note = {"event_id": "evt-note", "ticket": number, "action": "note", "note": "并发"}
    for event in (accept, note):
        answers = post_at_once(b, event, 6)
        assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
        assert sorted(r.json()["duplicate"] for r in answers) == [False] + [True] * 5
    actions = [e.action for e in b.events(number)]
    assert actions.count("accept") == 1
    assert actions.count("note") == 1
    assert b.recorded() == 2


def test_concurrent_deliveries_of_one_event_change_the_ticket_once(bridge: Bridge) -> None:
    check_concurrent_twins(bridge)


@pytest.mark.postgres
def test_concurrent_deliveries_of_one_event_change_the_ticket_once_on_postgres(
    pg_url: str, tmp_path: Path
) -> None:
    database = Database(pg_url)
    database.upgrade()
    try:
        b = Bridge(database, tmp_path / "data")
        with TestClient(b.app) as client:
            b.client = client
            check_concurrent_twins(b)
            # and the ordinary path on PostgreSQL: the reply reaches the resident
            number = b.ticket(conversation_id="conv-pg-0001")
            r = b.post({"event_id": "r1", "ticket": number, "action": "reply", "note": "已处理"})
            assert r.status_code == 200, r.text
            assert b.live.told == [("conv-pg-0001", "已处理", f"ext:{SOURCE}")]
    finally:
        database.dispose()


# -- refusals --------------------------------------------------------------------------------
def test_an_illegal_transition_is_409_and_not_recorded_so_a_later_retry_can_pass(
    bridge: Bridge,
) -> None:
    number = bridge.ticket()  # 待分派: it cannot be finished yet
    finish = {"event_id": "evt-finish", "ticket": number, "action": "finish", "result": "已解决"}
    r = bridge.post(finish)
    assert r.status_code == 409
    assert error(r)["message"] == "工单当前为“待分派”，不能办结。"
    assert bridge.recorded() == 0
    assert bridge.outbox("ticket.finish") == []

    with bridge.db.session() as s:
        bridge.desk.act(s, number, "dispatch", SUPERVISOR, department="police")
    assert bridge.post({"event_id": "evt-accept", "ticket": number, "action": "accept"}).is_success
    again = bridge.post(finish)  # the same event, now in order
    assert again.status_code == 200, again.text
    assert (again.json()["status"], again.json()["duplicate"]) == ("review", False)
    assert bridge.get(number).result == "已解决"


def test_an_unknown_ticket_is_404_and_not_recorded(bridge: Bridge) -> None:
    r = bridge.post({"event_id": "e", "ticket": "99999999", "action": "remind"})
    assert r.status_code == 404
    assert error(r)["message"] == "没有找到这个受理号。"
    assert bridge.recorded() == 0


def test_a_wrong_secret_is_401_and_changes_nothing(bridge: Bridge) -> None:
    number = bridge.ticket()
    r = bridge.post(
        {"event_id": "e", "ticket": number, "action": "remind"}, secret="guessed-secret-012345678"
    )
    assert r.status_code == 401
    assert error(r)["message"] == "请求签名无效或已过期，未被受理。"
    assert error(r)["detail"] == "signature does not match"
    assert [e.action for e in bridge.events(number)] == ["create"]
    assert bridge.recorded() == 0


def test_a_body_changed_after_signing_is_401(bridge: Bridge) -> None:
    number = bridge.ticket()
    body = json.dumps({"event_id": "e", "ticket": number, "action": "remind"}).encode()
    headers = sign(SECRET, body)
    changed = body.replace(b"remind", b"accept")
    r = bridge.post(changed, headers=headers)
    assert r.status_code == 401


def test_missing_signature_headers_are_401(bridge: Bridge) -> None:
    number = bridge.ticket()
    r = bridge.post({"event_id": "e", "ticket": number, "action": "remind"}, headers={})
    assert r.status_code == 401
    assert "missing" in error(r)["detail"]


def test_a_stale_or_future_timestamp_is_401(bridge: Bridge) -> None:
    number = bridge.ticket()
    event = {"event_id": "e", "ticket": number, "action": "remind"}
    for skew in (-301, 301):
        r = bridge.post(event, timestamp=int(time.time()) + skew)
        assert r.status_code == 401
        assert error(r)["message"] == "请求签名无效或已过期，未被受理。"
        assert "away from our clock" in error(r)["detail"]
    assert bridge.recorded() == 0


def test_an_unknown_source_is_403(bridge: Bridge) -> None:
    number = bridge.ticket()
    r = bridge.post({"event_id": "e", "ticket": number, "action": "remind"}, source="stranger")
    assert r.status_code == 403
    assert error(r)["message"] == "未登记的对接系统，请求被拒绝。"
    assert error(r)["detail"] == "unknown source 'stranger'"


def test_a_body_over_64_kb_is_413(bridge: Bridge) -> None:
    number = bridge.ticket()
    event = {"event_id": "e", "ticket": number, "action": "note", "note": "长" * 30_000}
    r = bridge.post(event)
    assert r.status_code == 413
    assert error(r)["message"] == "提交的内容太大了。"
    assert bridge.recorded() == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ticket": "1234"}, "body.ticket"),
        ({"ticket": "１２３４５６７８"}, "body.ticket"),  # full-width digits
        ({"action": "dispatch"}, "body.action"),  # not open to outside systems
        ({"event_id": ""}, "body.event_id"),
        ({"event_id": "x" * 129}, "body.event_id"),
        ({"rating": "满意"}, "body.rating"),  # not part of the contract
        ({"external_ref": "r" * 65}, "body.external_ref"),
    ],
)
def test_a_malformed_event_is_422_naming_the_field(
    bridge: Bridge, change: dict[str, Any], field: str
) -> None:
    event = {"event_id": "e", "ticket": "20260001", "action": "remind", **change}
    r = bridge.post(event)
    assert r.status_code == 422
    assert error(r)["message"] == "请求内容不完整或格式不正确，请检查后重试。"
    assert field in [p["field"] for p in error(r)["fields"]["problems"]]


def test_a_body_that_is_not_json_is_422(bridge: Bridge) -> None:
    r = bridge.post("受理号 20260001 已办结".encode())
    assert r.status_code == 422


# -- replies and references ------------------------------------------------------------------
def test_a_reply_is_a_note_on_the_ticket_and_reaches_the_resident_once(bridge: Bridge) -> None:
    number = bridge.ticket(conversation_id="conv-0001")
    reply = {
        "event_id": "evt-reply",
        "ticket": number,
        "action": "reply",
        "note": "您好，已安排工作人员明天上午联系您。",
    }
    r = bridge.post(reply)
    assert r.status_code == 200, r.text
    assert (r.json()["action"], r.json()["status"]) == ("reply", "pending")
    assert bridge.live.told == [
        ("conv-0001", "您好，已安排工作人员明天上午联系您。", "ext:city12345")
    ]
    last = bridge.events(number)[-1]
    assert (last.action, last.note) == ("note", "外部回复：您好，已安排工作人员明天上午联系您。")

    assert bridge.post(reply).json()["duplicate"] is True
    assert len(bridge.live.told) == 1  # a duplicate says nothing again


def test_a_reply_without_a_conversation_or_live_desk_is_still_recorded(bridge: Bridge) -> None:
    by_phone = bridge.ticket()
    r = bridge.post({"event_id": "r1", "ticket": by_phone, "action": "reply", "note": "已回电"})
    assert r.status_code == 200
    assert bridge.live.told == []

    del bridge.app.state.live
    chat = bridge.ticket(conversation_id="conv-0002")
    r = bridge.post({"event_id": "r2", "ticket": chat, "action": "reply", "note": "已回复"})
    assert r.status_code == 200
    assert bridge.events(chat)[-1].note == "外部回复：已回复"


def test_a_reply_that_cannot_reach_the_resident_is_still_accepted(
    bridge: Bridge, caplog: pytest.LogCaptureFixture
) -> None:
    number = bridge.ticket(conversation_id="conv-0003")
    bridge.live.fail = True
    r = bridge.post({"event_id": "r", "ticket": number, "action": "reply", "note": "已处理"})
    assert r.status_code == 200
    assert r.json()["duplicate"] is False
    assert bridge.events(number)[-1].note == "外部回复：已处理"
    assert "could not be passed to conversation conv-0003" in caplog.text


def test_an_empty_reply_is_refused(bridge: Bridge) -> None:
    number = bridge.ticket(conversation_id="conv-0004")
    r = bridge.post({"event_id": "r", "ticket": number, "action": "reply", "note": "  "})
    assert r.status_code == 400
    assert error(r)["message"] == "外部回复需要填写回复内容。"
    assert bridge.live.told == []
    assert bridge.recorded() == 0


def test_the_platform_s_reference_is_kept_and_passed_on(bridge: Bridge) -> None:
    number = bridge.ticket()
    first = {"event_id": "a", "ticket": number, "action": "remind", "external_ref": "GD2026-77"}
    assert bridge.post(first).status_code == 200
    assert bridge.get(number).external_ref == "GD2026-77"
    [told] = bridge.outbox("ticket.remind")
    assert told.payload["ticket"]["external_ref"] == "GD2026-77"

    later = {"event_id": "b", "ticket": number, "action": "remind", "external_ref": "OTHER-1"}
    assert bridge.post(later).status_code == 200
    assert bridge.get(number).external_ref == "GD2026-77"  # the first reference stays
