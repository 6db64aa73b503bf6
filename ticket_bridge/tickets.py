"""Tickets: creation with a 受理号 and an SLA due time in working hours, the lifecycle's
actions (each one a guarded update, recorded, and queued for outside systems), staff lists
with 催办 flags, the audit of who looked, and the resident's look-up by number + phone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from banshi.auth import ROLE_RANK, Principal
from banshi.db import Database
from banshi.errors import BanshiError, TooMany
from banshi.workcal import WorkCalendar
from ticket_bridge import lifecycle, numbers
from ticket_bridge.errors import IllegalTransition, NotYours, TicketNotFound
from ticket_bridge.lifecycle import ACTIONS, CATEGORIES, CHANNELS, OPEN, RATINGS
from ticket_bridge.models import AgentState, AuditEntry, Ticket, TicketEvent, now_utc
from ticket_bridge.outbox import Target, emit
from ticket_bridge.privacy import mask_phone, mask_text

DEFAULT_SLA = {"咨询": 6.5, "求助": 19.5, "投诉": 32.5, "建议": 32.5, "举报": 32.5}
LOOKUP_FAILS_PER_NUMBER = 5  # wrong phone digits per 受理号 per window, then a pause
LOOKUP_FAILS_PER_CLIENT = 20  # per client address per window (guessing many numbers)
LOOKUP_WINDOW = dt.timedelta(minutes=15)
NOT_FOUND = "没有找到这个受理号，或手机号后四位不对。请核对后再试。"


@dataclass(frozen=True)
class Policy:
    calendar: WorkCalendar
    sla_hours: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SLA))
    due_soon_hours: float = 3.0
    targets: tuple[Target, ...] = ()

    @classmethod
    def from_centre(
        cls, centre: dict[str, Any], calendar: WorkCalendar, targets: tuple[Target, ...] = ()
    ) -> Policy:
        conf = centre.get("tickets") or {}
        sla = {
            **DEFAULT_SLA,
            **{str(k): float(v) for k, v in (conf.get("sla_working_hours") or {}).items()},
        }
        unknown = set(sla) - set(CATEGORIES)
        if unknown:
            raise BanshiError(
                "工单配置有误。", f"centre.yml tickets.sla_working_hours: unknown {sorted(unknown)}"
            )
        return cls(calendar, sla, float(conf.get("due_soon_working_hours", 3)), targets)


class TicketDesk:
    """The ticket operations, for staff (with a Principal), residents and other parts."""

    def __init__(
        self,
        db: Database,
        policy: Policy,
        departments: dict[str, str],
        item_departments: dict[str, str] | None = None,
    ) -> None:
        self.db = db
        self.policy = policy
        self.departments = departments  # code -> name
        self.item_departments = item_departments or {}  # service item id -> department code

    # -- creating ----------------------------------------------------------------------
    def create(
        self,
        session: Session,
        *,
        channel: str,
        category: str,
        content: str,
        actor: str,
        title: str = "",
        phone: str = "",
        item_id: str | None = None,
        department: str | None = None,
        conversation_id: str | None = None,
        transcript: list[dict[str, Any]] | None = None,
        recording: str | None = None,
        priority: int = 0,
        result: str | None = None,
    ) -> Ticket:
        """A new ticket, 待分派; with ``result`` it is 即时办结 (an agent solved it live)."""
        if channel not in CHANNELS:
            raise BanshiError("渠道无效。", f"channel must be one of {CHANNELS}")
        if category not in CATEGORIES:
            raise BanshiError(
                "工单类别应为咨询、求助、投诉、建议或举报。", f"bad category {category!r}"
            )
        if department is not None and department not in self.departments:
            raise BanshiError("部门不存在。", f"unknown department {department!r}")
        now = now_utc()
        ticket = Ticket(
            number=numbers.next_number(session),
            channel=channel,
            category=category,
            status="closed" if result else "pending",
            title=(title or content)[:60],
            content=content,
            item_id=item_id,
            department=department,
            priority=priority,
            phone=phone,
            conversation_id=conversation_id,
            transcript=transcript or [],
            recording=recording,
            result=result or "",
            due_at=self.policy.calendar.add_working_hours(now, self.policy.sla_hours[category]),
            created_by=actor,
            created_at=now,
            updated_at=now,
            closed_at=now if result else None,
        )
        session.add(ticket)
        session.flush()
        self._record(session, ticket, "create", None, "pending", actor, "")
        if result:
            self._record(session, ticket, "close_live", "pending", "closed", actor, result)
        emit(session, self.policy.targets, ticket, "ticket.created", actor)
        return ticket

    # -- acting ------------------------------------------------------------------------
    def act(
        self,
        session: Session,
        number: str,
        action: str,
        actor: Principal | None,
        *,
        note: str = "",
        department: str | None = None,
        result: str | None = None,
        rating: str | None = None,
        source: str = "",
    ) -> Ticket:
        """Take a lifecycle action. ``actor`` None is the resident (only 回访), ``source`` an
        outside system that is trusted as a supervisor."""
        spec = ACTIONS.get(action)
        if spec is None:
            raise BanshiError("不支持的操作。", f"unknown action {action!r}")
        ticket = self._get(session, number)
        who = f"ext:{source}" if source else (actor.username if actor else "resident")
        if actor is not None and not source:
            self._check_role(session, actor, spec, ticket)
        elif actor is None and not source and action != "rate":
            raise NotYours("您没有执行此操作的权限。", "residents may only rate")
        if ticket.status not in spec.sources:
            raise IllegalTransition(
                f"工单当前为“{lifecycle.label(ticket.status)}”，不能{spec.label}。",
                f"{action} not allowed from {ticket.status}",
                status=ticket.status,
            )
        if spec.needs_note and not note.strip():
            raise BanshiError(f"{spec.label}需要填写说明。", f"{action} needs a note")
        values: dict[str, Any] = {"updated_at": now_utc()}
        target = spec.target
        if action == "dispatch":
            department = department or ticket.department
            if not department or department not in self.departments:
                raise BanshiError("请选择要分派的部门。", "dispatch needs a known department")
            values["department"] = department
            values["assignee"] = None
        elif action == "accept":
            values["assignee"] = who
        elif action == "return":
            values["assignee"] = None
        elif action == "finish":
            if not (result or "").strip():
                raise BanshiError("办结需要填写办理结果（将告知群众）。", "finish needs a result")
            values["result"] = result
        elif action == "approve":
            values["closed_at"] = now_utc()
        elif action == "rate":
            if rating not in RATINGS:
                raise BanshiError(
                    "请选择：非常满意、满意或不满意。", f"rating must be one of {RATINGS}"
                )
            if ticket.satisfaction not in (None, "不满意") and actor is None:
                raise IllegalTransition("这张工单已经评价过了，感谢您的反馈。", "already rated")
            values["satisfaction"] = rating
            note = note or rating
            if rating == "不满意":  # reopened: the same department does it again, a new SLA
                target = "dispatched" if ticket.department else "pending"
                values.update(
                    reopened=ticket.reopened + 1,
                    closed_at=None,
                    due_at=self.policy.calendar.add_working_hours(
                        now_utc(), self.policy.sla_hours[ticket.category]
                    ),
                )
        before = ticket.status
        new_status = target or before
        values["status"] = new_status
        changed = _rowcount(
            session.execute(
                update(Ticket)
                .where(Ticket.id == ticket.id, Ticket.status == before)
                .values(**values)
            )
        )
        if changed != 1:  # someone else acted in between: refuse, never overwrite
            raise IllegalTransition("工单刚被他人更新，请刷新后重试。", "concurrent update")
        session.refresh(ticket)
        self._record(session, ticket, action, before, new_status, who, note or (result or ""))
        emit(session, self.policy.targets, ticket, f"ticket.{action}", who, note, skip=source)
        return ticket

    def _check_role(
        self, session: Session, actor: Principal, spec: lifecycle.Action, ticket: Ticket
    ) -> None:
        if ROLE_RANK.get(actor.role, 0) < ROLE_RANK[spec.role]:
            raise NotYours("您没有执行此操作的权限。", f"{spec.name} requires {spec.role}")
        if spec.department_bound and actor.role == "agent":
            mine = self.agent_department(session, actor.username)
            if mine is not None and mine != ticket.department:
                raise NotYours("这张工单不属于您的部门。", "ticket of another department")

    def department_of_item(self, item_id: str | None) -> str | None:
        return self.item_departments.get(item_id or "")

    # -- reading -----------------------------------------------------------------------
    def agent_department(self, session: Session, username: str) -> str | None:
        return session.scalar(select(AgentState.department).where(AgentState.username == username))

    def flag(self, ticket: Ticket, now: dt.datetime | None = None) -> str | None:
        """催办 flags: "overdue" past the due time, "due_soon" within the warning hours."""
        if ticket.status not in OPEN:
            return None
        now = now or now_utc()
        due = aware(ticket.due_at)
        if due <= now:
            return "overdue"
        if self.policy.calendar.working_hours_between(now, due) <= self.policy.due_soon_hours:
            return "due_soon"
        return None

    def summary(self, ticket: Ticket, now: dt.datetime | None = None) -> dict[str, Any]:
        """A row of a staff list: the phone masked, the request's text masked."""
        return {
            "number": ticket.number,
            "channel": ticket.channel,
            "category": ticket.category,
            "status": ticket.status,
            "status_label": lifecycle.label(ticket.status),
            "title": mask_text(ticket.title),
            "item_id": ticket.item_id,
            "department": ticket.department,
            "department_name": self.departments.get(ticket.department or "", ""),
            "priority": ticket.priority,
            "phone": mask_phone(ticket.phone),
            "assignee": ticket.assignee,
            "due_at": aware(ticket.due_at).isoformat(),
            "flag": self.flag(ticket, now),
            "satisfaction": ticket.satisfaction,
            "reopened": ticket.reopened,
            "created_at": aware(ticket.created_at).isoformat(),
            "updated_at": aware(ticket.updated_at).isoformat(),
        }

    def search(
        self,
        session: Session,
        *,
        status: str | None = None,
        category: str | None = None,
        department: str | None = None,
        flag: str | None = None,
        assignee: str | None = None,
        query: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """Open tickets first, earliest due first (so overdue, then soon due, lead)."""
        stmt = select(Ticket)
        if status == "open":
            stmt = stmt.where(Ticket.status.in_(OPEN))
        elif status:
            stmt = stmt.where(Ticket.status == status)
        if category:
            stmt = stmt.where(Ticket.category == category)
        if department:
            stmt = stmt.where(Ticket.department == department)
        if assignee:
            stmt = stmt.where(Ticket.assignee == assignee)
        if query:
            like = f"%{query}%"
            stmt = stmt.where(
                or_(Ticket.number == query, Ticket.title.like(like), Ticket.content.like(like))
            )
        now = now_utc()
        if flag == "overdue":
            stmt = stmt.where(Ticket.status.in_(OPEN), Ticket.due_at <= now)
        elif flag == "due_soon":
            # due within the next few working hours = before the moment those hours end
            soon = self.policy.calendar.add_working_hours(now, self.policy.due_soon_hours)
            stmt = stmt.where(Ticket.status.in_(OPEN), Ticket.due_at > now, Ticket.due_at <= soon)
        open_first = Ticket.status.in_(("closed", "review"))
        stmt = stmt.order_by(open_first, Ticket.due_at, Ticket.id)
        total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
        rows = session.scalars(stmt.limit(limit).offset(offset)).all()
        return {"total": total, "items": [self.summary(t, now) for t in rows]}

    def detail(self, session: Session, number: str, viewer: Principal) -> dict[str, Any]:
        """The whole ticket for staff; the look is written to the audit log."""
        ticket = self._get(session, number)
        events = session.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
        ).all()
        self.audit(session, viewer.username, "view_ticket", ticket_id=ticket.id, subject=number)
        return {
            **self.summary(ticket),
            "content": mask_text(ticket.content),
            "phone_full": ticket.phone,  # for the call back; the view is audited
            "result": ticket.result,
            "conversation_id": ticket.conversation_id,
            "recording": ticket.recording,
            "transcript": [
                {**m, "text": mask_text(str(m.get("text", "")))} for m in ticket.transcript
            ],
            "events": [
                {
                    "action": e.action,
                    "label": ACTIONS[e.action].label
                    if e.action in ACTIONS
                    else _EXTRA_LABELS.get(e.action, e.action),
                    "from": e.from_status,
                    "to": e.to_status,
                    "actor": e.actor,
                    "note": e.note,
                    "at": aware(e.at).isoformat(),
                }
                for e in events
            ],
            "actions": self.allowed_actions(session, ticket, viewer),
        }

    def allowed_actions(self, session: Session, ticket: Ticket, who: Principal) -> list[str]:
        allowed = []
        for spec in ACTIONS.values():
            if ticket.status not in spec.sources:
                continue
            try:
                self._check_role(session, who, spec, ticket)
            except NotYours:
                continue
            allowed.append(spec.name)
        return allowed

    # -- residents ---------------------------------------------------------------------
    def lookup(self, number: str, phone_last4: str, client: str) -> dict[str, Any]:
        """What a resident may see of a ticket: its status and dates, nothing else, and only
        with the last four digits of the phone given when it was made."""
        number, phone_last4 = number.strip(), phone_last4.strip()
        if not numbers.is_well_formed(number):
            raise BanshiError("受理号是8位数字，请核对后再输入。", "malformed ticket number")
        since = now_utc() - LOOKUP_WINDOW
        with self.db.session() as s:
            fails_number = _count_fails(s, since, subject=number)
            fails_client = _count_fails(s, since, actor=f"client:{client}")
            if fails_number >= LOOKUP_FAILS_PER_NUMBER or fails_client >= LOOKUP_FAILS_PER_CLIENT:
                raise TooMany(
                    "查询错误次数过多，请15分钟后再试，或拨打12345热线。", "lookup throttled"
                )
            ticket = s.scalar(select(Ticket).where(Ticket.number == number))
            ok = ticket is not None and len(ticket.phone) >= 4 and ticket.phone[-4:] == phone_last4
            if not ok or ticket is None:
                self.audit(s, f"client:{client}", "lookup_failed", subject=number)
        if not ok or ticket is None:
            raise TicketNotFound(NOT_FOUND, "no ticket with that number and phone")
        return self.public(ticket)

    def public(self, ticket: Ticket) -> dict[str, Any]:
        done = ticket.status == "closed"
        return {
            "number": ticket.number,
            "status": ticket.status,
            "status_label": lifecycle.label(ticket.status),
            "created_at": aware(ticket.created_at).isoformat(),
            "updated_at": aware(ticket.updated_at).isoformat(),
            "closed": done,
            "can_rate": done and not ticket.satisfaction,
        }

    def for_conversation(self, session: Session, conversation_id: str) -> Ticket | None:
        """The newest ticket made from a conversation (its resident may see it without the
        phone digits: the conversation is theirs)."""
        return session.scalar(
            select(Ticket)
            .where(Ticket.conversation_id == conversation_id)
            .order_by(Ticket.id.desc())
            .limit(1)
        )

    # -- helpers -----------------------------------------------------------------------
    def audit(
        self,
        session: Session,
        actor: str,
        action: str,
        *,
        ticket_id: int | None = None,
        subject: str = "",
        detail: str = "",
    ) -> None:
        session.add(
            AuditEntry(
                actor=actor, action=action, ticket_id=ticket_id, subject=subject, detail=detail
            )
        )

    def _get(self, session: Session, number: str) -> Ticket:
        ticket = session.scalar(select(Ticket).where(Ticket.number == number.strip()))
        if ticket is None:
            raise TicketNotFound("没有找到这个受理号。", f"no ticket {number!r}")
        return ticket

    def _record(
        self,
        session: Session,
        ticket: Ticket,
        action: str,
        before: str | None,
        after: str,
        actor: str,
        note: str,
    ) -> None:
        session.add(
            TicketEvent(
                ticket_id=ticket.id,
                action=action,
                from_status=before,
                to_status=after,
                actor=actor,
                note=note,
            )
        )
        if action not in ("create", "close_live"):
            self.audit(
                session,
                actor,
                "change_ticket",
                ticket_id=ticket.id,
                subject=ticket.number,
                detail=action,
            )


_EXTRA_LABELS = {"create": "登记", "close_live": "即时办结"}


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


def aware(value: dt.datetime) -> dt.datetime:
    """SQLite gives back naive datetimes for timezone-aware columns; they were stored in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _count_fails(s: Session, since: dt.datetime, *, subject: str = "", actor: str = "") -> int:
    stmt = select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "lookup_failed", AuditEntry.at >= since
    )
    stmt = (
        stmt.where(AuditEntry.subject == subject)
        if subject
        else stmt.where(AuditEntry.actor == actor)
    )
    return int(s.scalar(stmt) or 0)
