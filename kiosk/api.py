"""HTTP for the lobby: services and numbers for kiosks and phones (取号, 预约, 签到, 排队查询),
and the counters' actions for clerks (叫号, 重呼, 过号, 转移, 暂停).

A ticket is always issued before it is printed: when the printer cannot print, the reply
still carries the number and its status link (the kiosk shows them with a QR on screen) and
says why it did not print; staff see the printer's state in /healthz and the log.

A kiosk that gets no answer (a process stopped mid-request: nginx answers 502 and does not
send the POST again) repeats it with the same ``request_id``: the reply is the ticket that
request issued, with ``duplicate`` true, and its slip is printed only if it never was."""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from banshi.deps import AgentDep, SupervisorDep
from banshi.errors import BanshiError, NotFound, Unavailable
from kiosk.errors import CannotIssue, PrinterUnavailable
from kiosk.printing.ticket_printer import NOT_CONFIGURED, no_printer, printer_for
from kiosk.qr import svg_response
from kiosk.queue.engine import QueueDesk
from kiosk.queue.models import QueueTicket

log = logging.getLogger(__name__)
router = APIRouter(tags=["kiosk"])
TOKEN = r"^[A-Za-z0-9_-]{8,40}$"
WINDOW = r"^[A-Z]\d{2}$"
REQUEST_ID = r"^[A-Za-z0-9_-]{8,64}$"


def _desk(request: Request) -> QueueDesk:
    desk: QueueDesk | None = getattr(request.app.state, "queue", None)
    if desk is None:
        raise Unavailable("取号系统正在启动，请稍后再试。", "queue not started")
    return desk


# -- residents: kiosks and phones ------------------------------------------------------
@router.get("/api/kiosk/services")
async def services(request: Request) -> dict[str, Any]:
    desk = _desk(request)
    rows = await asyncio.to_thread(desk.services)
    return {"services": rows, "priority_groups": desk.config.priority_groups}


class IssueIn(BaseModel):
    service: str = Field(pattern=r"^[A-Z]$")
    id_number: str | None = Field(default=None, max_length=24)
    priority_group: str | None = Field(default=None, max_length=16)
    kiosk: str = Field(default="", max_length=32)
    print: bool = True  # a phone or a test asks without printing
    # one per resident's tap, the same when the kiosk retries it (crypto.randomUUID())
    request_id: str | None = Field(default=None, pattern=REQUEST_ID)


@router.post("/api/kiosk/tickets")
async def issue(body: IssueIn, request: Request) -> dict[str, Any]:
    """A number; for a ``request_id`` already answered, the same ticket (``duplicate``)."""
    desk = _desk(request)
    ticket = await asyncio.to_thread(
        desk.issue,
        body.service,
        id_number=body.id_number,
        priority_group=body.priority_group,
        kiosk=body.kiosk,
        request_id=body.request_id,
    )
    return await _answer(request, desk, ticket, body.print, body.kiosk)


class CheckInIn(BaseModel):
    token: str = Field(pattern=r"^\d+-[0-9a-f]{20}$")
    kiosk: str = Field(default="", max_length=32)
    print: bool = True


@router.post("/api/kiosk/check-in")
async def check_in(body: CheckInIn, request: Request) -> dict[str, Any]:
    desk = _desk(request)
    ticket = await asyncio.to_thread(desk.check_in, body.token, body.kiosk)
    return await _answer(request, desk, ticket, body.print, body.kiosk)


@router.get("/api/kiosk/tickets/{token}")
async def ticket_status(token: str, request: Request) -> dict[str, Any]:
    _check_token(token)
    return await asyncio.to_thread(_desk(request).status, token)


@router.post("/api/kiosk/tickets/{token}/print")
async def reprint(token: str, request: Request) -> dict[str, Any]:
    """Print again (paper was out, the slip was lost): only ever on request, on the printer
    of the kiosk that issued the ticket (where the resident pressed 重新打印)."""
    _check_token(token)
    desk = _desk(request)
    ticket = await asyncio.to_thread(desk.status, token)
    kiosk = await asyncio.to_thread(_issuing_kiosk, desk, token)
    return await _with_print(request, ticket, True, kiosk, desk)


