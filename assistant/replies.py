"""What the assistant says, in one place: knowledge-base answers with their key facts and
buttons, asking back, offering a person, the greeting with the centre's hours. Used by the
Rasa custom actions and by the direct path when Rasa is down, so both speak alike.

A message is a dict ``{"text", "buttons": [{"title", "payload"}], "links": [{"title", "url"}]}``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from banshi.workcal import WorkCalendar
from knowledge_base.answer import Answer
from knowledge_base.source import Catalog

HUMAN = {"title": "转人工", "payload": "/request_human"}
FOLLOW_UPS = ("需要带什么材料？", "多久能办好？", "在哪个窗口办？")


def message(
    text: str,
    buttons: list[dict[str, str]] | None = None,
    links: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {"text": text, "buttons": buttons or [], "links": links or []}


def item_button(item_id: str, title: str) -> dict[str, str]:
    # Rasa reads "/intent{entities}" payloads without NLU; the item id is exact.
    return {"title": title, "payload": "/ask_service" + json.dumps({"service_item": item_id})}


def answer_message(
    answer: Answer, public_url: str = "", forms: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """An answered question: the short answer, the key facts, follow-up buttons, the guide
    and the item's form samples (``forms``: id and title, at most two shown)."""
    facts = answer.item or {}
    text = answer.answer
    materials = facts.get("materials") or []
    if materials and "材料" not in text:
        shown = "；".join(materials[:4]) + ("等" if len(materials) > 4 else "")
        text += f"\n需要材料：{shown}。"
    if facts.get("time_limit") and facts["time_limit"] not in text:
        text += f"\n办理时限：{facts['time_limit']}。"
    if answer.notice:
        text = f"{answer.notice}\n{text}"
    asked = answer.question
    buttons = [{"title": s, "payload": s} for s in answer.suggestions[:3] if s != asked]
    if not buttons:
        buttons = [{"title": f, "payload": f} for f in FOLLOW_UPS if f[:2] not in asked]
    links = (
        [
            {
                "title": f"查看办事指南：{facts.get('title', '')}",
                "url": f"{public_url}/guides/{answer.item_id}",
            }
        ]
        if answer.item_id
        else []
    )
    links += [
        {"title": f"填表样例：{title}", "url": f"{public_url}/forms/{form_id}"}
        for form_id, title in (forms or [])[:2]
    ]
    return message(text, [*buttons[:3], HUMAN], links)


def ask_back_message(answer: Answer, catalog: Catalog) -> dict[str, Any]:
    """Below the knowledge base's confidence: never guess, offer the nearest items."""
    nearest = [c["item_id"] for c in answer.candidates[:3] if c["item_id"] in catalog.items]
    if not nearest:
        # The knowledge base says why (e.g. which service is not said); no guesses to offer.
        return message(answer.answer, [HUMAN])
    buttons = [item_button(i, catalog.items[i].name) for i in nearest]
    return message("抱歉，我不太确定您问的是哪件事。您是想问下面哪一项？", [*buttons, HUMAN])


def offer_human_message(calendar: WorkCalendar, now: dt.datetime, hotline: str) -> dict[str, Any]:
    text = "看来我没能帮上忙，需要为您转接人工客服吗？"
    if not calendar.is_open(now):
        text += f"（现在是非工作时间，工作人员{calendar.describe_next(now)}上班后联系您）"
    return message(
        text + f"\n您也可以拨打{hotline}热线。",
        [{"title": "好的，转人工", "payload": "/affirm"}, {"title": "不用了", "payload": "/deny"}],
    )


def handoff_message(
    calendar: WorkCalendar, now: dt.datetime, reason: str, hotline: str
) -> dict[str, Any]:
    """Told when a request for a person (or a complaint) has been recorded."""
    what = {"complaint": "您的投诉", "suggestion": "您的建议"}.get(reason, "您的转人工请求")
    if calendar.is_open(now):
        text = (
            f"{what}已记录，正在为您转接工作人员，请稍候。"
            "对话记录会一并转给工作人员，您不用再说一遍。"
        )
    else:
        text = (
            f"{what}已记录。现在是非工作时间，工作人员{calendar.describe_next(now)}上班后"
            "会按对话记录处理并联系您。如需回电，请留下手机号码。"
        )
    return message(text + f"\n紧急情况请拨打{hotline}热线。")


def escalation_message(outcome: dict[str, Any], reason: str, hotline: str) -> dict[str, Any]:
    """Told when the ticket bridge has taken a request: a place in the queue, a person
    already there, or (out of hours, suggestions) a ticket with its 受理号."""
    what = {"complaint": "您的投诉", "suggestion": "您的建议"}.get(reason, "您的转人工请求")
    kind = outcome.get("kind")
    if kind == "ticket":
        number = outcome["number"]
        text = f"{what}已登记，受理号{number}，请记下以便查询进度。"
        if reason == "suggestion":
            text = "感谢您的建议！" + text + "我们会认真研究改进。"
        else:
            text += (
                f"现在是非工作时间，工作人员{outcome['callback']}上班后会按对话记录处理并联系您。"
            )
        if not outcome.get("has_phone"):
            text += "如需回电，请直接发送您的手机号码。"
        return message(text)
    if kind == "active":
        return message("已为您接通工作人员，请直接留言，对话记录已一并转给工作人员。")
    ahead = int(outcome.get("ahead") or 0)
    place = f"您前面还有{ahead}位，" if ahead else "您是下一位，"
    busy = "" if outcome.get("agents_online") else "工作人员暂时都在忙，"
    return message(
        f"{what}已记录，正在为您转接工作人员。{busy}{place}请稍候。"
        "对话记录会一并转给工作人员，您不用再说一遍。不想等了可以发送“取消”。"
        f"\n紧急情况请拨打{hotline}热线。"
    )


def greeting_message(catalog: Catalog, calendar: WorkCalendar, now: dt.datetime) -> dict[str, Any]:
    centre = catalog.centre
    hours = (centre.get("hours") or {}).get("weekdays", "")
    text = f"您好，我是{centre.get('name', '政务服务中心')}的智能助手，可以为您解答办事问题。"
    if hours:
        text += f"\n大厅办公时间：{hours}。"
    if calendar.is_open(now):
        text += "\n现在是工作时间，需要时可以随时转人工。"
    else:
        text += f"\n现在是非工作时间，我照常为您解答；人工服务{calendar.describe_next(now)}恢复。"
    return message(
        text + "\n请问您要办理什么业务？",
        [
            {"title": t, "payload": t}
            for t in ("居住证怎么办？", "社保卡丢了怎么补？", "大厅几点开门？")
        ],
    )
