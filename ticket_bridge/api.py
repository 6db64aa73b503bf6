"""HTTP for the ticket bridge: the agents' inbox (queue, chats, replies, tickets, 常用语),
the supervisor's overview, and the residents' look-up and rating by 受理号."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from banshi.auth import read_token
from banshi.deps import SESSION_COOKIE, AgentDep, SupervisorDep
from banshi.errors import BanshiError, Unavailable
from ticket_bridge.lifecycle import CATEGORIES, CHANNELS, OPEN, RATINGS, STATUS
from ticket_bridge.live import INBOX, LiveDesk
from ticket_bridge.models import AuditEntry, CannedReply, OutboxEvent, Ticket, now_utc
from ticket_bridge.tickets import TicketDesk, aware

router = APIRouter(tags=["tickets"])
NUMBER = r"^\d{8}$"
LAST4 = r"^\d{4}$"
SESSION = r"^[A-Za-z0-9_-]{16,64}$"
REPLY_ID = r"^[A-Za-z0-9_-]{8,58}$"
WECHAT_SEND_WAIT_S = 5.0
# row ids and offsets past a 64-bit integer: the database would fail (a 500, not a 4xx)
MAX_ROW_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


def _live(request: Request) -> LiveDesk:
    live: LiveDesk | None = getattr(request.app.state, "live", None)
    if live is None:
        raise Unavailable("系统正在启动，请稍后再试。", "ticket bridge not started")
    return live


def _tickets(request: Request) -> TicketDesk:
    return _live(request).tickets


# -- the agent -------------------------------------------------------------------------------
class StateIn(BaseModel):
    status: Literal["online", "away", "offline"] | None = None
    capacity: int | None = Field(default=None, ge=1, le=20)


@router.get("/api/agent/state")
async def get_state(request: Request, who: AgentDep) -> dict[str, Any]:
    return await asyncio.to_thread(_live(request).agent_state, who.username)


@router.put("/api/agent/state")
async def put_state(body: StateIn, request: Request, who: AgentDep) -> dict[str, Any]:
    live = _live(request)
    return await asyncio.to_thread(live.set_agent_state, who.username, body.status, body.capacity)


class AgentSetup(BaseModel):
    department: str | None = Field(default=None, max_length=32)
    capacity: int | None = Field(default=None, ge=1, le=20)


@router.put("/api/agents/{username}")
async def setup_agent(
    username: str, body: AgentSetup, request: Request, who: SupervisorDep
) -> dict[str, Any]:
    """A supervisor sets an agent's department (None: the general hotline) and capacity."""
    live = _live(request)
    if body.department is not None and body.department not in live.tickets.departments:
        raise BanshiError("部门不存在。", f"unknown department {body.department!r}")
    return await asyncio.to_thread(
        live.set_agent_state, username, None, body.capacity, body.department
    )


@router.get("/api/agent/queue")
async def get_queue(request: Request, who: AgentDep) -> dict[str, Any]:
    return {"waiting": await asyncio.to_thread(_live(request).queue)}


@router.get("/api/agent/chats")
async def my_chats(request: Request, who: AgentDep) -> dict[str, Any]:
    """The inbox polls this: it also says the agent is still there (presence)."""
    live = _live(request)
    await asyncio.to_thread(live.seen, who.username)
    return {"chats": await asyncio.to_thread(live.mine, who.username)}


@router.post("/api/agent/chats/{chat_id}/claim")
async def claim(chat_id: RowId, request: Request, who: AgentDep) -> dict[str, Any]:
    return await asyncio.to_thread(_live(request).claim, chat_id, who.username)


@router.get("/api/agent/chats/{chat_id}")
async def chat_messages(
    chat_id: RowId,
    request: Request,
    who: AgentDep,
    after: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
) -> dict[str, Any]:
    return await asyncio.to_thread(_live(request).messages, chat_id, who, after)


class ReplyIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000)
    # the inbox's id for this reply, the same when it sends it again after no answer
    # (stored with the "agent:" prefix in the chat's 64-character message ids)
    client_id: str | None = Field(default=None, pattern=REPLY_ID)


