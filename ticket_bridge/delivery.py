"""Delivering the outbox: each pending event is POSTed, signed, to its target's URL.

At-least-once, never at-most-once: an event is marked delivered only after its target
answered 2xx, so a crash (or a lost database connection) between the answer and the marking
sends it again later. Receivers must dedupe on ``event_id`` (it is in the body and in the
``X-Banshi-Event-Id`` header).

Several processes may deliver from the same database. An event is claimed by a guarded
UPDATE that sets a lease (``lease_until``); only the process whose UPDATE changed the row
sends it, and it records the outcome only while it still holds that lease. A process that
dies mid-send leaves a lease that simply runs out.

Order: per target, only the oldest pending event of each ticket is eligible, so a ticket's
events arrive in the order they happened; one failing event holds back the later events of
its ticket (for that target only) until it is delivered or given up as ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import func, or_, select, update

from banshi.db import Database
from ticket_bridge.models import OutboxEvent, now_utc
from ticket_bridge.outbox import Target
from ticket_bridge.signing import sign

if TYPE_CHECKING:
    from banshi.settings import Settings

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
BACKOFF_FIRST_S = 2.0
BACKOFF_CAP_S = 3600.0
JITTER = 0.2  # ±20 %: processes that failed together do not all retry in the same second
ERROR_CHARS = 200
USER_AGENT = "banshi-outbox/1"


def targets_from(settings: Settings) -> tuple[Target, ...]:
    """The outgoing webhooks configured in ``BANSHI_BRIDGE_TARGETS`` (validated there)."""
    return tuple(Target(t["name"], t["url"], t["secret"]) for t in settings.bridge_targets)


def backoff(attempts: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 2, 4, 8 … capped at 1 h."""
    base = BACKOFF_FIRST_S * 2.0 ** min(max(attempts, 1) - 1, 20)
    return min(base * (1.0 - JITTER + 2.0 * JITTER * rand()), BACKOFF_CAP_S)


@dataclass(frozen=True)
class _Claim:
    id: int
    event_id: str
    event: str
    target: Target
    payload: dict[str, Any]
    attempts: int
    lease: dt.datetime  # our lease: the outcome is written only while the row still has it