@router.post("/api/kiosk/tickets/{token}/requeue")
async def requeue(token: str, request: Request) -> dict[str, Any]:
    _check_token(token)
    return await asyncio.to_thread(_desk(request).requeue, token)


@router.get("/api/kiosk/slots")
async def slots(service: str, day: dt.date, request: Request) -> dict[str, Any]:
    return {"slots": await asyncio.to_thread(_desk(request).slots, service, day)}


class BookIn(BaseModel):
    service: str = Field(pattern=r"^[A-Z]$")
    day: dt.date
    start: str = Field(pattern=r"^\d{2}:\d{2}$")
    id_number: str = Field(min_length=1, max_length=24)
    phone: str = Field(default="", pattern=r"^(1[3-9]\d{9})?$")


@router.post("/api/kiosk/appointments")
async def book(body: BookIn, request: Request) -> dict[str, Any]:
    desk = _desk(request)
    return await asyncio.to_thread(
        desk.book, body.service, body.day, body.start, body.id_number, body.phone
    )


@router.delete("/api/kiosk/appointments/{token}")
async def cancel(token: str, request: Request) -> dict[str, Any]:
    return await asyncio.to_thread(_desk(request).cancel, token)


# -- supervisors: the lobby's figures ---------------------------------------------------
MAX_STATS_DAYS = 366


@router.get("/api/admin/queue/stats")
async def queue_stats(
    request: Request,
    _: SupervisorDep,
    since: dt.date | None = None,
    until: dt.date | None = None,
    service: Annotated[str | None, Query(pattern=r"^[A-Z]$")] = None,
) -> dict[str, Any]:
    """Numbers issued, served and missed, waiting and service times per service and window,
    and the busiest hours, over the centre's days [since, until] (default: today)."""
    desk = _desk(request)
    until = until or desk.local_day(desk.clock())
    since = since or until
    if since > until:
        raise BanshiError("开始日期不能晚于结束日期。", "since is after until")
    if (until - since).days >= MAX_STATS_DAYS:
        raise BanshiError("一次最多查询一年的数据。", f"more than {MAX_STATS_DAYS} days")
    return await asyncio.to_thread(desk.stats, since, until, service)


# -- QR codes for the screens, and the windows (no log-in) -----------------------------
APPOINTMENT = r"^\d{1,12}-[0-9a-f]{20}$"


@router.get("/api/kiosk/tickets/{token}/qr.svg")
async def ticket_qr(token: str, request: Request) -> Response:
    """The ticket's status link as a QR, for the kiosk's screen (扫码查看排队进度)."""
    try:
        _check_token(token)
        ticket = await asyncio.to_thread(_desk(request).status, token)
    except CannotIssue as exc:
        raise NotFound(exc.message, exc.detail) from exc
    return svg_response(_status_url(request, ticket["token"]), "排队进度")


@router.get("/api/kiosk/appointments/{token}/qr.svg")
async def appointment_qr(token: str, request: Request) -> Response:
    """A booking's check-in code: the token itself, which the kiosk's scanner types in."""
    desk = _desk(request)
    signed = re.fullmatch(APPOINTMENT, token) and hmac.compare_digest(
        token, desk.appointment_token(int(token.partition("-")[0]))
    )
    if not signed:
        raise NotFound("没有找到这个预约。", "bad appointment token")
    return svg_response(token, "预约签到码")


@router.get("/api/kiosk/windows")
async def windows(request: Request) -> list[dict[str, Any]]:
    """Each window and the services it serves (the counter screen's choice of window)."""
    config = _desk(request).config
    return [
        {"window": w, "services": [{"code": c, "name": config.services[c].name} for c in codes]}
        for w, codes in config.windows.items()
    ]


# -- clerks at the counters ------------------------------------------------------------
class CounterIn(BaseModel):
    action: Literal[
        "open",
        "pause",
        "resume",
        "close",
        "call",
        "recall",
        "start",
        "finish",
        "no_show",
        "transfer",
    ]
    service: str | None = Field(default=None, pattern=r"^[A-Z]$")  # for transfer