@router.post("/api/agent/chats/{chat_id}/messages")
async def reply(chat_id: RowId, body: ReplyIn, request: Request, who: AgentDep) -> dict[str, Any]:
    """Stored and pushed at once; for WeChat, says whether WeChat accepted it. The same
    ``client_id`` again: the message stored the first time (``duplicate``), not sent again."""
    done = await asyncio.to_thread(_live(request).reply, chat_id, who, body.text, body.client_id)
    # with a client id, also what was stored (the same message for a retry)
    answer = {"message": done.message, "duplicate": done.duplicate} if body.client_id else {}
    if done.duplicate and done.channel == "wechat":
        # the first attempt sent it; whether WeChat took it is not known to this request
        note = "这条回复已发送过，没有重复发送；如居民没有收到，请改为电话联系。"
        return {**answer, "delivered": None, "channel_note": note}
    if done.delivery is None:
        return {**answer, "delivered": True, "channel_note": ""}
    try:
        ok = await asyncio.wait_for(asyncio.wrap_future(done.delivery), WECHAT_SEND_WAIT_S)
    except TimeoutError:
        ok = False
    note = "" if ok else "微信未能送达（居民超过48小时未互动或网络故障），请改为电话联系。"
    return {**answer, "delivered": bool(ok), "channel_note": note}


@router.post("/api/agent/chats/{chat_id}/release")
async def release(chat_id: RowId, request: Request, who: AgentDep) -> dict[str, bool]:
    await asyncio.to_thread(_live(request).release, chat_id, who)
    return {"ok": True}


class TransferIn(BaseModel):
    agent: str | None = Field(default=None, max_length=64)
    department: str | None = Field(default=None, max_length=32)


@router.post("/api/agent/chats/{chat_id}/transfer")
async def transfer(
    chat_id: RowId, body: TransferIn, request: Request, who: AgentDep
) -> dict[str, Any]:
    live = _live(request)
    return await asyncio.to_thread(live.transfer, chat_id, who, body.agent, body.department)


class CloseIn(BaseModel):
    category: str = Field(pattern="^(" + "|".join(CATEGORIES) + ")$")
    content: str = Field(default="", max_length=2000)
    resolved: bool = False
    result: str = Field(default="", max_length=2000)
    item_id: str | None = Field(default=None, max_length=64)
    department: str | None = Field(default=None, max_length=32)
    phone: str = Field(default="", pattern=r"^(\d{7,12})?$")


@router.post("/api/agent/chats/{chat_id}/close")
async def close(chat_id: RowId, body: CloseIn, request: Request, who: AgentDep) -> dict[str, Any]:
    live = _live(request)
    return await asyncio.to_thread(
        lambda: live.close_with_ticket(chat_id, who, **body.model_dump())
    )


@router.get("/api/agent/directory")
async def directory(request: Request, who: AgentDep) -> dict[str, Any]:
    """Departments, online agents, categories and statuses for the inbox's menus."""
    live = _live(request)
    overview = await asyncio.to_thread(live.overview)
    return {
        "departments": [{"code": c, "name": n} for c, n in live.tickets.departments.items()],
        "agents": [a for a in overview["agents"] if a["status"] == "online"],
        "categories": list(CATEGORIES),
        "statuses": [{"code": c, "label": label} for c, label in STATUS.items()],
        "channels": list(CHANNELS),
        "me": {"username": who.username, "role": who.role},
    }


# -- canned replies (常用语) ----------------------------------------------------------------
class CannedIn(BaseModel):
    title: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=1000)


def _canned_out(c: CannedReply) -> dict[str, Any]:
    return {"id": c.id, "title": c.title, "text": c.text, "updated_by": c.updated_by}


@router.get("/api/agent/canned")
def list_canned(request: Request, who: AgentDep) -> dict[str, Any]:
    with request.app.state.db.session() as s:
        rows = s.scalars(select(CannedReply).order_by(CannedReply.id)).all()
        return {"replies": [_canned_out(c) for c in rows]}


@router.post("/api/agent/canned", status_code=201)
def add_canned(body: CannedIn, request: Request, who: SupervisorDep) -> dict[str, Any]:
    with request.app.state.db.session() as s:
        row = CannedReply(title=body.title, text=body.text, updated_by=who.username)
        s.add(row)
        s.flush()
        return _canned_out(row)


@router.put("/api/agent/canned/{reply_id}")
def edit_canned(
    reply_id: RowId, body: CannedIn, request: Request, who: SupervisorDep
) -> dict[str, Any]:
    with request.app.state.db.session() as s:
        row = s.get(CannedReply, reply_id)
        if row is None:
            raise BanshiError("常用语不存在。", f"no canned reply {reply_id}")
        row.title, row.text, row.updated_by, row.updated_at = (
            body.title,
            body.text,
            who.username,
            now_utc(),
        )
        return _canned_out(row)