class OutboxDelivery:
    """Sends due outbox events. ``run`` is the loop for the app's lifespan; ``deliver_due``
    is one pass (tests and the CLI call it directly)."""

    def __init__(
        self,
        db: Database,
        targets: tuple[Target, ...],
        client: httpx.AsyncClient | None = None,
        max_attempts: int = 20,
        *,
        timeout_s: float = TIMEOUT_S,
        lease_s: float | None = None,
    ) -> None:
        self.db = db
        self.targets = {t.name: t for t in targets}
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        # well beyond a request's timeout, so a live send never loses its lease to another
        # process; a dead process's events wait this long before they are sent again
        self.lease = dt.timedelta(seconds=lease_s or max(60.0, 3 * timeout_s))
        self._given = client
        self._active: httpx.AsyncClient | None = None  # ours, while ``run`` runs

    # -- one pass --------------------------------------------------------------------------
    async def deliver_due(self, limit: int = 50) -> int:
        """Claim up to ``limit`` due events, send them, record the outcomes. Returns how many
        were delivered. Database errors propagate (``run`` logs them); HTTP errors do not."""
        if not self.targets:
            return 0
        claims = await asyncio.to_thread(self._claim, limit)
        if not claims:
            return 0
        async with self._client() as client:
            # at most one event per ticket and target is claimed, so sending them all at
            # once keeps each ticket's order; a slow target costs one timeout, not fifty
            errors = await asyncio.gather(*(self._send(client, c) for c in claims))
        outcomes = list(zip(claims, errors, strict=True))
        await asyncio.to_thread(self._record, outcomes)
        return sum(1 for e in errors if e is None)

    def _claim(self, limit: int) -> list[_Claim]:
        now = now_utc()
        lease = now + self.lease
        pending = OutboxEvent.status == "pending"
        lease_free = or_(OutboxEvent.lease_until.is_(None), OutboxEvent.lease_until < now)
        due = (pending, OutboxEvent.next_at <= now, lease_free)
        # the oldest pending event of each (target, ticket): a leased or backing-off head
        # holds back the later events of its ticket
        number = OutboxEvent.payload[("ticket", "number")].as_string()
        heads = (
            select(func.min(OutboxEvent.id))
            .where(pending, OutboxEvent.target.in_(list(self.targets)))
            .group_by(OutboxEvent.target, number)
        )
        claimed: list[_Claim] = []
        with self.db.session() as s:
            # more candidates than we take: those another process claims first are skipped
            ids = s.scalars(
                select(OutboxEvent.id)
                .where(OutboxEvent.id.in_(heads), *due)
                .order_by(OutboxEvent.id)
                .limit(limit * 4)
            ).all()
            for event_id in ids:  # in id order: concurrent claimers lock rows in one order
                if len(claimed) >= limit:
                    break
                won = s.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.id == event_id, *due)
                    .values(lease_until=lease)
                    .execution_options(synchronize_session=False)
                )
                if _rowcount(won) != 1:
                    continue  # another process was first
                row = s.execute(
                    select(
                        OutboxEvent.event_id,
                        OutboxEvent.event,
                        OutboxEvent.target,
                        OutboxEvent.payload,
                        OutboxEvent.attempts,
                    ).where(OutboxEvent.id == event_id)
                ).one()
                claimed.append(
                    _Claim(
                        event_id,
                        row.event_id,
                        row.event,
                        self.targets[row.target],
                        row.payload,
                        row.attempts,
                        lease,
                    )
                )
        return claimed

    async def _send(self, client: httpx.AsyncClient, claim: _Claim) -> str | None:
        """None when the target took the event, else a short description of why not."""
        body = json.dumps(claim.payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "X-Banshi-Event": claim.event,
            "X-Banshi-Event-Id": claim.event_id,
            **sign(claim.target.secret, body),
        }
        try:
            r = await client.post(
                claim.target.url, content=body, headers=headers, timeout=self.timeout_s
            )
        except Exception as exc:  # any failure to talk to the target is a failed attempt
            return _short(f"{type(exc).__name__}: {exc}")
        if 200 <= r.status_code < 300:
            return None
        said = r.text.strip()
        return _short(f"HTTP {r.status_code}: {said}" if said else f"HTTP {r.status_code}")

    def _record(self, outcomes: list[tuple[_Claim, str | None]]) -> None:
        now = now_utc()
        with self.db.session() as s:
            for claim, error in outcomes:
                attempts = claim.attempts + 1
                values: dict[str, Any] = {"attempts": attempts, "lease_until": None}
                if error is None:
                    values.update(status="delivered", delivered_at=now)
                elif attempts >= self.max_attempts:
                    values.update(status="failed", last_error=error)
                    log.warning(
                        "outbox event %s to %s failed for good after %d attempts: %s",
                        claim.event_id,
                        claim.target.name,
                        attempts,
                        error,
                    )
                else:
                    delay = dt.timedelta(seconds=backoff(attempts))
                    values.update(last_error=error, next_at=now + delay)
                still_ours = s.execute(
                    update(OutboxEvent)
                    .where(
                        OutboxEvent.id == claim.id,
                        OutboxEvent.status == "pending",
                        OutboxEvent.lease_until == claim.lease,
                    )
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                if _rowcount(still_ours) != 1:
                    # the lease ran out mid-send and another process took the event over:
                    # its outcome stands (the target may see the event twice: at-least-once)
                    log.warning("outbox event %s: lease lost while sending", claim.event_id)

    # -- the loop --------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, interval_s: float = 1.0) -> None:
        """Deliver until ``stop`` is set. Never raises: a database that is away is logged and
        tried again, waiting longer each time (up to a minute)."""
        failures = 0
        async with self._client() as client:
            self._active = client
            try:
                while not stop.is_set():
                    delivered = 0
                    try:
                        delivered = await self.deliver_due()
                        failures = 0
                    except Exception:
                        failures += 1
                        log.exception("outbox delivery failed (%d in a row); retrying", failures)
                    if delivered:
                        continue  # progress: the next events of those tickets are due now
                    wait = min(interval_s * 2.0 ** min(failures, 6), 60.0)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), wait)
            finally:
                self._active = None

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        """The given client, the loop's, or one for this pass (closed after it)."""
        existing = self._given or self._active
        if existing is not None:
            yield existing
            return
        async with httpx.AsyncClient(follow_redirects=False, timeout=self.timeout_s) as client:
            yield client


def retry_failed(db: Database, target: str | None = None) -> int:
    """Give failed events (of one target, or all) a fresh set of attempts, due now."""
    stmt = update(OutboxEvent).where(OutboxEvent.status == "failed")
    if target:
        stmt = stmt.where(OutboxEvent.target == target)
    stmt = stmt.values(status="pending", attempts=0, next_at=now_utc(), lease_until=None)
    with db.session() as s:
        return _rowcount(s.execute(stmt.execution_options(synchronize_session=False)))


def outbox_report(db: Database, target: str | None = None, errors: int = 10) -> dict[str, Any]:
    """Counts by target and status, and the newest errors of events not yet delivered."""
    counts: dict[str, dict[str, int]] = {}
    with db.session() as s:
        stmt = select(OutboxEvent.target, OutboxEvent.status, func.count(OutboxEvent.id))
        if target:
            stmt = stmt.where(OutboxEvent.target == target)
        for name, status, n in s.execute(stmt.group_by(OutboxEvent.target, OutboxEvent.status)):
            counts.setdefault(name, {"pending": 0, "delivered": 0, "failed": 0})[status] = n
        failing = select(OutboxEvent).where(
            OutboxEvent.status.in_(("pending", "failed")), OutboxEvent.last_error != ""
        )
        if target:
            failing = failing.where(OutboxEvent.target == target)
        failing = failing.order_by(OutboxEvent.id.desc()).limit(errors)
        last_errors = [
            {
                "id": e.id,
                "event_id": e.event_id,
                "target": e.target,
                "event": e.event,
                "ticket": (e.payload.get("ticket") or {}).get("number"),
                "status": e.status,
                "attempts": e.attempts,
                "next_at": _aware(e.next_at).isoformat(),
                "error": e.last_error,
            }
            for e in s.scalars(failing)
        ]
    return {"counts": counts, "last_errors": last_errors}


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _rowcount(result: Any) -> int:
    return int(result.rowcount)
