"""bench.load against a real `banshi serve` (SQLite, no Rasa) for a few seconds: every kind
of client does its work, from its own address, and the invariants hold."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from bench.load import Config, run, staff

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from serving import serve  # tests/e2e: `banshi serve`, ready when /healthz answers

pytestmark = pytest.mark.e2e


def test_a_short_run_keeps_every_promise(tmp_path: Path) -> None:
    kb = staff.open_all_day_kb(tmp_path / "kb")
    data = tmp_path / "data"
    env = {
        "BANSHI_KB_SOURCE_DIR": str(kb),
        "BANSHI_KB_ENCODER": "hashing",
        "BANSHI_AGENT_HOURS": "always",
    }
    url = f"sqlite:///{(data / 'banshi.db').resolve()}"
    agents, clerks = staff.agent_accounts(1), staff.clerk_accounts(2)
    # (bench._common.served waits for a knowledge base "ok": never with the hashing encoder)
    with serve(data, env=env) as server:
        base = server.base
        assert staff.ensure_staff(url, agents + clerks) == 3
        config = Config(think_s=(0.5, 1.5), escalate_share=1.0, kiosk_gap_s=(0.3, 0.8))
        result = asyncio.run(
            run(
                base,
                12,
                users=3,
                kiosks=2,
                counters=2,
                agents=1,
                database_url=url,
                agent_users=agents,
                counter_users=clerks,
                config=config,
                ramp_s=1,
                planned_s=8,
                drain_s=4,
            )
        )
    report = result.report()
    assert result.violations == [], report
    stats = result.metrics.window(result.started, result.stopped).stats()
    for op in ("chat.send", "kiosk.take", "counter.call_next", "agent.poll"):
        assert stats[op].ok > 0, report
        assert not stats[op].errors, report
    led = result.ledger
    assert led.tickets and led.chat_acks, report
    assert result.metrics.window().event_counts()["chat.escalated"] == 3, report
    assert led.acked_replies() and all(led.deliveries[r.marker] for r in led.acked_replies())
    # each client had its own address: the server's log names them
    log = server.log_path.read_text(encoding="utf-8")
    assert "127.0.10.1:" in log and "127.0.10.8:" in log