@router.delete("/api/agent/canned/{reply_id}", status_code=204)
def delete_canned(reply_id: RowId, request: Request, who: SupervisorDep) -> None:
    with request.app.state.db.session() as s:
        row = s.get(CannedReply, reply_id)
        if row is not None:
            s.delete(row)


# -- tickets (staff) -------------------------------------------------------------------------
@router.get("/api/tickets")
def list_tickets(
    request: Request,
    who: AgentDep,
    status: Annotated[str | None, Query(pattern="^(open|" + "|".join(STATUS) + ")$")] = None,
    category: Annotated[str | None, Query(max_length=8)] = None,
    department: Annotated[str | None, Query(max_length=32)] = None,
    flag: Annotated[str | None, Query(pattern="^(overdue|due_soon)$")] = None,
    mine: bool = False,
    q: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
) -> dict[str, Any]:
    desk = _tickets(request)
    with desk.db.session() as s:
        return desk.search(
            s,
            status=status,
            category=category,
            department=department,
            flag=flag,
            assignee=who.username if mine else None,
            query=q,
            limit=limit,
            offset=offset,
        )


class TicketIn(BaseModel):
    channel: str = Field(pattern="^(" + "|".join(CHANNELS) + ")$")
    category: str = Field(pattern="^(" + "|".join(CATEGORIES) + ")$")
    content: str = Field(min_length=1, max_length=4000)
    title: str = Field(default="", max_length=60)
    phone: str = Field(default="", pattern=r"^(\d{7,12})?$")
    item_id: str | None = Field(default=None, max_length=64)
    department: str | None = Field(default=None, max_length=32)
    priority: int = Field(default=0, ge=0, le=1)


@router.post("/api/tickets", status_code=201)
def create_ticket(body: TicketIn, request: Request, who: AgentDep) -> dict[str, Any]:
    """A ticket taken by staff (a call, a visit at the counter)."""
    desk = _tickets(request)
    with desk.db.session() as s:
        ticket = desk.create(
            s,
            actor=who.username,
            **body.model_dump(exclude={"department"}),
            department=body.department or desk.department_of_item(body.item_id),
        )
        return desk.summary(ticket)


@router.get("/api/tickets/{number}")
def ticket_detail(number: str, request: Request, who: AgentDep) -> dict[str, Any]:
    desk = _tickets(request)
    with desk.db.session() as s:
        return desk.detail(s, number, who)


class ActionIn(BaseModel):
    action: str = Field(max_length=16)
    note: str = Field(default="", max_length=2000)
    department: str | None = Field(default=None, max_length=32)
    result: str | None = Field(default=None, max_length=4000)
    rating: str | None = Field(default=None, max_length=8)


@router.post("/api/tickets/{number}/actions")
def ticket_action(number: str, body: ActionIn, request: Request, who: AgentDep) -> dict[str, Any]:
    desk = _tickets(request)
    with desk.db.session() as s:
        desk.act(
            s,
            number,
            body.action,
            who,
            note=body.note,
            department=body.department,
            result=body.result,
            rating=body.rating,
        )
    with desk.db.session() as s:
        return desk.detail(s, number, who)


# -- residents ---------------------------------------------------------------------------------
class LookupIn(BaseModel):
    number: str = Field(pattern=NUMBER)
    phone_last4: str = Field(pattern=LAST4)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/api/progress/lookup")
async def lookup(body: LookupIn, request: Request) -> dict[str, Any]:
    """办理进度: the status of a ticket, for whoever knows its number and phone digits."""
    desk = _tickets(request)
    return await asyncio.to_thread(desk.lookup, body.number, body.phone_last4, _client(request))


class RateIn(LookupIn):
    rating: str = Field(pattern="^(" + "|".join(RATINGS) + ")$")


@router.post("/api/progress/rating")
async def rate(body: RateIn, request: Request) -> dict[str, Any]:
    """回访 on the web: the same proof as the look-up, then the rating."""
    desk = _tickets(request)
    await asyncio.to_thread(desk.lookup, body.number, body.phone_last4, _client(request))

    def _rate() -> dict[str, Any]:
        with desk.db.session() as s:
            ticket = desk.act(s, body.number, "rate", None, rating=body.rating)
            return desk.public(ticket)

    return await asyncio.to_thread(_rate)


