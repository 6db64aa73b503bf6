"""The production topology, really started (banshi/production.py: nginx, two API processes,
a Rasa server, PostgreSQL, Redis, each supervised), under a small load from bench/load while
one API process is killed, PostgreSQL crashes, Redis is killed and the ticket printer runs
out of paper. Everything acknowledged must be in the database afterwards (no queue number
duplicated or skipped, no chat message or agent reply lost), the supervisor must have brought
each process back by itself, and the clients must be served again. The long run with the
issue's numbers is `python -m bench.production_faults` (README, Measurements)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import production_faults as pf
from bench.load import run

pytestmark = [pytest.mark.e2e, pytest.mark.rasa]

REPO = Path(__file__).resolve().parents[2]
NEEDED = ("redis-server", "nginx")
FAULTS = ("api", "postgres", "redis", "printer")


@pytest.fixture(scope="module")
def topology() -> Iterator[pf.Run]:
    missing = [b for b in NEEDED if not shutil.which(b) and not Path("/usr/sbin", b).exists()]
    if missing or not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        pytest.skip(f"needs scripts/production-setup (missing: {missing or ['postgresql']})")
    try:
        model = pf.find_model()
    except SystemExit:
        pytest.skip("needs a trained Rasa model (`banshi rasa train`)")
    # not under pytest's tmp_path (mode 0700): PostgreSQL runs as its own user when we are root
    root = Path(tempfile.mkdtemp(prefix="banshi-e2e-production-"))
    root.chmod(0o755)
    try:
        run_ = pf.start_topology(root, rasa_model=model)
        try:
            yield run_
        finally:
            run_.topology.stop()
            run_.printer.__exit__(None, None, None)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def loaded(topology: pf.Run) -> pf.Run:
    """80 s of load (30 chat users, 4 kiosks, 4 counters, 2 agents) with the faults ~14 s
    apart; the load lasts until the last fault has been waited out."""
    topology.result = asyncio.run(
        run(
            topology.topology.public_url,
            80,
            users=30,
            kiosks=4,
            counters=4,
            agents=2,
            scenario=pf.faults(topology, 14, FAULTS),
            database_url=topology.topology.database_url,
            agent_users=pf.AGENTS,
            counter_users=pf.CLERKS,
        )
    )
    print(pf.report(topology))  # shown with -s, and in the failure's captured output
    return topology


def test_nothing_acknowledged_is_lost_or_repeated(loaded: pf.Run) -> None:
    result = loaded.result
    assert result is not None
    assert result.findings is not None
    assert result.violations == []
    checked = result.findings.checked
    # the invariants looked at real traffic, not at an empty run
    assert checked["acknowledged tickets"] > 10
    assert checked["acknowledged chat messages"] > 50
    assert checked["queue tickets"] >= checked["acknowledged tickets"]


def test_every_fault_was_recovered_from_by_the_supervisor(loaded: pf.Run) -> None:
    assert [f.name for f in loaded.faults] == [
        "api-1 killed",
        "PostgreSQL crashed",
        "Redis killed",
        "ticket printer out of paper",
    ]
    for fault in loaded.faults:
        assert fault.process_back_s is not None, f"{fault.name}: the process never came back"
        assert fault.health_back_s is not None, f"{fault.name}: /healthz never said ok again"
    restarts = {n: c.restarts for n, c in loaded.topology.children.items()}
    assert restarts["api-1"] >= 1 and restarts["postgres"] >= 1 and restarts["redis"] >= 1
    assert restarts["api-2"] == 0 and restarts["nginx"] == 0


def test_clients_are_served_again_after_each_fault(loaded: pf.Run) -> None:
    result = loaded.result
    assert result is not None
    for fault in loaded.faults:
        back = result.metrics.recovered_after(fault.at)
        assert back is not None, f"an operation never succeeded again after {fault.name}"


def test_the_printer_fault_was_seen_and_cleared(loaded: pf.Run) -> None:
    seen = [checks.get("ticket_printer") for _, checks in loaded.health]
    assert any(s not in (None, "ok") for s in seen)  # reported while out of paper
    assert seen[-1] == "ok"