@router.get("/api/counter/{window}")
async def counter_state(window: str, request: Request, who: AgentDep) -> dict[str, Any]:
    _check_window(window)
    return await asyncio.to_thread(_desk(request).counter, window)


@router.post("/api/counter/{window}")
async def counter_action(
    window: str, body: CounterIn, request: Request, who: AgentDep
) -> dict[str, Any]:
    """One button of the clerk's screen; the reply is the window's state afterwards."""
    _check_window(window)
    desk = _desk(request)
    clerk = who.username

    def act() -> dict[str, Any]:
        a = body.action
        if a == "open":
            return desk.open_counter(window, clerk)
        if a in ("pause", "resume", "close"):
            status = {"pause": "paused", "resume": "open", "close": "closed"}[a]
            return desk.set_counter(window, clerk, status)
        if a == "call":
            desk.call_next(window, clerk)
        elif a == "recall":
            desk.recall(window, clerk)
        elif a == "start":
            desk.start(window, clerk)
        elif a == "finish":
            desk.finish(window, clerk)
        elif a == "no_show":
            desk.no_show(window, clerk)
        elif a == "transfer":
            desk.transfer(window, clerk, body.service or "")
        return desk.counter(window)

    return await asyncio.to_thread(act)


# -- helpers ---------------------------------------------------------------------------
async def _answer(
    request: Request, desk: QueueDesk, ticket: dict[str, Any], wanted: bool, kiosk: str
) -> dict[str, Any]:
    """An issued (or checked-in) ticket, printed if asked. A duplicate (the same request
    again, the booking scanned again) is printed only if its slip never came out: a kiosk
    retries because no answer came, and the first attempt may or may not have printed.
    Two retries at the very same moment may both print: two slips of one number."""
    if ticket.get("duplicate") and ticket.get("printed"):
        status_url = _status_url(request, ticket["token"])
        return {**ticket, "status_url": status_url, "printed": True, "printer": None}
    return await _with_print(request, ticket, wanted, kiosk, desk)


async def _with_print(
    request: Request, ticket: dict[str, Any], wanted: bool, kiosk: str, desk: QueueDesk
) -> dict[str, Any]:
    """Print on ``kiosk``'s printer (BANSHI_KIOSK_PRINTER); the ticket stands either way."""
    ticket = {**ticket, "status_url": _status_url(request, ticket["token"])}
    if not wanted:
        return {**ticket, "printed": False, "printer": None}
    printers = getattr(request.app.state, "ticket_printer", None)
    if printers is None:
        return {**ticket, "printed": False, "printer": None}
    try:
        printer = printer_for(printers, kiosk)
        if printer is None:
            raise no_printer(kiosk)
        await asyncio.to_thread(printer.print_queue_ticket, ticket)
    except PrinterUnavailable as exc:
        level = logging.INFO if exc.reason == NOT_CONFIGURED else logging.WARNING
        log.log(level, "ticket %s not printed: %s", ticket["number"], exc.detail)
        return {
            **ticket,
            "printed": False,
            "printer": {"reason": exc.reason, "message": exc.message},
        }
    try:
        await asyncio.to_thread(desk.mark_printed, ticket["token"])
    except SQLAlchemyError as exc:  # printed all the same; a retry may print it once more
        log.warning("ticket %s printed, not recorded: %s", ticket["number"], exc)
    return {**ticket, "printed": True, "printer": None}


def _issuing_kiosk(desk: QueueDesk, token: str) -> str:
    with desk.db.session() as s:
        return s.scalar(select(QueueTicket.kiosk).where(QueueTicket.token == token)) or ""


def _status_url(request: Request, token: str) -> str:
    settings = request.app.state.settings
    base = (settings.public_url or str(request.base_url)).rstrip("/")
    return f"{base}/queue/{token}"


def _check_token(token: str) -> None:
    import re

    from kiosk.errors import CannotIssue

    if not re.fullmatch(TOKEN, token):
        raise CannotIssue("unknown_ticket", "没有找到这个排队号，请核对二维码。", "bad token")


def _check_window(window: str) -> None:
    import re

    from kiosk.errors import CounterError

    if not re.fullmatch(WINDOW, window):
        raise CounterError("没有这个窗口。", f"bad window {window!r}")
