"""Helpers for the ticket bridge's tests: calendars that are open (or closed) now, staff
accounts, and an app whose clock of working hours the test decides."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from banshi.auth import create_user
from banshi.workcal import Period, WorkCalendar

TZ = ZoneInfo("Asia/Shanghai")


def always_open() -> WorkCalendar:
    return WorkCalendar(TZ, {d: (Period(dt.time(0, 0), dt.time.max),) for d in range(7)})


def closed_now() -> WorkCalendar:
    """Open only on the day after tomorrow: closed now, with working time ahead."""
    later = (dt.datetime.now(TZ).weekday() + 2) % 7
    return WorkCalendar(TZ, {later: (Period(dt.time(9, 0), dt.time(17, 0)),)})


def use_calendar(app: Any, calendar: WorkCalendar) -> None:
    """Every part of a running app on ``calendar``."""
    app.state.deps.calendar = calendar
    app.state.live.calendar = calendar
    desk = app.state.tickets
    desk.policy = dataclasses.replace(desk.policy, calendar=calendar)


def staff(client: Any, db: Any, username: str, role: str = "agent") -> dict[str, str]:
    """A staff account logged in with a bearer token: the headers to send."""
    with db.session() as s:
        create_user(s, username, f"pw-{username}-123", role, display_name=username)
    r = client.post(
        "/api/auth/login", json={"username": username, "password": f"pw-{username}-123"}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


class FakeChannels:
    """The chat part as the live desk sees it, recording what it is asked to do."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}
        self.posts: list[tuple[str, str, str]] = []  # (conversation, author, text)
        self.events: list[tuple[str, dict[str, Any]]] = []

    def channel_of(self, conversation_id: str) -> str | None:
        return "wechat" if conversation_id.startswith("wx") else "web"

    def set_state(self, conversation_id: str, state: str) -> None:
        self.states[conversation_id] = state

    def transcript(self, conversation_id: str) -> list[dict[str, Any]]:
        return [
            {
                "author": "resident",
                "text": f"{conversation_id}的问题",
                "at": "2026-11-23T09:00:00+08:00",
            }
        ]

    def messages(self, conversation_id: str, after: int = 0) -> list[dict[str, Any]]:
        return []

    def post(self, conversation_id: str, author: str, messages: list[dict[str, Any]]) -> None:
        self.posts.extend((conversation_id, author, m["text"]) for m in messages)

    def notify(self, conversation_id: str, event: dict[str, Any]) -> None:
        self.events.append((conversation_id, event))

    def said_to(self, conversation_id: str) -> list[str]:
        return [text for conv, _, text in self.posts if conv == conversation_id]


def make_live(db: Any, calendar: WorkCalendar | None = None) -> tuple[Any, FakeChannels]:
    from banshi.bus import LocalBus
    from ticket_bridge.live import LiveDesk
    from ticket_bridge.tickets import Policy, TicketDesk

    calendar = calendar or always_open()
    desk = TicketDesk(db, Policy(calendar), {"police": "公安分局", "hrss": "人力资源和社会保障局"})
    channels = FakeChannels()
    return LiveDesk(db, desk, calendar, LocalBus(), channels), channels
