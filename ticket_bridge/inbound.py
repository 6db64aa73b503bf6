"""Updates from outside systems (a city 12345 platform): ``POST /api/bridge/inbound/{source}``
with a body signed like our own webhooks (``signing.py``) with the source's secret from
``BANSHI_BRIDGE_INBOUND_SECRETS``. The source acts as a supervisor would, and the change is
not echoed back to it through the outbox.

Idempotent by ``event_id``: the InboundEvent row is written in the same transaction as the
change, before it, so of two deliveries of one event (a retry, or both at once) exactly one
changes the ticket; the other gets the stored result with ``"duplicate": true``.

A refused event (409 illegal transition, 404 unknown ticket, 400 missing note) is NOT
recorded: its transaction is rolled back with the InboundEvent in it. This is deliberate.
The sender may retry the same event once the ticket allows it (say its 办结 arrived before
its 签收, or it lost a race with one of our agents: "工单刚被他人更新"), and a refusal
caused by a race is transient, so remembering it would turn a retryable answer into a
permanent one. The price: a sender that keeps retrying a refused event after the ticket
moved on may see it applied later; senders should stop retrying on 409.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from banshi.db import Database
from banshi.errors import BanshiError, Forbidden, Unauthorized, Unavailable
from banshi.settings import BRIDGE_NAME
from ticket_bridge import lifecycle
from ticket_bridge.models import InboundEvent, Ticket
from ticket_bridge.signing import problem
from ticket_bridge.tickets import TicketDesk

log = logging.getLogger(__name__)
router = APIRouter(tags=["bridge"])

MAX_BODY = 64 * 1024
REPLY_PREFIX = "外部回复："


class PayloadTooLarge(BanshiError):
    status_code = 413
    code = "payload_too_large"


class InboundIn(BaseModel):
    # a field we do not know is a misunderstanding of the contract: say so, do not drop it
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, max_length=128)
    ticket: str = Field(pattern=r"^[0-9]{8}$")  # 受理号
    action: Literal["accept", "return", "finish", "approve", "reject", "remind", "note", "reply"]
    note: str | None = Field(default=None, max_length=4000)
    result: str | None = Field(default=None, max_length=4000)  # 办理结果, with "finish"
    external_ref: str | None = Field(default=None, min_length=1, max_length=64)


@router.post("/api/bridge/inbound/{source}")
async def inbound(source: str, request: Request) -> dict[str, Any]:
    secret = _inbound_secrets(request).get(source)
    if secret is None:
        shown = source if BRIDGE_NAME.fullmatch(source) else "?"
        raise Forbidden("未登记的对接系统，请求被拒绝。", f"unknown source {shown!r}")
    body = await _read_body(request)
    why = problem(secret, request.headers, body)
    if why is not None:
        log.warning("inbound event from %s refused: %s", source, why)
        raise Unauthorized("请求签名无效或已过期，未被受理。", why)
    try:
        event = InboundIn.model_validate_json(body)
    except ValidationError as exc:  # the app's handler answers 422 with the fields
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from exc

    desk: TicketDesk | None = getattr(request.app.state, "tickets", None)
    if desk is None:
        raise Unavailable("系统正在启动，请稍后再试。", "ticket bridge not started")
    result, duplicate, conversation = await asyncio.to_thread(
        apply_event, request.app.state.db, desk, source, event
    )
    if event.action == "reply" and conversation and not duplicate:
        await _tell_resident(request, conversation, (event.note or "").strip(), source)
    return {**result, "duplicate": duplicate}


def apply_event(
    db: Database, desk: TicketDesk, source: str, event: InboundIn
) -> tuple[dict[str, Any], bool, str | None]:
    """(result, duplicate, conversation id of the ticket) — the change and its InboundEvent
    in one transaction."""
    try:
        with db.session() as s:
            stored = _stored(s, source, event.event_id)
            if stored is not None:
                return stored, True, None
            record = InboundEvent(source=source, event_id=event.event_id, result={})
            s.add(record)
            # first, so that a twin delivered at the same moment waits here (PostgreSQL: on
            # the unique index; SQLite: on the write lock) and then fails, changing nothing
            s.flush()
            ticket = _act(s, desk, source, event)
            result = {
                "ok": True,
                "event_id": event.event_id,
                "ticket": ticket.number,
                "action": event.action,
                "status": ticket.status,
                "status_label": lifecycle.label(ticket.status),
            }
            record.result = result
            conversation = ticket.conversation_id
    except IntegrityError:
        with db.session() as s:
            stored = _stored(s, source, event.event_id)
        if stored is None:
            raise  # some other constraint: not a duplicate
        return stored, True, None
    log.info("inbound %s %s on %s from %s", event.event_id, event.action, event.ticket, source)
    return result, False, conversation


def _act(s: Session, desk: TicketDesk, source: str, event: InboundIn) -> Ticket:
    note = (event.note or "").strip()
    action = event.action
    if action == "reply":  # on the ticket a note; the words also go to the resident
        if not note:
            raise BanshiError("外部回复需要填写回复内容。", "reply needs a note")
        action, note = "note", REPLY_PREFIX + note
    if event.external_ref:
        # before acting, so the events queued for other systems carry it; the first id a
        # platform gives stays (two platforms must not overwrite each other's)
        ticket = s.scalar(select(Ticket).where(Ticket.number == event.ticket))
        if ticket is not None and not ticket.external_ref:
            ticket.external_ref = event.external_ref
    return desk.act(s, event.ticket, action, None, note=note, result=event.result, source=source)


def _stored(s: Session, source: str, event_id: str) -> dict[str, Any] | None:
    found = s.scalar(
        select(InboundEvent.result).where(
            InboundEvent.source == source, InboundEvent.event_id == event_id
        )
    )
    return dict(found) if found is not None else None


async def _tell_resident(request: Request, conversation: str, text: str, source: str) -> None:
    """After the commit: the reply is on the ticket whatever happens here, so a failure to
    reach the resident is logged, not returned (a retry would be a duplicate anyway)."""
    tell = getattr(getattr(request.app.state, "live", None), "tell_resident", None)
    if tell is None:
        return
    try:
        await tell(conversation, text, author=f"ext:{source}")
    except Exception:
        log.exception("reply from %s could not be passed to conversation %s", source, conversation)


def _inbound_secrets(request: Request) -> dict[str, str]:
    settings = getattr(request.app.state, "settings", None)
    return dict(getattr(settings, "bridge_inbound_secrets", None) or {})


async def _read_body(request: Request) -> bytes:
    """At most MAX_BODY bytes, whatever Content-Length claims (or if it is missing)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise PayloadTooLarge("提交的内容太大了。", f"body over {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise PayloadTooLarge("提交的内容太大了。", f"body over {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
