"""Transactional outbox: a ticket event for each configured outside system is written in the
same transaction as the change it reports, so an event committed is never lost and an event
rolled back is never sent. ``delivery.py`` sends them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ticket_bridge.models import OutboxEvent, Ticket, now_utc


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    secret: str


def ticket_payload(ticket: Ticket) -> dict[str, Any]:
    """What an outside system is told about a ticket (it handles the case: phone included)."""
    return {
        "number": ticket.number,
        "channel": ticket.channel,
        "category": ticket.category,
        "status": ticket.status,
        "title": ticket.title,
        "content": ticket.content,
        "item_id": ticket.item_id,
        "department": ticket.department,
        "priority": ticket.priority,
        "phone": ticket.phone,
        "result": ticket.result,
        "satisfaction": ticket.satisfaction,
        "due_at": ticket.due_at.isoformat(),
        "external_ref": ticket.external_ref,
    }


def emit(
    session: Session,
    targets: tuple[Target, ...],
    ticket: Ticket,
    event: str,
    actor: str,
    note: str = "",
    skip: str = "",
) -> None:
    """Queue ``event`` for every target (except ``skip``: the system that told us)."""
    at = now_utc()
    for target in targets:
        if target.name == skip:
            continue
        event_id = secrets.token_hex(16)
        session.add(
            OutboxEvent(
                event_id=event_id,
                target=target.name,
                event=event,
                payload={
                    "event_id": event_id,
                    "event": event,
                    "actor": actor,
                    "note": note,
                    "at": at.isoformat(),
                    "ticket": ticket_payload(ticket),
                },
                next_at=at,
            )
        )
