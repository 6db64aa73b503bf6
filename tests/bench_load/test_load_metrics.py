"""bench.load's metrics: windows, percentiles, refusals apart from errors, recovery times."""

from __future__ import annotations

import pytest

from bench.load.clients import addresses, questions
from bench.load.metrics import Metrics


def filled() -> Metrics:
    m = Metrics()
    m.started = 0.0
    for i in range(100):  # 1 ms .. 100 ms, one a second, but for the fault's seconds
        if i not in (50, 51, 52, 53):
            m.ok("kiosk.take", float(i), float(i) + (i + 1) / 1000)
    m.record("counter.call_next", 5.0, "refused:empty", 5.002)
    for t in (50.0, 51.0, 52.0):  # a fault at 50 s: three errors, back at 53 s
        m.error("kiosk.take", t, "ConnectError", t + 0.5)
    m.ok("kiosk.take", 53.0, 53.1)  # (ended at 3.1 s after the fault)
    m.event("chat.reconnect", 54.0)
    return m


def test_stats_over_a_window() -> None:
    snap = filled().window(0.0, 200.0)
    stats = snap.stats()
    take = stats["kiosk.take"]
    assert (take.n, take.ok, take.error_count) == (100, 97, 3)
    assert take.errors == {"ConnectError": 3}
    assert take.p50 == pytest.approx(50.0, abs=2.0)
    assert take.p99 == pytest.approx(99.0, abs=1.5)
    call = stats["counter.call_next"]
    assert (call.ok, dict(call.refused), call.error_count) == (0, {"empty": 1}, 0)
    assert snap.event_counts() == {"chat.reconnect": 1}
    table = snap.table()
    assert "kiosk.take" in table and "ConnectError 3" in table and "refused: empty 1" in table


def test_a_window_keeps_only_its_samples() -> None:
    snap = filled().window(49.0, 53.0)
    take = snap.stats()["kiosk.take"]
    assert take.error_count == 3
    assert take.ok == 1  # the one that ended at 49.05; 53.1 is past the window
    assert [kind for _, _, kind in snap.error_times()] == ["ConnectError"] * 3


def test_recovery_after_a_fault() -> None:
    m = filled()
    r = m.recovery(50.0)["kiosk.take"]
    assert r.affected and r.errors == 3
    assert r.first_error_s == pytest.approx(0.5)
    assert r.last_error_s == pytest.approx(2.5)
    assert r.first_ok_after_s == pytest.approx(3.1)
    assert not m.recovery(50.0)["counter.call_next"].affected
    assert m.recovered_after(50.0) == pytest.approx(3.1)
    assert "3.1" in m.recovery_table(50.0, label="the kill")
    assert m.recovered_after(200.0) == 0.0  # nothing failed after that


def test_not_recovered_when_a_retried_operation_never_answers_again() -> None:
    m = Metrics()
    m.ok("chat.connect", 0.0, 0.01)
    m.error("chat.connect", 1.0, "ConnectionRefusedError", 1.01)
    assert m.recovery(0.5)["chat.connect"].first_ok_after_s is None
    assert m.recovered_after(0.5) is None
    assert "NOT within the horizon" in m.recovery_table(0.5)


def test_source_addresses_are_distinct_loopback_hosts() -> None:
    out = addresses("127.0.10.249", 5)
    assert out == ["127.0.10.249", "127.0.10.250", "127.0.11.1", "127.0.11.2", "127.0.11.3"]
    assert len(set(addresses("127.0.10.1", 300))) == 300
    with pytest.raises(ValueError):
        addresses("10.0.0.1", 1)


def test_questions_come_from_the_sample_faq_and_ask_for_nobody() -> None:
    pool = questions()
    assert len(pool) > 100
    from assistant.direct import COMPLAINT, HUMAN

    assert not [q for q in pool if HUMAN.search(q) or COMPLAINT.search(q)]
