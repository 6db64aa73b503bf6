"""Starting, running and stopping the simulated clients together."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.load.clients import (
    Agent,
    ChatUser,
    Clerk,
    Config,
    Context,
    Kiosk,
    Ledger,
    addresses,
    questions,
)
from bench.load.invariants import Findings, examine
from bench.load.metrics import Metrics
from bench.load.staff import agent_accounts, clerk_accounts


@dataclass
class LoadResult:
    metrics: Metrics
    ledger: Ledger
    started: float  # monotonic: the clients' start and the end of the load (before draining)
    stopped: float
    findings: Findings | None = None  # with database_url
    loop_lag_ms: list[float] = field(default_factory=list)

    @property
    def violations(self) -> list[str]:
        return self.findings.violations if self.findings else []

    def table(self) -> str:
        return self.metrics.window(self.started, self.stopped, "whole run").table(self.started)

    def report(self) -> str:
        """The table, the counts, the marks and (if checked) the invariants."""
        from bench._common import percentile

        led = self.ledger
        lines = [self.table(), ""]
        acked = led.acked_replies()
        delivered = sum(1 for r in acked if led.deliveries.get(r.marker))
        lines.append(
            f"acknowledged: {len(led.tickets)} tickets, {len(led.calls)} calls, "
            f"{len(led.chat_acks)} chat messages ({len(led.chat_unacked)} given up), "
            f"{len(acked)} agent replies ({delivered} delivered), "
            f"{len(led.chats_closed)} chats closed; WebSocket reconnects "
            f"{sum(led.reconnects.values())} by {len(led.reconnects)} residents"
            + (f", close codes {dict(led.close_codes)}" if led.close_codes else "")
        )
        if self.loop_lag_ms:
            lag = self.loop_lag_ms
            lines.append(
                f"load generator's own event-loop lag: p50 {percentile(lag, 50):.0f} ms, "
                f"p99 {percentile(lag, 99):.0f} ms, max {max(lag):.0f} ms "
                "(high values mean the generator, not the server, is slow)"
            )
        for at, label in self.metrics.marks:
            lines.append(f"mark {at - self.started:+.1f} s: {label}")
        if self.findings is not None:
            lines += ["", self.findings.summary()]
            lines += [f"  VIOLATION: {v}" for v in self.findings.violations]
            lines += [f"  note: {n}" for n in self.findings.notes]
        return "\n".join(lines)


class Load:
    """The clients of one run. ``start()`` logs the staff in and sets everyone going;
    ``stop()`` stops new work, lets what is pending finish and the last pushes arrive
    (``drain_s``), and closes everything. ``metrics.mark(label)`` notes a moment (a fault)."""

    def __init__(
        self,
        base_url: str,
        users: int = 200,
        kiosks: int = 20,
        counters: int = 30,
        agents: int = 5,
        *,
        agent_users: Sequence[tuple[str, str]] | None = None,
        counter_users: Sequence[tuple[str, str]] | None = None,
        config: Config | None = None,
        address_base: str = "127.0.10.1",
        ramp_s: float = 10.0,
        drain_s: float = 8.0,
        seed: int = 1,
        windows: Sequence[str] | None = None,
        planned_s: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.config = config or Config()
        self.metrics = Metrics()
        self.ledger = Ledger(run_id=secrets.token_hex(3))
        self.ctx = Context(self.base_url, self.config, self.metrics, self.ledger)
        self.counts = {"users": users, "kiosks": kiosks, "counters": counters, "agents": agents}
        self.agent_users = list(agent_users or agent_accounts(agents))[:agents]
        self.counter_users = list(counter_users or clerk_accounts(counters))[:counters]
        if len(self.agent_users) < agents or len(self.counter_users) < counters:
            raise ValueError("fewer accounts than agents or counters")
        self.address_base, self.ramp_s, self.drain_s = address_base, ramp_s, drain_s
        self.rng = random.Random(seed)
        self.windows = list(windows) if windows else None
        self.planned_s = planned_s  # escalations happen in its first 60 %
        self.users: list[ChatUser] = []
        self.agents: list[Agent] = []
        self.kiosks: list[Kiosk] = []
        self.clerks: list[Clerk] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._user_tasks: list[asyncio.Task[None]] = []
        self._lag: list[float] = []
        self._lag_task: asyncio.Task[None] | None = None
        self.started = self.stopped = 0.0

    def mark(self, label: str) -> float:
        return self.metrics.mark(label)

    async def _pick_windows(self, count: int) -> list[str]:
        """Windows spread over the services (round-robin), so each service is served."""
        if self.windows:
            return self.windows[:count]
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10, trust_env=False) as c:
            rows = (await c.get("/api/kiosk/windows")).raise_for_status().json()
        by_service: dict[str, list[str]] = {}
        for row in rows:
            first = row["services"][0]["code"] if row["services"] else ""
            by_service.setdefault(first, []).append(row["window"])
        picked: list[str] = []
        while len(picked) < count and any(by_service.values()):
            for ws in by_service.values():
                if ws and len(picked) < count:
                    picked.append(ws.pop(0))
        if len(picked) < count:
            raise ValueError(f"only {len(picked)} counter windows in queue.yml, {count} asked")
        return picked

    async def start(self) -> None:
        n = self.counts
        total = n["users"] + n["kiosks"] + n["counters"] + n["agents"]
        addr = iter(addresses(self.address_base, total))
        pool = questions()
        windows = await self._pick_windows(n["counters"])
        self.ledger.t0 = self.started = time.monotonic()
        self.metrics.started = self.started
        self._lag_task = asyncio.create_task(self._lag_monitor())
        self.agents = [
            Agent(self.ctx, i, next(addr), u, p) for i, (u, p) in enumerate(self.agent_users)
        ]
        self.clerks = [
            Clerk(self.ctx, w, next(addr), u, p)
            for w, (u, p) in zip(windows, self.counter_users, strict=True)
        ]
        self.kiosks = [Kiosk(self.ctx, i, next(addr)) for i in range(n["kiosks"])]
        self.users = [
            ChatUser(
                self.ctx,
                i,
                next(addr),
                pool,
                None,  # set when it starts
                random.Random(self.rng.random()),
            )
            for i in range(n["users"])
        ]
        self._tasks = [asyncio.create_task(a.run()) for a in self.agents]
        self._tasks += [asyncio.create_task(c.run()) for c in self.clerks]
        self._tasks += [asyncio.create_task(k.run()) for k in self.kiosks]
        escalating = set(self.rng.sample(range(len(self.users)), self._escalators()))
        self._user_tasks = [
            asyncio.create_task(self._user(u, i in escalating)) for i, u in enumerate(self.users)
        ]

    def _escalators(self) -> int:
        return round(len(self.users) * self.config.escalate_share)

    async def _user(self, user: ChatUser, escalates: bool) -> None:
        await asyncio.sleep(self.rng.uniform(0, self.ramp_s))  # residents do not start in step
        if escalates:
            user.escalate_at = time.monotonic() + self.rng.uniform(5, max(self.planned_s * 0.6, 6))
        await user.run()

    async def _lag_monitor(self) -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(0.1)
            self._lag.append((time.monotonic() - t0 - 0.1) * 1000)

    async def stop(self) -> None:
        self.stopped = time.monotonic()
        self.ctx.stopping.set()
        # staff and kiosks finish the step they are in; residents wait for pending answers
        await asyncio.gather(*self._tasks, *self._user_tasks, return_exceptions=True)
        await asyncio.sleep(self.drain_s)  # the last agent replies reach the widgets
        await asyncio.gather(
            *(a.finish() for a in self.agents),
            *(c.finish() for c in self.clerks),
            *(k.finish() for k in self.kiosks),
            return_exceptions=True,
        )
        await asyncio.gather(*(u.close() for u in self.users), return_exceptions=True)
        if self._lag_task is not None:
            self._lag_task.cancel()
        crashed = [
            t.exception()
            for t in [*self._tasks, *self._user_tasks]
            if t.done() and not t.cancelled() and t.exception() is not None
        ]
        if crashed:
            raise RuntimeError(f"{len(crashed)} simulated clients crashed: {crashed[:3]!r}")

    def result(self) -> LoadResult:
        return LoadResult(self.metrics, self.ledger, self.started, self.stopped, None, self._lag)


async def run(
    base_url: str,
    duration_s: float,
    users: int = 200,
    kiosks: int = 20,
    counters: int = 30,
    agents: int = 5,
    *,
    scenario: Callable[[Load], Awaitable[Any]] | None = None,
    database_url: str | None = None,
    chat_max_chars: int = 300,
    **options: Any,
) -> LoadResult:
    """Run the load for ``duration_s`` seconds against ``base_url`` (nginx, or one API).

    ``scenario(load)`` runs alongside (the faults: ``t = load.mark("kill api-1")``, kill,
    wait, restart…); the load lasts ``duration_s`` or until the scenario ends, whichever is
    later. With ``database_url`` (the PostgreSQL the API uses) the invariants are checked
    afterwards (``result.findings``). ``options``: :class:`Load`'s keywords (``config``,
    ``agent_users``, ``counter_users``, ``address_base``, ``ramp_s``, ``drain_s``,
    ``seed``, ``windows``, ``planned_s``).
    """
    options.setdefault("planned_s", duration_s)
    load = Load(base_url, users, kiosks, counters, agents, **options)
    await load.start()
    try:
        timer = asyncio.create_task(asyncio.sleep(duration_s))
        if scenario is not None:
            await scenario(load)
        await timer
    finally:
        await load.stop()
    result = load.result()
    if database_url:
        result.findings = await asyncio.to_thread(
            examine, database_url, load.ledger, chat_max_chars
        )
    return result
