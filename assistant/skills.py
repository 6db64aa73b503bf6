"""What the assistant can do, independent of who decided to do it: the Rasa custom actions
call these, and so does the direct path that serves residents while Rasa is down."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from assistant import replies
from assistant.answering import answer_in_context
from assistant.models import ChatMessage, Conversation, Handoff
from banshi.db import Database
from banshi.settings import Settings
from banshi.workcal import WorkCalendar
from knowledge_base.service import KnowledgeBase, KnowledgeBaseNotReady

MISSES_BEFORE_OFFER = 2  # asked back twice in a row: offer a person
PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


@dataclass
class Deps:
    """What the assistant's skills need; made once per API process."""

    settings: Settings
    db: Database
    kb: KnowledgeBase
    calendar: WorkCalendar

    @property
    def hotline(self) -> str:
        return str(self.kb.catalog.centre.get("hotline", "12345"))

    def now(self) -> dt.datetime:
        return self.calendar.now()


@dataclass
class AnswerOutcome:
    messages: list[dict[str, Any]]
    item_id: str | None
    misses: int
    offered_human: bool = False
    pending_question: str | None = None
    answered: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def answer(
    deps: Deps, question: str, context_item: str | None, named_item: str | None, misses: int
) -> AnswerOutcome:
    """Answer from the knowledge base; below its confidence ask back, and after
    MISSES_BEFORE_OFFER misses in a row offer a person."""
    try:
        turn = answer_in_context(deps.kb, question, context_item, named_item)
    except KnowledgeBaseNotReady:
        msg = replies.message(
            f"知识库正在更新，请稍后再问；着急的话可以转人工或拨打{deps.hotline}热线。",
            [replies.HUMAN],
        )
        return AnswerOutcome([msg], context_item, misses)
    result = turn.answer
    if result.answered:
        msg = replies.answer_message(result, deps.settings.public_url)
        return AnswerOutcome([msg], turn.item_id, 0, answered=True)
    misses += 1
    if misses >= MISSES_BEFORE_OFFER:
        msg = replies.offer_human_message(deps.calendar, deps.now(), deps.hotline)
        return AnswerOutcome([msg], context_item, 0, offered_human=True, pending_question=question)
    msg = replies.ask_back_message(result, deps.kb.catalog)
    return AnswerOutcome([msg], context_item, misses, pending_question=question)


def record_handoff(
    deps: Deps, conversation_id: str, reason: str, summary: str, phone: str = ""
) -> list[dict[str, Any]]:
    """Store the request (the transcript is already in chat_messages) and tell the resident."""
    now = deps.now()
    if not phone:
        phone = _phone_in_transcript(deps, conversation_id)
    with deps.db.session() as s:
        conv = s.get(Conversation, conversation_id)
        if conv is None:
            # a conversation Rasa knows but we do not (e.g. `rasa shell`): keep it anyway
            s.add(Conversation(id=conversation_id, channel="rasa", user_key=conversation_id))
            s.flush()
        else:
            conv.pending_question = None  # the offer is taken
        s.add(
            Handoff(
                conversation_id=conversation_id,
                reason=reason,
                summary=summary[:500],
                phone=phone,
                in_hours=deps.calendar.is_open(now),
            )
        )
    if reason == "suggestion":
        return [replies.message("感谢您的建议！已记录并转交中心相关部门，我们会认真研究改进。")]
    return [replies.handoff_message(deps.calendar, now, reason, deps.hotline)]


def remember(deps: Deps, conversation_id: str, outcome: AnswerOutcome) -> None:
    """Keep the context in our database too, so that either path can continue the topic
    (and take a yes to an offered person) when the other one served the last turn."""
    with deps.db.session() as s:
        conv = s.get(Conversation, conversation_id)
        if conv is not None:
            conv.item_id, conv.misses = outcome.item_id, outcome.misses
            conv.pending_question = outcome.pending_question if outcome.offered_human else None


def remembered_item(deps: Deps, conversation_id: str) -> str | None:
    with deps.db.session() as s:
        conv = s.get(Conversation, conversation_id)
        return conv.item_id if conv else None


def take_number(deps: Deps, item_id: str | None) -> list[dict[str, Any]]:
    catalog = deps.kb.catalog
    centre = catalog.centre
    last = (centre.get("hours") or {}).get("last_ticket", "")
    item = catalog.items.get(item_id or "")
    dept = catalog.departments.get(item.department) if item else None
    if item and dept:
        where = f"办理“{item.name}”请到{dept.zone}{dept.name}窗口，号码以{dept.prefix}开头。"
    else:
        where = "取号时在屏幕上选择您要办理的事项即可。"
    text = (
        f"现场取号：在{centre.get('name', '中心')}大厅入口的自助取号机取号（可刷身份证）。{where}"
        f"\n预约办事：通过{centre.get('miniapp', '中心小程序')}提前预约，到场后扫预约二维码签到。"
    )
    if last:
        text += f"\n温馨提示：{last}。"
    return [replies.message(text, [{"title": "大厅几点开门？", "payload": "大厅几点开门？"}])]


def queue_status(deps: Deps) -> list[dict[str, Any]]:
    return [
        replies.message(
            "用手机扫描排队小票上的二维码，就能看到您前面还有几人、预计等待多久；"
            "大厅叫号屏也会显示当前叫号。过号的话请到对应窗口说明，可重新排队一次。"
        )
    ]


def ticket_status(deps: Deps, number: str | None) -> list[dict[str, Any]]:
    ask = f"受理号{number}" if number else "您的受理号"
    return [
        replies.message(
            f"查询{ask}的办理进度：请拨打{deps.hotline}热线，报受理号和登记时留的手机号后四位。"
            "网上自助查询即将开通。",
            [replies.HUMAN],
        )
    ]


def _phone_in_transcript(deps: Deps, conversation_id: str) -> str:
    with deps.db.session() as s:
        texts = s.scalars(
            select(ChatMessage.text)
            .where(ChatMessage.conversation_id == conversation_id, ChatMessage.direction == "in")
            .order_by(ChatMessage.id.desc())
            .limit(20)
        ).all()
    for text in texts:
        found = PHONE.search(text)
        if found:
            return found.group()
    return ""
