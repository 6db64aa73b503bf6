"""The lobby's figures for supervisors (issue 9's statistics), read from the queue's own
tickets: no second record is kept. Over a range of the centre's days, optionally one
service: numbers issued (walk-in / appointment), served, no-shows, waiting and service time
distributions per service and per window, and tickets issued per hour of the day.

- waiting time: from joining the queue (``queued_at``; a re-queue after a no-show joins
  again) to the call (``called_at``), for every ticket that was called;
- service time: from the start of service (``started_at``) to ``finished_at``, for tickets
  served (``done``);
- no-show rate: tickets that ended as ``no_show`` among those called and ended (``done`` or
  ``no_show``).

Rows are read for the range and counted here: portable across SQLite and PostgreSQL, and a
day of a busy centre is a few thousand rows. A year's dashboard wants daily rollups.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.queue.models import QueueTicket

# minutes: the edges of the distributions' bars (the last bar is "60 and more")
EDGES_MIN = (0, 5, 10, 15, 20, 30, 45, 60)


@dataclass
class Distribution:
    """Durations in seconds: how many, percentiles, and counts per bar of ``EDGES_MIN``."""

    seconds: list[float] = field(default_factory=list)

    def add(self, start: dt.datetime | None, end: dt.datetime | None) -> None:
        if start is not None and end is not None and end >= start:
            self.seconds.append((end - start).total_seconds())

    def view(self) -> dict[str, Any]:
        ordered = sorted(self.seconds)
        bars = [0] * len(EDGES_MIN)
        for s in ordered:
            bars[sum(1 for e in EDGES_MIN[1:] if s >= e * 60)] += 1
        labels = [f"{a}–{b}" for a, b in pairwise(EDGES_MIN)]
        return {
            "n": len(ordered),
            "p50_min": _minutes(_rank(ordered, 0.5)),
            "p90_min": _minutes(_rank(ordered, 0.9)),
            "mean_min": _minutes(sum(ordered) / len(ordered)) if ordered else None,
            "bars": [
                {"minutes": label, "count": n}
                for label, n in zip([*labels, f"{EDGES_MIN[-1]}+"], bars, strict=True)
            ],
        }


def _rank(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile (a value that occurred)."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered) - 1e-9) - 1)]


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


@dataclass
class _Group:
    issued: Counter[str] = field(default_factory=Counter)  # by kind
    ended: Counter[str] = field(default_factory=Counter)  # by final status
    waiting: Distribution = field(default_factory=Distribution)
    service: Distribution = field(default_factory=Distribution)

    def view(self) -> dict[str, Any]:
        served, missed = self.ended["done"], self.ended["no_show"]
        return {
            "issued": sum(self.issued.values()),
            "walk_in": self.issued["walk_in"],
            "appointment": self.issued["appointment"],
            "served": served,
            "no_show": missed,
            "no_show_rate": round(missed / (served + missed), 3) if served + missed else None,
            "waiting": self.waiting.view(),
            "service_time": self.service.view(),
        }


def queue_stats(
    session: Session, since: dt.date, until: dt.date, tz: ZoneInfo, service: str | None = None
) -> dict[str, Any]:
    """The figures for the centre's days [since, until]; ``service``: one queue letter."""
    query = select(
        QueueTicket.service,
        QueueTicket.kind,
        QueueTicket.status,
        QueueTicket.window,
        QueueTicket.issued_at,
        QueueTicket.queued_at,
        QueueTicket.called_at,
        QueueTicket.started_at,
        QueueTicket.finished_at,
    ).where(QueueTicket.day >= since, QueueTicket.day <= until)
    if service:
        query = query.where(QueueTicket.service == service)
    total = _Group()
    by_service: defaultdict[str, _Group] = defaultdict(_Group)
    by_window: defaultdict[str, _Group] = defaultdict(_Group)
    hours: Counter[int] = Counter()
    for code, kind, status, window, issued, queued, called, started, finished in session.execute(
        query
    ):
        groups = [total, by_service[code]] + ([by_window[window]] if window else [])
        for g in groups:
            g.issued[kind] += 1
            g.ended[status] += 1
            g.waiting.add(queued, called)
            if status == "done":
                g.service.add(started, finished)
        hours[issued.astimezone(tz).hour] += 1
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "service": service,
        "total": total.view(),
        "services": {code: g.view() for code, g in sorted(by_service.items())},
        "windows": {w: g.view() for w, g in sorted(by_window.items())},
        "hours": [{"hour": h, "issued": hours[h]} for h in range(24) if hours[h]],
        "busiest_hour": max(hours, key=lambda h: (hours[h], -h)) if hours else None,
    }
