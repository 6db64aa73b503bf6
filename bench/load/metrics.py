"""Timings and outcomes of every simulated request, on this process's monotonic clock.

A sample is one operation (``kiosk.take``, ``chat.ws_reply``…): when it started and ended
and how it came out: ``ok``, ``refused:<reason>`` (the server answered and said no, as it
should: nobody waiting at a counter, a chat already taken) or an error kind (the HTTP status
as text, ``"503"``, or the exception's name, ``"ConnectError"``). Latency percentiles are over
answered requests (ok and refused); errors are counted by kind, with their times, so that a
fault's window can be cut out (:meth:`Metrics.window`) and the recovery after it measured
(:meth:`Metrics.recovery`). Events (a WebSocket reconnect, a duplicate push) are counted with
their times too.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from bench._common import percentile

OK = "ok"
REFUSED = "refused:"


def is_error(outcome: str) -> bool:
    return outcome != OK and not outcome.startswith(REFUSED)


@dataclass(frozen=True)
class Sample:
    op: str
    start: float  # time.monotonic()
    end: float
    outcome: str

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000


@dataclass
class OpStats:
    op: str
    n: int = 0
    ok: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    p50: float = float("nan")
    p95: float = float("nan")
    p99: float = float("nan")
    max: float = float("nan")
    rate: float = 0.0  # answered per second over the window

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass
class Recovery:
    """How an operation fared after a fault at ``fault_at`` (seconds are from the fault)."""

    op: str
    errors: int  # error samples that ended within the horizon
    first_error_s: float | None
    last_error_s: float | None
    # the first answered request that ended after the last error: the service is back
    first_ok_after_s: float | None
    kinds: Counter[str] = field(default_factory=Counter)

    @property
    def affected(self) -> bool:
        return self.errors > 0

    @property
    def recovered(self) -> bool:
        return not self.affected or self.first_ok_after_s is not None


class Snapshot:
    """The samples and events of one time window."""

    def __init__(
        self,
        samples: list[Sample],
        events: list[tuple[float, str]],
        since: float,
        until: float,
        label: str = "",
    ) -> None:
        self.samples, self.events = samples, events
        self.since, self.until, self.label = since, until, label

    @property
    def seconds(self) -> float:
        return max(self.until - self.since, 1e-9)

    def stats(self) -> dict[str, OpStats]:
        by: dict[str, list[Sample]] = defaultdict(list)
        for s in self.samples:
            by[s.op].append(s)
        out: dict[str, OpStats] = {}
        for op in sorted(by):
            st = OpStats(op, n=len(by[op]))
            answered: list[float] = []
            for s in by[op]:
                if s.outcome == OK:
                    st.ok += 1
                    answered.append(s.ms)
                elif s.outcome.startswith(REFUSED):
                    st.refused[s.outcome[len(REFUSED) :]] += 1
                    answered.append(s.ms)
                else:
                    st.errors[s.outcome] += 1
            if answered:
                st.p50, st.p95 = percentile(answered, 50), percentile(answered, 95)
                st.p99, st.max = percentile(answered, 99), max(answered)
            st.rate = len(answered) / self.seconds
            out[op] = st
        return out

    def event_counts(self) -> Counter[str]:
        return Counter(name for _, name in self.events)

    def error_times(self, op: str | None = None) -> list[tuple[float, str, str]]:
        """(end time, operation, kind) of each error, oldest first."""
        return sorted(
            (s.end, s.op, s.outcome)
            for s in self.samples
            if is_error(s.outcome) and (op is None or s.op == op)
        )

    def table(self, origin: float | None = None) -> str:
        """A plain-text table: one row per operation, then the events."""
        origin = self.since if origin is None else origin
        title = self.label or "window"
        lines = [
            f"{title}: {self.since - origin:+.1f} s to {self.until - origin:+.1f} s "
            f"({self.seconds:.1f} s)",
            f"{'operation':<22}{'n':>7}{'ok':>7}{'refused':>8}{'errors':>7}{'/s':>7}"
            f"{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}  errors by kind; refusals",
        ]
        for st in self.stats().values():
            kinds = ", ".join(f"{k} {v}" for k, v in st.errors.most_common())
            refusals = ", ".join(f"{k} {v}" for k, v in st.refused.most_common())
            notes = "; ".join(x for x in (kinds, refusals and f"refused: {refusals}") if x)
            lines.append(
                f"{st.op:<22}{st.n:>7}{st.ok:>7}{sum(st.refused.values()):>8}"
                f"{st.error_count:>7}{st.rate:>7.1f}{_ms(st.p50)}{_ms(st.p95)}{_ms(st.p99)}"
                f"{_ms(st.max)}  {notes}".rstrip()
            )
        events = self.event_counts()
        if events:
            lines.append("events: " + ", ".join(f"{k} {v}" for k, v in sorted(events.items())))
        return "\n".join(lines)


def _ms(value: float) -> str:
    return f"{'-':>8}" if value != value else f"{value:>8.0f}"  # NaN: no answered sample


class Metrics:
    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.events: list[tuple[float, str]] = []
        self.marks: list[tuple[float, str]] = []
        self.started = time.monotonic()

    # -- recording -------------------------------------------------------------------------
    def record(self, op: str, start: float, outcome: str = OK, end: float | None = None) -> None:
        self.samples.append(Sample(op, start, time.monotonic() if end is None else end, outcome))

    def ok(self, op: str, start: float, end: float | None = None) -> None:
        self.record(op, start, OK, end)

    def refused(self, op: str, start: float, reason: str) -> None:
        self.record(op, start, REFUSED + reason)

    def error(self, op: str, start: float, kind: str, end: float | None = None) -> None:
        self.record(op, start, kind, end)

    def event(self, name: str, at: float | None = None) -> None:
        self.events.append((time.monotonic() if at is None else at, name))

    def mark(self, label: str) -> float:
        """A named moment (e.g. "kill api-1"); returns it, for :meth:`window` and
        :meth:`recovery`."""
        at = time.monotonic()
        self.marks.append((at, label))
        return at

    # -- reading ---------------------------------------------------------------------------
    def window(
        self, since: float | None = None, until: float | None = None, label: str = ""
    ) -> Snapshot:
        """Samples that ended in [since, until) and events in it (monotonic times)."""
        lo = self.started if since is None else since
        hi = time.monotonic() if until is None else until
        return Snapshot(
            [s for s in self.samples if lo <= s.end < hi],
            [e for e in self.events if lo <= e[0] < hi],
            lo,
            hi,
            label,
        )

    def recovery(
        self, fault_at: float, horizon_s: float = 120.0, ops: Iterable[str] | None = None
    ) -> dict[str, Recovery]:
        """Per operation, after a fault at ``fault_at``: the errors that ended within
        ``horizon_s`` and the first answered request to end after the last of them."""
        until = fault_at + horizon_s
        chosen = set(ops) if ops is not None else {s.op for s in self.samples}
        out: dict[str, Recovery] = {}
        for op in sorted(chosen):
            mine = [s for s in self.samples if s.op == op and fault_at <= s.end < until]
            errors = [s for s in mine if is_error(s.outcome)]
            if not errors:
                out[op] = Recovery(op, 0, None, None, None)
                continue
            last = max(s.end for s in errors)
            after = [s.end for s in mine if not is_error(s.outcome) and s.end > last]
            out[op] = Recovery(
                op,
                len(errors),
                min(s.end for s in errors) - fault_at,
                last - fault_at,
                (min(after) - fault_at) if after else None,
                Counter(s.outcome for s in errors),
            )
        return out

    def recovered_after(self, fault_at: float, horizon_s: float = 120.0) -> float | None:
        """Seconds from the fault until each of the operations the clients keep retrying
        (``RETRIED``) that failed had answered again: the service is back (0.0 if none
        failed; None if one never answered again within the horizon). Others are left out:
        asked only after errors (counter.state) or seldom (chat.ws_reply waits for a
        resident's next message), their "back at" says more about the clients."""
        rows = [r for r in self.recovery(fault_at, horizon_s, RETRIED).values() if r.affected]
        if any(r.first_ok_after_s is None for r in rows):
            return None
        return max((r.first_ok_after_s or 0.0 for r in rows), default=0.0)

    def recovery_table(self, fault_at: float, horizon_s: float = 120.0, label: str = "") -> str:
        rows = self.recovery(fault_at, horizon_s)
        lines = [
            f"recovery after {label or 'the fault'} (seconds from it; horizon {horizon_s:.0f} s)",
            f"{'operation':<22}{'errors':>7}{'first':>8}{'last':>8}{'back at':>9}  kinds",
        ]
        for r in rows.values():
            if not r.affected:
                continue
            # nothing answered after the last error: still failing, or simply not asked again
            back = f"{r.first_ok_after_s:>9.1f}" if r.first_ok_after_s is not None else "        -"
            kinds = ", ".join(f"{k} {v}" for k, v in r.kinds.most_common())
            lines.append(
                f"{r.op:<22}{r.errors:>7}{r.first_error_s or 0:>8.1f}{r.last_error_s or 0:>8.1f}"
                f"{back}  {kinds}"
            )
        if len(lines) == 2:
            lines.append("(no operation had errors)")
        else:
            total = self.recovered_after(fault_at, horizon_s)
            lines.append(
                "service back (every retried operation answered again): "
                + (f"{total:.1f} s after it" if total is not None else "NOT within the horizon")
                + "; '-': no answer after its last error (still failing, or not asked again)"
            )
        return "\n".join(lines)


# operations the clients keep doing, or retry until answered, whatever happens: when one of
# these has not answered again, the service has not recovered
RETRIED = (
    "agent.poll",
    "chat.connect",
    "chat.rest",
    "chat.send",
    "counter.call_next",
    "counter.complete",
    "kiosk.take",
)
