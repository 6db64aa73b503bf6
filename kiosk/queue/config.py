"""queue.yml: the queue services (a letter each, the windows that serve them, daily quotas)
and the rules (stop issuing before closing, priority fairness, re-queue after a no-show,
appointment slots), checked against the catalogue so a typo is named before the centre opens."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kiosk.errors import QueueConfigInvalid

WINDOW = re.compile(r"^[A-Z]\d{2}$")


@dataclass(frozen=True)
class Rules:
    last_ticket_minutes: int = 30
    priority_run: int = 3  # after this many priority calls in a row, a waiting regular one
    requeue_after_no_show: int = 1
    requeue_position: int = 3  # a re-queued number goes in at this place (2 ahead)
    slot_minutes: int = 60
    book_days_ahead: int = 7
    check_in_early_minutes: int = 30  # before the slot starts
    check_in_late_minutes: int = 15  # after the slot starts: later, the booking lapses


@dataclass(frozen=True)
class QueueService:
    code: str  # the number's letter: A012
    name: str
    department: str
    items: tuple[str, ...]
    windows: tuple[str, ...]
    walk_in_quota: int
    appointment_quota: int
    minutes: float  # a typical service time, until today's own times say better
    id_required: bool


@dataclass(frozen=True)
class QueueConfig:
    services: dict[str, QueueService]
    rules: Rules = field(default_factory=Rules)
    priority_groups: dict[str, str] = field(default_factory=dict)  # code -> name

    @property
    def windows(self) -> dict[str, tuple[str, ...]]:
        """Window -> the services it serves, in queue.yml order."""
        out: dict[str, list[str]] = {}
        for s in self.services.values():
            for w in s.windows:
                out.setdefault(w, []).append(s.code)
        return {w: tuple(codes) for w, codes in sorted(out.items())}

    def service_for_item(self, item_id: str) -> QueueService | None:
        return next((s for s in self.services.values() if item_id in s.items), None)

    @classmethod
    def load(
        cls, path: Path, departments: set[str] | None = None, items: set[str] | None = None
    ) -> QueueConfig:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise QueueConfigInvalid("(file)", f"{path} not found") from exc
        except yaml.YAMLError as exc:
            raise QueueConfigInvalid("(file)", f"not valid YAML: {exc}") from exc
        return cls.parse(data, departments, items)

    @classmethod
    def parse(
        cls, data: Any, departments: set[str] | None = None, items: set[str] | None = None
    ) -> QueueConfig:
        if not isinstance(data, dict):
            raise QueueConfigInvalid("(file)", "must be a mapping with services:")
        rules = _rules(data.get("rules") or {})
        groups: dict[str, str] = {}
        for i, g in enumerate(data.get("priority_groups") or []):
            if not isinstance(g, dict) or not g.get("code") or not g.get("name"):
                raise QueueConfigInvalid(f"priority_groups[{i}]", "needs code and name")
            groups[str(g["code"])] = str(g["name"])
        rows = data.get("services")
        if not isinstance(rows, list) or not rows:
            raise QueueConfigInvalid("services", "must be a non-empty list")
        services: dict[str, QueueService] = {}
        for i, row in enumerate(rows):
            service = _service(f"services[{i}]", row, departments, items)
            if service.code in services:
                raise QueueConfigInvalid(f"services[{i}].code", f"{service.code!r} is used twice")
            services[service.code] = service
        return cls(services, rules, groups)


def _rules(raw: Any) -> Rules:
    if not isinstance(raw, dict):
        raise QueueConfigInvalid("rules", "must be a mapping")
    known = Rules.__dataclass_fields__
    values: dict[str, int] = {}
    for key, value in raw.items():
        if key not in known:
            raise QueueConfigInvalid(f"rules.{key}", f"unknown rule (known: {', '.join(known)})")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise QueueConfigInvalid(f"rules.{key}", f"must be a whole number ≥ 0, not {value!r}")
        values[key] = value
    for key in ("slot_minutes", "priority_run", "requeue_position", "book_days_ahead"):
        if values.get(key) == 0:
            raise QueueConfigInvalid(f"rules.{key}", "must be at least 1")
    return Rules(**values)


def _service(
    where: str, row: Any, departments: set[str] | None, items: set[str] | None
) -> QueueService:
    if not isinstance(row, dict):
        raise QueueConfigInvalid(where, "must be a mapping")
    for key in ("code", "name", "department", "windows", "quota"):
        if key not in row:
            raise QueueConfigInvalid(f"{where}.{key}", "is missing")
    code = str(row["code"])
    if not re.fullmatch(r"[A-Z]", code):
        raise QueueConfigInvalid(f"{where}.code", f"must be one capital letter, not {code!r}")
    if departments is not None and row["department"] not in departments:
        raise QueueConfigInvalid(f"{where}.department", f"{row['department']!r} not in centre.yml")
    service_items = tuple(str(x) for x in row.get("items") or [])
    unknown = [x for x in service_items if items is not None and x not in items]
    if unknown:
        raise QueueConfigInvalid(f"{where}.items", f"not in catalog.yml: {unknown}")
    windows = row["windows"]
    if not isinstance(windows, list) or not windows:
        raise QueueConfigInvalid(f"{where}.windows", "must be a non-empty list")
    bad = [w for w in windows if not WINDOW.fullmatch(str(w))]
    if bad:
        raise QueueConfigInvalid(f"{where}.windows", f"windows look like A01, not {bad}")
    quota = row["quota"]
    if not isinstance(quota, dict) or set(quota) != {"walk_in", "appointment"}:
        raise QueueConfigInvalid(f"{where}.quota", "must be {walk_in: N, appointment: N}")
    for kind, n in quota.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise QueueConfigInvalid(f"{where}.quota.{kind}", f"must be a whole number, not {n!r}")
    if quota["walk_in"] + quota["appointment"] > 999:
        raise QueueConfigInvalid(f"{where}.quota", "at most 999 numbers a day (three digits)")
    minutes = row.get("minutes", 10)
    if not isinstance(minutes, int | float) or minutes <= 0:
        raise QueueConfigInvalid(f"{where}.minutes", f"must be positive, not {minutes!r}")
    return QueueService(
        code=code,
        name=str(row["name"]),
        department=str(row["department"]),
        items=service_items,
        windows=tuple(str(w) for w in windows),
        walk_in_quota=int(quota["walk_in"]),
        appointment_quota=int(quota["appointment"]),
        minutes=float(minutes),
        id_required=bool(row.get("id_required", False)),
    )
