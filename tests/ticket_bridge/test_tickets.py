"""Tickets: 受理号, SLA due times in working hours, the 12345 lifecycle with its roles, 催办
flags and ordering, the residents' look-up, masking and the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bridge_support import TZ, always_open

from banshi.auth import Principal
from banshi.db import Database
from banshi.errors import BanshiError
from banshi.workcal import WorkCalendar
from ticket_bridge import numbers
from ticket_bridge.errors import IllegalTransition, NotYours, TicketNotFound
from ticket_bridge.models import AgentState, AuditEntry, Ticket, TicketEvent
from ticket_bridge.privacy import mask_phone, mask_text
from ticket_bridge.tickets import Policy, TicketDesk

SUPERVISOR = Principal("zhang", "supervisor")
POLICE_AGENT = Principal("li", "agent")
HRSS_AGENT = Principal("zhao", "agent")
DEPARTMENTS = {"police": "公安分局", "hrss": "人力资源和社会保障局"}
WEEKDAYS = WorkCalendar.from_config(
    {
        "periods": {d: ["09:00-12:00", "13:30-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        "holidays": ["2026-10-01..2026-10-07"],
        "workdays": ["2026-10-10"],
    }
)


def make_desk(db: Database, calendar: WorkCalendar | None = None) -> TicketDesk:
    desk = TicketDesk(
        db, Policy(calendar or always_open()), DEPARTMENTS, {"residence-permit": "police"}
    )
    with db.session() as s:
        s.merge(AgentState(username="li", department="police"))
        s.merge(AgentState(username="zhao", department="hrss"))
    return desk


def make_ticket(desk: TicketDesk, **overrides: Any) -> str:
    values: dict[str, Any] = {
        "channel": "web",
        "category": "投诉",
        "content": "办居住证时窗口让我跑了三趟，身份证号110101199003071234",
        "actor": "test",
        "phone": "13812345678",
        "department": "police",
    }
    values.update(overrides)
    with desk.db.session() as s:
        return desk.create(s, **values).number


def refused(call: Any, *args: Any, **kw: Any) -> str:
    """The Chinese message of the BanshiError that ``call`` raises."""
    with pytest.raises(BanshiError) as exc:
        call(*args, **kw)
    return exc.value.message


def act(desk: TicketDesk, number: str, action: str, who: Principal | None, **kw: Any) -> Ticket:
    with desk.db.session() as s:
        return desk.act(s, number, action, who, **kw)


# -- 受理号 --------------------------------------------------------------------------------
def test_numbers_are_eight_digits_distinct_and_self_checking() -> None:
    made = [numbers.format_number(i) for i in range(1, 20001)]
    assert len(set(made)) == 20000
    assert all(len(n) == 8 and n.isdigit() and n[0] != "0" for n in made)
    assert all(numbers.is_well_formed(n) for n in made)
    # neighbours in the sequence are far apart as numbers: guessing the next one fails
    assert abs(int(made[1]) - int(made[0])) > 1_000_000
    n = made[0]
    for i in range(8):  # any single misheard digit is caught
        for d in "0123456789":
            if d != n[i]:
                assert not numbers.is_well_formed(n[:i] + d + n[i + 1 :])
    assert not numbers.is_well_formed("1234567")
    assert not numbers.is_well_formed("１２３４５６７８")  # full-width digits are not ours


def test_numbers_come_from_the_database_counter(db: Database) -> None:
    desk = make_desk(db)
    first, second = make_ticket(desk), make_ticket(desk)
    assert (first, second) == (numbers.format_number(1), numbers.format_number(2))


# -- SLA in working hours -----------------------------------------------------------
def test_working_hours_skip_nights_weekends_and_holidays() -> None:
    friday_4pm = dt.datetime(2026, 9, 25, 16, 0, tzinfo=TZ)
    # one hour left on Friday, 5.5 hours the next Monday (the 28th)
    assert WEEKDAYS.add_working_hours(friday_4pm, 6.5) == dt.datetime(2026, 9, 28, 16, 0, tzinfo=TZ)
    # the National Day week is a holiday; Saturday 10 October is worked (调休)
    before_holiday = dt.datetime(2026, 9, 30, 16, 0, tzinfo=TZ)
    assert WEEKDAYS.add_working_hours(before_holiday, 2) == dt.datetime(
        2026, 10, 8, 10, 0, tzinfo=TZ
    )
    assert WEEKDAYS.add_working_hours(dt.datetime(2026, 10, 9, 17, 0, tzinfo=TZ), 1) == dt.datetime(
        2026, 10, 10, 10, 0, tzinfo=TZ
    )
    # lunch is not working time
    assert WEEKDAYS.add_working_hours(
        dt.datetime(2026, 9, 28, 11, 30, tzinfo=TZ), 1
    ) == dt.datetime(2026, 9, 28, 14, 0, tzinfo=TZ)
    monday_9 = dt.datetime(2026, 9, 28, 9, 0, tzinfo=TZ)
    assert WEEKDAYS.working_hours_between(friday_4pm, monday_9) == 1.0
    assert WEEKDAYS.working_hours_between(monday_9, friday_4pm) == -1.0


def test_due_time_follows_the_category_sla(db: Database) -> None:
    desk = make_desk(db, WEEKDAYS)
    number = make_ticket(desk, category="咨询")
    with db.session() as s:
        ticket = s.query(Ticket).filter_by(number=number).one()
        created = ticket.created_at.replace(tzinfo=dt.UTC)
        due = ticket.due_at.replace(tzinfo=dt.UTC)
    assert WEEKDAYS.working_hours_between(created, due) == pytest.approx(6.5, abs=1e-3)


# -- the lifecycle --------------------------------------------------------------------
def test_the_whole_12345_path_with_every_step_recorded(db: Database) -> None:
    desk = make_desk(db)
    number = make_ticket(desk)
    act(desk, number, "dispatch", SUPERVISOR, department="police")
    act(desk, number, "accept", POLICE_AGENT)
    act(desk, number, "finish", POLICE_AGENT, result="已核实，窗口人员已批评教育，并当面致歉。")
    t = act(desk, number, "approve", SUPERVISOR)
    assert (t.status, t.assignee) == ("closed", "li")
    t = act(desk, number, "rate", None, rating="非常满意")
    assert t.satisfaction == "非常满意"
    with db.session() as s:
        events = [
            (e.action, e.from_status, e.to_status, e.actor)
            for e in s.query(TicketEvent).filter_by(ticket_id=t.id).order_by(TicketEvent.id)
        ]
    assert events == [
        ("create", None, "pending", "test"),
        ("dispatch", "pending", "dispatched", "zhang"),
        ("accept", "dispatched", "handling", "li"),
        ("finish", "handling", "review", "li"),
        ("approve", "review", "closed", "zhang"),
        ("rate", "closed", "closed", "resident"),
    ]


def test_returns_rejections_and_an_unsatisfied_resident_reopen_it(db: Database) -> None:
    desk = make_desk(db)
    number = make_ticket(desk)
    act(desk, number, "dispatch", SUPERVISOR, department="hrss")
    assert refused(act, desk, number, "return", HRSS_AGENT) == "非本部门退回需要填写说明。"
    t = act(desk, number, "return", HRSS_AGENT, note="居住证由公安分局办理，非本部门职责")
    assert (t.status, t.assignee) == ("pending", None)
    act(desk, number, "dispatch", SUPERVISOR, department="police")
    act(desk, number, "accept", POLICE_AGENT)
    act(desk, number, "finish", POLICE_AGENT, result="已处理")
    t = act(desk, number, "reject", SUPERVISOR, note="答复过于简单，请写明处理经过")
    assert t.status == "handling"
    act(desk, number, "finish", POLICE_AGENT, result="经核实……已当面致歉。")
    act(desk, number, "approve", SUPERVISOR)
    t = act(desk, number, "rate", None, rating="不满意")
    assert (t.status, t.department, t.reopened, t.closed_at) == ("dispatched", "police", 1, None)
    # a resident cannot rate twice while it is being redone, nor act otherwise
    assert (
        refused(act, desk, number, "rate", None, rating="满意") == "工单当前为“已分派”，不能回访。"
    )
    with pytest.raises(NotYours):
        act(desk, number, "accept", None)


def test_illegal_steps_and_wrong_people_are_refused_in_chinese(db: Database) -> None:
    desk = make_desk(db)
    number = make_ticket(desk)
    with pytest.raises(IllegalTransition) as exc:
        act(desk, number, "finish", POLICE_AGENT, result="x")
    assert exc.value.message == "工单当前为“待分派”，不能办结。"
    assert refused(act, desk, number, "dispatch", POLICE_AGENT, department="police") == (
        "您没有执行此操作的权限。"
    )
    act(desk, number, "dispatch", SUPERVISOR, department="police")
    with pytest.raises(NotYours) as other:
        act(desk, number, "accept", HRSS_AGENT)
    assert other.value.message == "这张工单不属于您的部门。"
    with pytest.raises(TicketNotFound):
        act(desk, "12345678", "accept", POLICE_AGENT)
    no_department = make_ticket(desk, department=None)
    assert refused(act, desk, no_department, "dispatch", SUPERVISOR) == "请选择要分派的部门。"


def test_a_step_taken_on_a_stale_copy_is_refused_not_overwritten(db: Database) -> None:
    desk = make_desk(db)
    number = make_ticket(desk)
    act(desk, number, "dispatch", SUPERVISOR, department="police")
    with db.session() as s:
        stale = s.query(Ticket).filter_by(number=number).one()
        # another process takes it between our read and our write
        with db.session() as other:
            desk.act(other, number, "return", POLICE_AGENT, note="非本部门")
        s.expunge(stale)
    with db.session() as s:
        ticket = s.query(Ticket).filter_by(number=number).one()
        assert ticket.status == "pending"
    with pytest.raises(IllegalTransition):
        act(desk, number, "accept", POLICE_AGENT)


# -- lists, 催办, residents, privacy ----------------------------------------------
def test_overdue_and_soon_due_come_first_and_are_flagged(db: Database) -> None:
    desk = make_desk(db)
    late, soon, later = (make_ticket(desk, category=c) for c in ("投诉", "咨询", "建议"))
    now = dt.datetime.now(dt.UTC)
    with db.session() as s:
        for number, due in (
            (late, now - dt.timedelta(hours=1)),
            (soon, now + dt.timedelta(hours=2)),
            (later, now + dt.timedelta(days=5)),
        ):
            s.query(Ticket).filter_by(number=number).one().due_at = due
    mine = {late, soon, later}
    with db.session() as s:
        rows = [r for r in desk.search(s, status="open")["items"] if r["number"] in mine]
        overdue = [r for r in desk.search(s, flag="overdue")["items"] if r["number"] in mine]
        due_soon = desk.search(s, flag="due_soon")
    # the filter is in the query: the total counts what the pages hold
    assert due_soon["total"] == len(due_soon["items"])
    assert {r["flag"] for r in due_soon["items"]} == {"due_soon"}
    assert soon in [r["number"] for r in due_soon["items"]]
    assert [(r["number"], r["flag"]) for r in rows] == [
        (late, "overdue"),
        (soon, "due_soon"),
        (later, None),
    ]
    assert [r["number"] for r in overdue] == [late]
    assert rows[0]["phone"] == "138****5678"
    assert "110101********1234" in rows[0]["title"]


def test_residents_see_status_only_with_the_right_phone_digits_and_guessing_is_stopped(
    db: Database,
) -> None:
    desk = make_desk(db)
    number = make_ticket(desk)
    seen = desk.lookup(number, "5678", "10.0.0.1")
    assert seen["status_label"] == "待分派" and "phone" not in seen and "content" not in seen
    with pytest.raises(TicketNotFound) as wrong:
        desk.lookup(number, "0000", "10.0.0.1")
    assert wrong.value.message == "没有找到这个受理号，或手机号后四位不对。请核对后再试。"
    misheard = number[:7] + str((int(number[7]) + 1) % 10)
    assert refused(desk.lookup, misheard, "5678", "10.0.0.1") == "受理号是8位数字，请核对后再输入。"
    for _ in range(4):
        with pytest.raises(TicketNotFound):
            desk.lookup(number, "1111", "10.0.0.2")
    # even the right digits wait now
    assert refused(desk.lookup, number, "5678", "10.0.0.3").startswith("查询错误次数过多")
    with db.session() as s:
        assert s.query(AuditEntry).filter_by(action="lookup_failed", subject=number).count() == 5


def test_staff_views_are_audited(db: Database) -> None:
    desk = make_desk(db)
    number = make_ticket(desk)
    with db.session() as s:
        detail = desk.detail(s, number, POLICE_AGENT)
    assert detail["phone_full"] == "13812345678" and detail["phone"] == "138****5678"
    assert detail["actions"] == ["note"]  # an agent may only add a note to a pending ticket
    with db.session() as s:
        assert [(a.actor, a.action) for a in s.query(AuditEntry).all()] == [("li", "view_ticket")]


def test_masking() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("88123456") == "****3456"
    assert mask_text("身份证11010119900307123X，电话13987654321") == (
        "身份证110101********123X，电话139****4321"
    )


@pytest.mark.postgres
def test_lifecycle_numbers_and_stale_copies_on_postgresql(pg_url: str) -> None:
    database = Database(pg_url)
    database.upgrade()
    try:
        test_numbers_come_from_the_database_counter(database)
        test_the_whole_12345_path_with_every_step_recorded(database)
        test_a_step_taken_on_a_stale_copy_is_refused_not_overwritten(database)
        test_overdue_and_soon_due_come_first_and_are_flagged(database)
    finally:
        database.dispose()