# -- the supervisor ------------------------------------------------------------------------------
@router.get("/api/supervisor/overview")
async def overview(request: Request, who: SupervisorDep) -> dict[str, Any]:
    live = _live(request)
    desk = live.tickets

    def _tickets_part() -> dict[str, Any]:
        now = now_utc()
        with desk.db.session() as s:
            rows = s.execute(
                select(Ticket.department, Ticket.status, Ticket.due_at <= now, func.count())
                .where(Ticket.status.in_(OPEN))
                .group_by(Ticket.department, Ticket.status, Ticket.due_at <= now)
            ).all()
            ratings = dict(
                s.execute(
                    select(Ticket.satisfaction, func.count())
                    .where(Ticket.satisfaction.is_not(None))
                    .group_by(Ticket.satisfaction)
                ).all()
            )
            outbox = dict(
                s.execute(
                    select(OutboxEvent.status, func.count()).group_by(OutboxEvent.status)
                ).all()
            )
        by_dept: dict[str, dict[str, Any]] = {}
        for dept, _status, overdue, count in rows:
            key = dept or ""
            row = by_dept.setdefault(
                key,
                {
                    "department": dept,
                    "name": desk.departments.get(key, "未分派"),
                    "open": 0,
                    "overdue": 0,
                },
            )
            row["open"] += count
            if overdue:
                row["overdue"] += count
        rated = sum(ratings.values())
        satisfied = ratings.get("非常满意", 0) + ratings.get("满意", 0)
        return {
            "tickets_by_department": sorted(by_dept.values(), key=lambda r: -r["overdue"]),
            "satisfaction": {
                "counts": {r: int(ratings.get(r, 0)) for r in RATINGS},
                "rate": round(satisfied / rated, 3) if rated else None,
            },
            "outbox": {k: int(v) for k, v in outbox.items()},
        }

    live_part = await asyncio.to_thread(live.overview)
    return {**live_part, **await asyncio.to_thread(_tickets_part)}


@router.get("/api/supervisor/audit")
def audit_log(
    request: Request,
    who: SupervisorDep,
    number: Annotated[str | None, Query(pattern=NUMBER)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Who viewed or changed what (a ticket by its number, or everything one person did)."""
    with request.app.state.db.session() as s:
        stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if number:
            stmt = stmt.where(AuditEntry.subject == number)
        if actor:
            stmt = stmt.where(AuditEntry.actor == actor)
        return {
            "entries": [
                {
                    "actor": e.actor,
                    "action": e.action,
                    "subject": e.subject,
                    "detail": e.detail,
                    "at": aware(e.at).isoformat(),
                }
                for e in s.scalars(stmt)
            ]
        }


# -- the inbox's live channel -------------------------------------------------------------------
@router.websocket("/api/agent/ws")
async def agent_socket(ws: WebSocket) -> None:
    """Events for the inbox (queue changed, a resident wrote, a chat was taken). Logged in by
    the session cookie; a page of another origin may not open it (cross-site hijacking)."""
    settings = ws.app.state.settings
    origin = ws.headers.get("origin", "")
    host = ws.headers.get("host", "")
    await ws.accept()
    if origin and urlsplit(origin).netloc != host:
        await ws.close(code=4403, reason="origin not allowed")
        return
    try:
        who = read_token(ws.cookies.get(SESSION_COOKIE, ""), settings.secret_key)
    except BanshiError:
        await ws.close(code=4401, reason="not logged in")
        return
    live: LiveDesk | None = getattr(ws.app.state, "live", None)
    if live is None:
        await ws.close(code=1013, reason="not started")
        return
    async with live.bus.subscribe(INBOX) as queue:
        reader = asyncio.create_task(_drain(ws))
        try:
            await ws.send_json({"type": "hello", "username": who.username})
            while not reader.done():
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait(
                    {getter, reader}, timeout=25, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    await ws.send_json(getter.result())
                else:
                    getter.cancel()
                    if not done:
                        await ws.send_json({"type": "ping"})  # keeps proxies from closing it
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            reader.cancel()


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) what the page sends, to notice when it goes away."""
    try:
        while True:
            await ws.receive_text()
    except WebSocketDisconnect:
        return
