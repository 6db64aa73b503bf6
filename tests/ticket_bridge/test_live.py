"""The live queue: round-robin within capacity, concurrent claims, transfers, agents going
offline, closing time; on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from bridge_support import closed_now, make_live

from banshi.auth import Principal
from banshi.db import Database
from banshi.errors import Conflict
from ticket_bridge.errors import ChatTaken
from ticket_bridge.models import LiveChat, Ticket


def online(live: Any, *names: str, capacity: int = 2) -> None:
    for name in names:
        live.set_agent_state(name, "online", capacity)


def holders(db: Database) -> dict[str, str | None]:
    with db.session() as s:
        return {c.conversation_id: c.agent for c in s.query(LiveChat).filter_by(status="active")}


def test_waiting_chats_go_round_robin_within_capacity(db: Database) -> None:
    live, channels = make_live(db)
    online(live, "li", "zhao", capacity=1)
    places = [live.escalate(f"c{i}", "request", f"问题{i}") for i in range(3)]
    assert [p["kind"] for p in places] == ["active", "active", "queued"]
    assert places[2]["ahead"] == 0
    assert sorted(holders(db).values()) == ["li", "zhao"]  # one each, not both to one
    assert channels.states == {"c0": "agent", "c1": "agent", "c2": "waiting"}
    # the third is given as soon as someone has room again
    first_holder = holders(db)["c0"]
    [c0] = [c for c in live.mine(first_holder) if c["conversation_id"] == "c0"]
    live.release(c0["id"], Principal(first_holder, "agent"))
    assert holders(db)["c2"] == first_holder
    assert channels.states["c0"] == "bot"
    assert channels.said_to("c0")[-1] == "工作人员已结束接待，智能助手继续为您服务。"


def test_asking_twice_keeps_one_place_in_the_queue(db: Database) -> None:
    live, _ = make_live(db)
    live.escalate("c1", "request", "第一次")
    live.escalate("c2", "request", "别人")
    again = live.escalate("c1", "request", "第二次")
    assert (again["kind"], again["ahead"]) == ("queued", 0)
    assert [c["conversation_id"] for c in live.queue()] == ["c1", "c2"]


def claim_race(db: Database) -> None:
    live, _ = make_live(db)
    live.escalate("c1", "request", "抢单")
    [chat] = live.queue()
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def claim(name: str) -> None:
        barrier.wait()
        try:
            live.claim(chat["id"], name)
            outcomes.append(name)
        except ChatTaken:
            outcomes.append("taken")

    threads = [threading.Thread(target=claim, args=(f"agent{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o != "taken"]
    assert len(winners) == 1 and outcomes.count("taken") == 3
    assert holders(db) == {"c1": winners[0]}


def test_concurrent_claims_exactly_one_wins(db: Database) -> None:
    claim_race(db)


@pytest.mark.postgres
def test_concurrent_claims_exactly_one_wins_on_postgresql(pg_url: str) -> None:
    database = Database(pg_url)
    database.upgrade()
    try:
        claim_race(database)
    finally:
        database.dispose()


def test_capacity_is_never_exceeded_by_parallel_claims(db: Database) -> None:
    live, _ = make_live(db)
    for i in range(6):
        live.escalate(f"c{i}", "request", "x")
    live.set_agent_state("li", "away", 2)  # away: nothing is given automatically
    ids = [c["id"] for c in live.queue()]
    barrier = threading.Barrier(len(ids))
    got: list[int] = []

    def claim(chat_id: int) -> None:
        barrier.wait()
        try:
            live.claim(chat_id, "li")
            got.append(chat_id)
        except Conflict:  # at capacity: the expected refusal
            pass

    threads = [threading.Thread(target=claim, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 2
    assert live.agent_state("li")["active"] == 2


def assign_race(db: Database) -> None:
    """GIVEN three agents with room for nine chats, WHEN nine residents ask for a person at
    the same moment (each escalation runs an assignment pass, and passes that meet are
    folded into one), THEN every chat is given, once, and nobody holds more than three."""
    live, channels = make_live(db)
    online(live, "li", "zhao", "qian", capacity=3)
    barrier = threading.Barrier(9)

    def ask(i: int) -> None:
        barrier.wait()
        live.escalate(f"c{i}", "request", f"问题{i}")

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = holders(db)
    assert sorted(held) == [f"c{i}" for i in range(9)]
    assert sorted(held.values()) == ["li"] * 3 + ["qian"] * 3 + ["zhao"] * 3
    assert live.queue() == []
    assert all(channels.said_to(f"c{i}").count(JOINED) == 1 for i in range(9))


JOINED = "工作人员已接入，正在查看您和智能助手的对话，请直接留言。"


def test_simultaneous_escalations_are_all_assigned_once(db: Database) -> None:
    assign_race(db)


@pytest.mark.postgres
def test_simultaneous_escalations_are_all_assigned_once_on_postgresql(pg_url: str) -> None:
    database = Database(pg_url)
    database.upgrade()
    try:
        assign_race(database)
    finally:
        database.dispose()


def test_transfer_to_a_department_and_going_offline_requeue_the_chat(db: Database) -> None:
    live, channels = make_live(db)
    online(live, "li")
    live.escalate("c1", "complaint", "投诉窗口")
    [chat] = live.mine("li")
    live.transfer(chat["id"], Principal("li", "agent"), department="hrss")
    # li (general hotline) has room, but the chat now waits for the department's people
    assert [c["department"] for c in live.queue()] == ["hrss"]
    assert channels.said_to("c1")[-1] == "正在为您转接人力资源和社会保障局的工作人员，请稍候。"
    live.set_agent_state("zhao", "online", 2, "hrss")
    assert holders(db) == {"c1": "zhao"}
    live.set_agent_state("zhao", "offline")
    # back to the head of the queue (nobody is left with nobody), and the next one takes it
    assert [c["conversation_id"] for c in live.queue()] == ["c1"]
    assert "工作人员暂时离开，正在为您转接其他工作人员，请稍候。" in channels.said_to("c1")
    live.set_agent_state("wu", "online", 2, "hrss")
    assert holders(db) == {"c1": "wu"}


def test_out_of_hours_and_at_closing_time_requests_become_tickets(db: Database) -> None:
    live, channels = make_live(db)
    live.escalate("c1", "request", "晚上还在排队")
    live.calendar = closed_now()
    assert live.sweep() == 1
    with db.session() as s:
        [ticket] = s.query(Ticket).all()
        assert (ticket.category, ticket.conversation_id, ticket.status) == ("求助", "c1", "pending")
        assert ticket.transcript[0]["text"] == "c1的问题"
    assert channels.said_to("c1")[-1].startswith(
        f"现在已下班，您的转人工请求已登记为工单，受理号{ticket.number}。"
    )
    assert channels.states["c1"] == "bot"
    out = live.escalate("c2", "complaint", "夜里投诉", phone="13900001111")
    assert out["kind"] == "ticket" and out["has_phone"]
    with db.session() as s:
        assert s.query(Ticket).filter_by(number=out["number"]).one().category == "投诉"


def test_an_agent_whose_inbox_is_gone_goes_offline_and_their_chats_back_to_the_queue(
    db: Database,
) -> None:
    import datetime as dt

    from ticket_bridge.models import AgentState

    live, channels = make_live(db)
    online(live, "li", "zhao", capacity=1)
    live.escalate("c1", "request", "x")
    holder = holders(db)["c1"]
    other = "zhao" if holder == "li" else "li"
    live.seen(other)  # the other inbox keeps polling; the holder's tab was closed
    with db.session() as s:
        s.get(AgentState, holder).updated_at -= dt.timedelta(minutes=10)
    assert live.expire_presence() == 1
    assert live.agent_state(holder)["status"] == "offline"
    assert holders(db) == {"c1": other}
    assert "工作人员暂时离开，正在为您转接其他工作人员，请稍候。" in channels.said_to("c1")
