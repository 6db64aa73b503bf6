"""The lobby under load: kiosks issuing numbers and counters calling them at once, with the
hall display listening.

    .venv/bin/python bench/queue_load.py [--kiosks 20] [--counters 30] [--seconds 60]
        [--database-url postgresql+psycopg://…]

Starts one real `banshi serve` (no Rasa) on a throwaway data directory, on a copy of the
sample centre that is open around the clock (so the bench runs at any hour), SQLite unless
--database-url names a PostgreSQL server (a fresh database is made on it and dropped).

Each kiosk takes a number every --kiosk-gap seconds (default 1–3 s: a resident at every
kiosk without pause, ~10 numbers a second, ten times a busy district hall's peak; --stress
is 0.2–1 s) for a random service, with a fresh valid ID number where the service needs one,
printed on the dummy printer (so the ESC/POS rendering is included). Each counter opens its
window, calls the next number, "serves" it for --service seconds (0.3–1.5 s) and finishes
it (one in twenty is 过号 instead); with nobody waiting it presses 叫号 again after 0.3 s.
One hall display follows the SSE stream of calls.

Measured on this process's clock: issue (POST /api/kiosk/tickets), call (POST counter
call), call → display (the call POST sent → the SSE event for it received). Verified at the
end from the database: numbers unique and consecutive per service, every call reached the
display exactly once. Timings are printed, not asserted; exit 1 only when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import httpx
import yaml
from _common import REPO, fresh_database, percentile, served

from banshi.db import Database
from kiosk.queue.config import QueueConfig
from kiosk.queue.idcard import check_digit

PASSWORD = "bench-clerk-password"
GOALS = {"issue": 100.0, "call → display": 200.0}


def open_all_day(source: Path, target: Path) -> Path:
    """A copy of the sample centre whose hall is open 00:00–24:00 every day."""
    import shutil

    shutil.copytree(source, target)
    centre = yaml.safe_load((target / "centre.yml").read_text(encoding="utf-8"))
    centre["opening"] = {
        "timezone": "Asia/Shanghai",
        "periods": {d: ["00:00-23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    }
    (target / "centre.yml").write_text(yaml.safe_dump(centre, allow_unicode=True), "utf-8")
    queue = yaml.safe_load((target / "queue.yml").read_text(encoding="utf-8"))
    queue["rules"]["last_ticket_minutes"] = 0
    for s in queue["services"]:
        s["quota"] = {"walk_in": 990, "appointment": 0}
    (target / "queue.yml").write_text(yaml.safe_dump(queue, allow_unicode=True), "utf-8")
    return target


def make_clerks(url: str, count: int) -> None:
    from banshi.auth import create_user

    db = Database(url)
    db.upgrade()
    with db.session() as s:
        for i in range(count):
            create_user(s, f"clerk{i:02d}", PASSWORD, "agent")
    db.dispose()


class Run:
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.call_sent: dict[tuple[str, str], float] = {}  # (number, window) → t
        self.display_seen: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.issued: list[str] = []
        self.stop = asyncio.Event()
        self.opened = asyncio.Event()
        self.open_count = 0
        self.counters = 0


def valid_id(rng: random.Random) -> str:
    body = "110105" + f"{rng.randint(1950, 2005)}0{rng.randint(1, 9)}1{rng.randint(0, 9)}"
    body += f"{rng.randint(0, 999):03d}"
    return body + check_digit(body)


async def kiosk(
    client: httpx.AsyncClient, run: Run, services: list[Any], seed: int, gap: tuple[float, float]
) -> None:
    rng = random.Random(seed)
    await run.opened.wait()  # the counters are logged in (scrypt, on purpose slow) and open
    await asyncio.sleep(rng.uniform(*gap))  # kiosks do not start in step
    while not run.stop.is_set():
        service = rng.choice(services)
        body: dict[str, Any] = {"service": service.code, "kiosk": f"k{seed}"}
        if service.id_required:
            body["id_number"] = valid_id(rng)
        t0 = time.perf_counter()
        r = await client.post("/api/kiosk/tickets", json=body)
        run.times["issue"].append((time.perf_counter() - t0) * 1000)

        if r.status_code == 200:
            run.issued.append(r.json()["number"])
        elif not (
            r.status_code == 409 and r.json()["error"]["fields"]["reason"] == "already_waiting"
        ):
            run.errors[f"issue {r.status_code}"] += 1
        await asyncio.sleep(rng.uniform(*gap))


async def counter(
    client: httpx.AsyncClient,
    run: Run,
    window: str,
    clerk: str,
    seed: int,
    serve_s: tuple[float, float],
) -> None:
    rng = random.Random(seed)
    r = await client.post("/api/auth/login", json={"username": clerk, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {r.json()['token']}"}

    async def act(action: str) -> httpx.Response:
        t0 = time.perf_counter()
        r = await client.post(f"/api/counter/{window}", json={"action": action}, headers=headers)
        run.times[action].append((time.perf_counter() - t0) * 1000)
        return r

    await act("open")
    run.open_count += 1
    if run.open_count == run.counters:
        run.opened.set()
    await run.opened.wait()
    while not run.stop.is_set():
        sent = time.perf_counter()
        r = await act("call")
        if r.status_code == 409:
            await asyncio.sleep(0.3)  # nobody waiting
            continue
        if r.status_code != 200:
            run.errors[f"call {r.status_code}"] += 1
            await asyncio.sleep(0.5)
            continue
        number = r.json()["ticket"]["number"]
        run.call_sent[(number, window)] = sent
        await asyncio.sleep(rng.uniform(*serve_s))
        r = await act("no_show" if rng.random() < 0.05 else "finish")
        if r.status_code != 200:
            run.errors[f"finish {r.status_code}"] += 1
    await act("close")


async def display(base: str, run: Run) -> None:
    """The hall display: the SSE stream, reconnected where it left off (a stream ends
    every 30 s by design)."""
    last = 0
    async with httpx.AsyncClient(base_url=base, timeout=None) as client:
        while not run.stop.is_set():
            async with client.stream("GET", f"/api/kiosk/calls/stream?after={last}") as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("data:"):
                        event = json.loads(line[5:])
                        last = max(last, int(event["id"]))
                        if not event.get("recall"):
                            key = (event["number"], event["window"])
                            run.display_seen[key].append(time.perf_counter())


def _pair(text: str) -> tuple[float, float]:
    low, high = (float(x) for x in text.split(","))
    return low, high


def check_numbers(url: str) -> tuple[bool, str]:
    from sqlalchemy import select

    from kiosk.queue.models import QueueTicket

    db = Database(url)
    with db.session() as s:
        rows = s.execute(select(QueueTicket.day, QueueTicket.service, QueueTicket.seq)).all()
    db.dispose()
    by: dict[tuple[Any, str], list[int]] = defaultdict(list)
    for day, service, seq in rows:
        by[(day, service)].append(seq)
    bad = {k: v for k, v in by.items() if sorted(v) != list(range(1, len(v) + 1))}
    return not bad, f"{len(rows)} tickets in {len(by)} service-days; gaps or repeats: {len(bad)}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiosks", type=int, default=20)
    ap.add_argument("--counters", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--kiosk-gap", default="1,3", help="seconds between a kiosk's numbers")
    ap.add_argument("--service", default="0.3,1.5", help="seconds a counter serves")
    ap.add_argument("--stress", action="store_true", help="--kiosk-gap 0.2,1")
    args = ap.parse_args()
    if args.stress:
        args.kiosk_gap = "0.2,1"

    tmp = Path(tempfile.mkdtemp(prefix="bench-queue"))
    source = open_all_day(REPO / "knowledge_base" / "sample", tmp / "source")
    config = QueueConfig.load(source / "queue.yml")
    windows = [w for w in config.windows][: args.counters]
    data = tmp / "data"
    data.mkdir()
    with fresh_database(args.database_url) if args.database_url else nullcontext("") as pg:
        return bench(args, source, config, windows, data, pg or f"sqlite:///{data / 'banshi.db'}")


def bench(
    args: argparse.Namespace,
    source: Path,
    config: QueueConfig,
    windows: list[str],
    data: Path,
    url: str,
) -> int:
    make_clerks(url, len(windows))
    gap = _pair(args.kiosk_gap)
    serve_s = _pair(args.service)
    env = {"BANSHI_KB_SOURCE_DIR": str(source), "BANSHI_DATABASE_URL": url}
    run = Run()
    run.counters = len(windows)
    with served(with_rasa=False, extra_env=env, data=data) as base:
        print(
            f"server {base} ({'PostgreSQL' if args.database_url else 'SQLite'}); "
            f"{args.kiosks} kiosks (a number every {args.kiosk_gap} s each), {len(windows)} "
            f"counters (serving {args.service} s), {args.seconds:.0f} s"
        )

        async def go() -> None:
            limits = httpx.Limits(max_connections=200)
            async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as c:
                shown = asyncio.create_task(display(base, run))
                await asyncio.sleep(0.5)
                tasks = [
                    asyncio.create_task(kiosk(c, run, list(config.services.values()), i, gap))
                    for i in range(args.kiosks)
                ] + [
                    asyncio.create_task(counter(c, run, w, f"clerk{i:02d}", 1000 + i, serve_s))
                    for i, w in enumerate(windows)
                ]
                await run.opened.wait()
                await asyncio.sleep(args.seconds)
                run.stop.set()
                await asyncio.gather(*tasks)
                await asyncio.sleep(1.5)  # the last calls reach the display
                shown.cancel()

        started = time.perf_counter()
        asyncio.run(go())
        wall = time.perf_counter() - started
    lags = []
    missing = twice = 0
    for key, sent in run.call_sent.items():
        seen = run.display_seen.get(key, [])
        if not seen:
            missing += 1
            continue
        twice += len(seen) > 1
        lags.append((seen[0] - sent) * 1000)
    run.times["call → display"] = lags
    print(f"\n{'measure (ms)':<24}{'n':>8}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}")
    for name in ("issue", "call", "finish", "no_show", "open", "call → display"):
        v = run.times.get(name) or []
        if v:
            print(
                f"{name:<24}{len(v):>8}{percentile(v, 50):>9.0f}{percentile(v, 95):>9.0f}"
                f"{percentile(v, 99):>9.0f}{max(v):>9.0f}"
            )
    issued = len(run.issued)
    print(
        f"\nwall {wall:.0f} s; issued {issued} ({issued / wall:.1f}/s); "
        f"called {len(run.call_sent)}; HTTP errors {dict(run.errors) or 'none'}"
    )
    ok_numbers, numbers = check_numbers(url)
    checks = [
        (ok_numbers, f"numbers consecutive and unique per service and day: {numbers}"),
        (
            missing == 0 and twice == 0,
            f"every call on the display once: {len(lags)} of {len(run.call_sent)} "
            f"(missing {missing}, twice {twice})",
        ),
        (not run.errors, f"no HTTP errors: {sum(run.errors.values())}"),
    ]
    print("\ncorrectness")
    for ok, text in checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {text}")
    for name, goal in GOALS.items():
        v = run.times.get(name) or [float("inf")]
        p = percentile(v, 99 if name == "call → display" else 95)
        which = "p99" if name == "call → display" else "p95"
        print(
            f"{name} {which} goal < {goal:.0f} ms: {'met' if p < goal else 'NOT met'} ({p:.0f} ms)"
        )
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
