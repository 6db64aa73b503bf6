"""bench.load's invariants against a real (SQLite, migrated) database: what holds passes,
and each broken promise is named in a sentence."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from assistant.models import ChatMessage, Conversation
from banshi.db import Database
from bench.load.clients import AgentReply, CallAck, ChatAck, Delivery, Ledger, TicketAck
from bench.load.invariants import check, examine
from kiosk.queue.models import QueueDay, QueueTicket

DAY = dt.date(2026, 3, 2)


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'load.db'}"
    db = Database(url)
    db.upgrade()
    db.dispose()
    return url


def store(url: str, *rows: object) -> None:
    db = Database(url)
    with db.session() as s:
        for row in rows:
            s.add(row)
            s.flush()
    db.dispose()


def ticket(seq: int, service: str = "A", status: str = "waiting", window: str | None = None):
    return QueueTicket(
        day=DAY,
        service=service,
        seq=seq,
        number=f"{service}{seq:03d}",
        kind="walk_in",
        status=status,
        token=f"tok{service}{seq:05d}",
        window=window,
    )


def good_run(url: str) -> Ledger:
    store(
        url,
        QueueDay(service="A", day=DAY, last_seq=3, walk_in_issued=3),
        ticket(1, status="done", window="A01"),
        ticket(2),
        ticket(3),
        Conversation(id="c1", channel="web", user_key="session-one-0001"),
        ChatMessage(
            id=10,
            conversation_id="c1",
            direction="in",
            author="resident",
            text="居住证怎么办？",
            external_id="m1",
        ),
        ChatMessage(
            id=11, conversation_id="c1", direction="out", author="bot", text="…", reply_to=10
        ),
        ChatMessage(
            id=12, conversation_id="c1", direction="out", author="agent", text="[Aabc-0-1] 您好"
        ),
    )
    led = Ledger(run_id="abc", t0=0.0)
    led.residents.add("session-one-0001")
    led.sessions["session-one-0001"] = "c1"
    led.tickets += [TicketAck("A", f"A00{i}", f"tokA0000{i}", DAY, "k1", 1.0) for i in (1, 2, 3)]
    led.calls.append(CallAck("A01", "clerk", "A001", "A", DAY, 2.0, "done"))
    led.chat_acks.append(
        ChatAck("session-one-0001", "c1", "m1", "居住证怎么办？", "ws", False, 1, 1.0, 1.1)
    )
    led.agent_replies["[Aabc-0-1]"] = AgentReply("[Aabc-0-1]", "agent", 1, "c1", 3.0, 3.01)
    led.deliveries["[Aabc-0-1]"].append(Delivery("session-one-0001", 12, 3.02, False))
    return led


def test_a_clean_run_has_no_violations(url: str) -> None:
    found = examine(url, good_run(url))
    assert found.violations == []
    assert found.checked["queue tickets"] == 3
    assert found.checked["acknowledged agent replies"] == 1


def test_gaps_and_lost_acknowledgements_are_named(url: str) -> None:
    led = good_run(url)
    # number A004 was counted but never stored, A006 exists without A005
    store(url, ticket(6))
    db = Database(url)
    with db.session() as s:
        s.get(QueueDay, ("A", DAY)).last_seq = 6  # type: ignore[union-attr]
    db.dispose()
    led.tickets.append(TicketAck("A", "A009", "tokmissing", DAY, "k2", 5.0))
    led.tickets.append(TicketAck("A", "A002", "tokother", DAY, "k3", 5.0))  # twice given
    led.calls.append(CallAck("A02", "clerk2", "A001", "A", DAY, 6.0))  # a second window
    led.calls.append(CallAck("A01", "clerk", "A002", "A", DAY, 6.0, "done"))  # still waiting
    led.chat_acks.append(ChatAck("session-one-0001", "c1", "m2", "社保卡", "rest", False, 1, 7, 7))
    led.agent_replies["[Aabc-0-2]"] = AgentReply("[Aabc-0-2]", "agent", 1, "c1", 8.0, 8.1)
    led.deliveries["[Aabc-0-1]"].append(Delivery("someone-else-0002", 12, 3.5, False))
    found = check(url, led)
    text = "\n".join(found)
    assert "number(s) 4–5 were skipped" in text
    assert "A009 given to kiosk k2 at +5.0 s is not in the database" in text
    assert "Number A002 of 2026-03-02 was given to 2 residents" in text
    assert "Number A001 of 2026-03-02 was called at 2 windows" in text
    assert "A002 was acknowledged as done at A01" in text and "stored as waiting" in text
    assert "Message m2 of session-one-0001" in text and "is not stored" in text
    assert "[Aabc-0-2] in chat 1, acknowledged at +8.1 s, is not stored" in text
    assert "[Aabc-0-2] in chat 1, acknowledged at +8.1 s, never reached" in text
    assert "[Aabc-0-1] reached other residents" in text
