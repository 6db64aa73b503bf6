"""The 12345 ticket lifecycle as data: statuses, and for each action where it may start,
where it leads and who may take it. ``tickets.py`` applies it; nothing else changes status.

    待分派 -分派-> 已分派(部门) -签收-> 处理中 -办结-> 已办结待审核 -审核通过-> 已审核办结
    已分派 / 处理中 -非本部门退回-> 待分派          已办结待审核 -退回重办-> 处理中
    已审核办结 -回访: 不满意-> 已分派 (the same department again; 待分派 if it had none)
"""

from __future__ import annotations

from dataclasses import dataclass

STATUS = {
    "pending": "待分派",
    "dispatched": "已分派",
    "handling": "处理中",
    "review": "已办结待审核",
    "closed": "已审核办结",
}
OPEN = ("pending", "dispatched", "handling")  # the SLA clock runs; 催办 applies
CATEGORIES = ("咨询", "求助", "投诉", "建议", "举报")
CHANNELS = ("web", "wechat", "voice", "kiosk", "counter")
RATINGS = ("非常满意", "满意", "不满意")


@dataclass(frozen=True)
class Action:
    name: str
    label: str  # as the event log shows it
    sources: tuple[str, ...]
    target: str | None  # None: the status stays (notes, 催办, 回访 that is satisfied)
    role: str  # the lowest role that may take it
    department_bound: bool = False  # an agent may take it only for their department
    needs_note: bool = False


ACTIONS = {
    a.name: a
    for a in (
        Action("dispatch", "分派", ("pending",), "dispatched", "supervisor"),
        Action("accept", "签收", ("dispatched",), "handling", "agent", department_bound=True),
        Action(
            "return",
            "非本部门退回",
            ("dispatched", "handling"),
            "pending",
            "agent",
            department_bound=True,
            needs_note=True,
        ),
        Action("finish", "办结", ("handling",), "review", "agent", department_bound=True),
        Action("approve", "审核通过", ("review",), "closed", "supervisor"),
        Action("reject", "退回重办", ("review",), "handling", "supervisor", needs_note=True),
        Action("remind", "催办", OPEN, None, "supervisor"),
        Action("note", "备注", tuple(STATUS), None, "agent", needs_note=True),
        # 回访: by the resident (web, WeChat, IVR) or by staff who called them back
        Action("rate", "回访", ("closed",), None, "agent"),
    )
}


def label(status: str) -> str:
    return STATUS.get(status, status)
