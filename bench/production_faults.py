"""Issue 8's proof: the production topology on this machine (banshi/production.py: nginx,
2 API processes, Rasa, PostgreSQL, Redis) under the hall's and the web's load
(bench/load: chat users, agents, kiosks, counters, each from its own loopback address), with
faults injected one after another while the load runs:

1. one API process killed (SIGKILL);
2. PostgreSQL crashed (SIGQUIT, "immediate shutdown": no checkpoint, recovery at start);
3. Redis killed (SIGKILL);
4. the ticket printer out of paper for a while;
5. the Rasa server killed (SIGKILL);
6. the knowledge base's index files corrupted and an API process killed, so it starts on them.

The supervisor restarts what died; nothing is restarted by hand. For each fault: how long
until the service answered again (per operation, from the clients) and until /healthz said
ok again; then the invariants over everything acknowledged (no ticket number duplicated or
skipped, no chat message or agent reply lost). Latency percentiles for the whole run and per
phase.

    .venv/bin/python -m bench.production_faults                  # 200/20/30 users, 5 min
    .venv/bin/python -m bench.production_faults --duration 90 --users 40 --kiosks 8 --counters 8
    .venv/bin/python -m bench.production_faults --no-faults          # the load alone

Needs PostgreSQL, Redis, nginx (scripts/production-setup) and a trained Rasa model
(`banshi rasa train`; found in .test-data/rasa or data/rasa, or --rasa-model).
tests/e2e/test_topology.py runs a shorter version of the same and asserts on it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from banshi.production import Plan, Topology
from banshi.settings import Settings
from bench.load import Load, LoadResult, run, staff

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "kiosk"))
from fake_printer import PAPER_OUT, READY, FakeNetworkPrinter  # noqa: E402

AGENTS, CLERKS = staff.agent_accounts(8), staff.clerk_accounts(40)


@dataclass
class FaultReport:
    name: str
    at: float  # monotonic
    process_back_s: float | None = None  # the supervisor's restart, ready again
    health_back_s: float | None = None  # /healthz: the check named says ok again
    notes: list[str] = field(default_factory=list)


@dataclass
class Run:
    topology: Topology
    printer: FakeNetworkPrinter
    faults: list[FaultReport] = field(default_factory=list)
    health: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    result: LoadResult | None = None


def find_model(explicit: str = "") -> Path:
    if explicit:
        return Path(explicit)
    for home in (REPO / ".test-data" / "rasa", REPO / "data" / "rasa"):
        pointer = home / "models" / "CURRENT"
        if pointer.exists() and (home / "models" / pointer.read_text().strip()).exists():
            return home / "models" / pointer.read_text().strip()
    raise SystemExit("no trained Rasa model: run `banshi rasa train` (or pass --rasa-model)")


def free_base(count: int) -> int:
    """A port p such that p+1 … p+count are free."""
    for _ in range(200):
        base = random.randint(20000, 40000)
        if all(_free(base + i) for i in range(1, count + 1)):
            return base
    raise RuntimeError("no free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_topology(
    root: Path, *, api: int = 2, rasa_model: Path | None = None, encoder: str = "use-m3"
) -> Run:
    """The topology on a fresh data directory under ``root``, on free ports, with the hall
    open all day, agents at any hour and the ticket printer a fake one on loopback."""
    data = root / "data"
    if rasa_model is not None:
        models = data / "rasa" / "models"
        models.mkdir(parents=True)
        shutil.copy2(rasa_model, models / rasa_model.name)
        (models / "CURRENT").write_text(rasa_model.name)
    printer = FakeNetworkPrinter(READY).__enter__()
    env = {
        "BANSHI_KB_SOURCE_DIR": str(staff.open_all_day_kb(root / "kb")),
        "BANSHI_AGENT_HOURS": "always",
        "BANSHI_KB_ENCODER": encoder,
        "BANSHI_KIOSK_PRINTER": f"network://127.0.0.1:{printer.port}?timeout=1",
        "BANSHI_SECRET_KEY": "load-test-secret-" + os.urandom(8).hex(),
    }
    os.environ.update(env)  # the topology's processes inherit them
    for name in ("BANSHI_DATABASE_URL", "BANSHI_REDIS_URL", "BANSHI_VOICE_AUDIOSOCKET"):
        os.environ.pop(name, None)
    plan = Plan(
        api_processes=api,
        rasa_processes=1,
        rasa=rasa_model is not None,
        public_port=free_base(1) + 1,
        internal_port=free_base(1) + 1,
        api_base_port=free_base(api),
        rasa_base_port=free_base(1),
        postgres_port=free_base(1) + 1,
        redis_port=free_base(1) + 1,
    )
    topology = Topology(
        Settings(data_dir=data, kb_source_dir=Path(env["BANSHI_KB_SOURCE_DIR"])), plan
    )
    topology.start()
    staff.ensure_staff(topology.database_url, AGENTS + CLERKS)
    return Run(topology, printer)


async def _health_poller(run_: Run, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
        while not stop.is_set():
            try:
                r = await client.get(f"{run_.topology.public_url}/healthz")
                checks = {k: v.get("status", "?") for k, v in r.json().get("checks", {}).items()}
            except (httpx.HTTPError, ValueError):
                checks = {"nginx": "down"}
            run_.health.append((time.monotonic(), checks))
            await asyncio.sleep(0.5)


async def _until(predicate: Callable[[], bool], timeout_s: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if await asyncio.to_thread(predicate):
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    return None


def _health_ok_since(run_: Run, check: str, after: float) -> float | None:
    """Seconds from ``after`` to the first /healthz after it, following a not-ok one,
    where ``check`` is ok (or the first ok one if it never went bad)."""
    seen_bad = False
    for t, checks in run_.health:
        if t < after:
            continue
        status = checks.get(check, "missing")
        if status != "ok":
            seen_bad = True
        elif seen_bad or t > after:
            return t - after
    return None


FAULTS = ("api", "postgres", "redis", "printer", "rasa", "index")


def faults(
    run_: Run, gap_s: float, names: tuple[str, ...] = FAULTS
) -> Callable[[Load], Awaitable[None]]:
    """The faults ``names`` (of :data:`FAULTS`), ``gap_s`` apart, each waited out before the
    next."""
    topo = run_.topology

    async def kill_and_wait(load: Load, name: str, sig: int, check: str, label: str) -> None:
        child = topo.children[name]
        old = child.pid
        at = load.mark(label)
        report = FaultReport(label, at)
        run_.faults.append(report)
        assert old is not None, f"{name} is not running"
        os.kill(old, sig)
        report.process_back_s = await _until(
            lambda: child.pid not in (None, old) and child.ready(), 180
        )
        await asyncio.sleep(2)
        report.health_back_s = _health_ok_since(run_, check, at)

    async def paper_out(load: Load) -> None:
        at = load.mark("ticket printer out of paper")
        report = FaultReport("ticket printer out of paper", at)
        run_.faults.append(report)
        before = len(run_.printer.connections)
        run_.printer.statuses = dict(PAPER_OUT)
        await asyncio.sleep(min(gap_s, 15))
        jobs_while_out = len(run_.printer.connections) - before
        run_.printer.statuses = dict(READY)
        back = time.monotonic()
        report.process_back_s = 0.0
        await asyncio.sleep(3)
        report.health_back_s = _health_ok_since(run_, "ticket_printer", back)
        report.notes.append(
            f"{jobs_while_out} status queries/jobs reached the printer while it was out of paper"
        )

    async def corrupt_index(load: Load) -> None:
        index = topo.settings.data_dir / "kb_index"
        for manifest in index.glob("manifest-*.json"):
            manifest.write_text("{broken")  # as a disk error or a bad copy would leave it
        await kill_and_wait(
            load, "api-2", signal.SIGKILL, "knowledge_base", "KB index corrupted, api-2 killed"
        )

    async def scenario(load: Load) -> None:
        stop = asyncio.Event()
        poller = asyncio.create_task(_health_poller(run_, stop))
        try:
            every: dict[str, Callable[[], Awaitable[None]]] = {
                "api": lambda: kill_and_wait(
                    load, "api-1", signal.SIGKILL, "database", "api-1 killed"
                ),
                "postgres": lambda: kill_and_wait(
                    load, "postgres", signal.SIGQUIT, "database", "PostgreSQL crashed"
                ),
                "redis": lambda: kill_and_wait(
                    load, "redis", signal.SIGKILL, "bus", "Redis killed"
                ),
                "printer": lambda: paper_out(load),
                "rasa": lambda: kill_and_wait(
                    load, "rasa-1", signal.SIGKILL, "rasa", "Rasa killed"
                ),
                "index": lambda: corrupt_index(load),
            }
            if "rasa-1" not in topo.children:
                names_ = tuple(n for n in names if n != "rasa")
            else:
                names_ = names
            steps = [every[n] for n in names_]
            for step in steps:
                await asyncio.sleep(gap_s)
                await step()
            await asyncio.sleep(gap_s)
        finally:
            stop.set()
            await poller

    return scenario


def report(run_: Run) -> str:
    assert run_.result is not None
    result = run_.result
    lines = [result.report(), ""]
    marks = [f.at for f in run_.faults] + [result.stopped]
    if run_.faults:
        lines.append(
            result.metrics.window(result.started, marks[0], "before the first fault").table(
                result.started
            )
        )
    for fault, until in zip(run_.faults, marks[1:], strict=True):
        lines += [
            "",
            f"== {fault.name}: process ready again after "
            + (f"{fault.process_back_s:.1f} s" if fault.process_back_s is not None else "NEVER")
            + ", /healthz ok again after "
            + (f"{fault.health_back_s:.1f} s" if fault.health_back_s is not None else "NEVER"),
            *fault.notes,
            result.metrics.recovery_table(fault.at, until - fault.at, fault.name),
        ]
    restarts = {n: c.restarts for n, c in run_.topology.children.items()}
    lines += ["", f"supervisor restarts: {restarts}"]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="banshi-prod-"))
    root.chmod(0o755)  # PostgreSQL runs as its own user (when we are root) and must reach it
    model = None if args.no_rasa else find_model(args.rasa_model)
    print(f"starting the topology in {root} …", flush=True)
    started = time.monotonic()
    run_ = start_topology(root, api=args.api, rasa_model=model, encoder=args.encoder)
    print(f"ready in {time.monotonic() - started:.0f} s at {run_.topology.public_url}", flush=True)
    gap = args.duration / (len(args.faults.split(",")) + 2)
    try:
        run_.result = await run(
            run_.topology.public_url,
            args.duration,
            args.users,
            args.kiosks,
            args.counters,
            args.agents,
            scenario=None if args.no_faults else faults(run_, gap, tuple(args.faults.split(","))),
            database_url=run_.topology.database_url,
            agent_users=AGENTS,
            counter_users=CLERKS,
        )
    finally:
        run_.topology.stop()
        run_.printer.__exit__(None, None, None)
    print(report(run_))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if run_.result.violations else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=300)
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--kiosks", type=int, default=20)
    p.add_argument("--counters", type=int, default=30)
    p.add_argument("--agents", type=int, default=5)
    p.add_argument("--api", type=int, default=2)
    p.add_argument("--encoder", default="use-m3")
    p.add_argument("--rasa-model", default="")
    p.add_argument("--no-rasa", action="store_true")
    p.add_argument("--faults", default=",".join(FAULTS), help="Which, in order (comma-separated).")
    p.add_argument("--no-faults", action="store_true", help="The load alone (percentiles).")
    p.add_argument("--keep", action="store_true", help="Keep the data directory and logs.")
    args = p.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
