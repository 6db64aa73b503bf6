"""Builders for the queue's tests: the sample queue.yml on the sample centre's calendar, a
desk on a given database, moments in the centre's time zone, and valid ID numbers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from banshi.settings import SAMPLE_KB_DIR
from banshi.workcal import WorkCalendar
from kiosk.queue.config import QueueConfig
from kiosk.queue.engine import QueueDesk
from kiosk.queue.idcard import check_digit

TZ = ZoneInfo("Asia/Shanghai")
MONDAY = dt.date(2026, 12, 7)  # a working day in the sample calendar


def at(hhmm: str, day: dt.date = MONDAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm), TZ)


def id_number(born: str = "19850312", region: str = "110105", serial: str = "123") -> str:
    """A valid 18-digit ID number (check digit computed) for someone born on ``born``."""
    body = region + born + serial
    return body + check_digit(body)


def sample_config(**rule_overrides: Any) -> QueueConfig:
    data = yaml.safe_load((SAMPLE_KB_DIR / "queue.yml").read_text(encoding="utf-8"))
    data["rules"].update(rule_overrides)
    return QueueConfig.parse(data)


def sample_calendar() -> WorkCalendar:
    centre = yaml.safe_load(Path(SAMPLE_KB_DIR / "centre.yml").read_text(encoding="utf-8"))
    return WorkCalendar.from_config(centre["opening"])


def make_desk(db: Any, **rule_overrides: Any) -> QueueDesk:
    return QueueDesk(
        db,
        sample_config(**rule_overrides),
        sample_calendar(),
        secret="test-secret-for-id-hashes",
        department_names={"police": "公安分局", "hrss": "人力资源和社会保障局"},
    )
