"""The chat tells how long today's queue is for the service asked about (while the hall is
issuing numbers), from the same queue the kiosks use."""

from __future__ import annotations

from typing import Any

from queue_builders import at, id_number, make_desk

from assistant import skills
from assistant.skills import Deps
from banshi.db import Database
from banshi.workcal import WorkCalendar


def deps_with_queue(db: Database, kb: Any, desk: Any) -> Deps:
    calendar = WorkCalendar.from_config(kb.catalog.centre.get("opening"))
    return Deps(settings=kb.settings, db=db, kb=kb, calendar=calendar, queue=desk)


def test_take_number_says_how_many_wait_while_the_hall_is_open(
    shared_hashing_kb: Any, db: Database
) -> None:
    desk = make_desk(db)
    desk.clock = lambda: at("10:00")
    deps = deps_with_queue(db, shared_hashing_kb, desk)
    [empty] = skills.take_number(deps, "residence-permit")
    assert "号码以A开头。现在不用排队。" in empty["text"]
    for i in range(3):
        desk.issue("A", id_number=id_number(serial=f"{i}{i}{i}"), now=at("10:00"))
    [busy] = skills.take_number(deps, "residence-permit")
    # three ahead × 10 typical minutes over the 8 windows of 公安分局, rounded up
    assert "号码以A开头。现在3人在排队，预计等候约4分钟。" in busy["text"]
    desk.clock = lambda: at("12:15")  # lunch: no figures, only the guidance
    [closed] = skills.take_number(deps, "residence-permit")
    assert "号码以A开头。\n预约办事" in closed["text"]
