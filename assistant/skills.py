"""What the assistant can do, independent of who decided to do it: the Rasa custom actions
call these, and so does the direct path that serves residents while Rasa is down."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

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
TICKET_NUMBER = re.compile(r"(?<!\d)\d{8}(?!\d)")
LAST4 = re.compile(r"(?<!\d)\d{4}(?!\d)")
RATINGS = ("非常满意", "满意", "不满意")  # 回访 answers (ticket_bridge.lifecycle.RATINGS)
# a message that only asks for a person (its words say nothing of the matter)
ASKS_FOR_PERSON = re.compile(
    r"/request_human|/affirm|(我要|我想|请|帮我|给我)?(转|找|接)?(人工|人工客服|真人|客服|工作人员)(服务)?(吧|呢)?"
)
COURTESY = re.compile(r"(好的?|嗯+|谢谢|多谢|是的?|对的?|不用了?|没有了?|行|可以)+[啊呀吧的了]*")
CANCEL_WAIT = ("取消", "取消排队", "不排了", "不用了", "算了", "不等了")


class Bridge(Protocol):
    """What the chat asks of the ticket bridge (ticket_bridge.live.LiveDesk)."""

    def escalate(
        self,
        conversation_id: str,
        reason: str,
        summary: str,
        phone: str = "",
        item_id: str | None = None,
    ) -> dict[str, Any]: ...

    def status_for_chat(
        self, conversation_id: str, number: str | None, last4: str | None
    ) -> dict[str, Any]: ...

    def rate_from_chat(self, conversation_id: str, rating: str) -> str | None: ...

    def attach_phone(self, conversation_id: str, phone: str) -> str | None: ...

    def cancel_wait(self, conversation_id: str) -> bool: ...


class QueueInfo(Protocol):
    """What the chat asks of the lobby's queue (kiosk.queue.engine.QueueDesk)."""

    def waiting_for_item(self, item_id: str) -> dict[str, Any] | None: ...


class FormsInfo(Protocol):
    """What the chat asks of the form samples (kiosk.forms.library.FormLibrary)."""

    def forms_for_item(self, item_id: str) -> list[tuple[str, str]]: ...


@dataclass
class Deps:
    """What the assistant's skills need; made once per API process."""

    settings: Settings
    db: Database
    kb: KnowledgeBase
    calendar: WorkCalendar
    bridge: Bridge | None = None  # the ticket bridge, set when the app composes the parts
    queue: QueueInfo | None = None  # the lobby's queue, likewise
    forms: FormsInfo | None = None  # the form samples, likewise

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
        forms = deps.forms.forms_for_item(result.item_id) if deps.forms and result.item_id else []
        msg = replies.answer_message(result, deps.settings.public_url, forms)
        return AnswerOutcome([msg], turn.item_id, 0, answered=True)
    misses += 1
    if misses >= MISSES_BEFORE_OFFER:
        msg = replies.offer_human_message(deps.calendar, deps.now(), deps.hotline)
        return AnswerOutcome([msg], context_item, 0, offered_human=True, pending_question=question)
    msg = replies.ask_back_message(result, deps.kb.catalog)
    return AnswerOutcome([msg], context_item, misses, pending_question=question)


def record_handoff(
    deps: Deps,
    conversation_id: str,
    reason: str,
    summary: str,
    phone: str = "",
    item_id: str | None = None,
) -> list[dict[str, Any]]:
    """Record the request (the transcript is already in chat_messages), hand it to the
    ticket bridge (queue or ticket) and tell the resident what happens next."""
    now = deps.now()
    if not phone:
        phone = _phone_in_transcript(deps, conversation_id)
    if ASKS_FOR_PERSON.fullmatch(summary.strip(" 。！!？?~～")):
        # "转人工" says nothing of the matter: show the agent what the resident asked
        summary = _last_question(deps, conversation_id) or summary
    with deps.db.session() as s:
        conv = s.get(Conversation, conversation_id)
        if conv is None:
            # a conversation Rasa knows but we do not (e.g. `rasa shell`): keep it anyway
            s.add(Conversation(id=conversation_id, channel="rasa", user_key=conversation_id))
            s.flush()
        else:
            conv.pending_question = None  # the offer is taken
            item_id = item_id or conv.item_id
        handoff = Handoff(
            conversation_id=conversation_id,
            reason=reason,
            summary=summary[:500],
            phone=phone,
            in_hours=deps.calendar.is_open(now),
        )
        s.add(handoff)
        s.flush()
        handoff_id = handoff.id
    if deps.bridge is None:  # the chat alone (tests of this part): recorded, nothing more
        if reason == "suggestion":
            return [replies.message("感谢您的建议！已记录并转交中心相关部门，我们会认真研究改进。")]
        return [replies.handoff_message(deps.calendar, now, reason, deps.hotline)]
    outcome = deps.bridge.escalate(conversation_id, reason, summary, phone, item_id)
    with deps.db.session() as s:
        row = s.get(Handoff, handoff_id)
        if row is not None:
            row.status = "ticket" if outcome.get("kind") == "ticket" else "queued"
    return [replies.escalation_message(outcome, reason, deps.hotline)]


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
        now = deps.queue.waiting_for_item(item.id) if deps.queue else None
        if now is not None:  # the hall is open: how long it is today
            where += (
                f"现在{now['waiting']}人在排队，预计等候约{now['wait_minutes']}分钟。"
                if now["waiting"]
                else "现在不用排队。"
            )
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


def ticket_status(
    deps: Deps, conversation_id: str, text: str, number: str | None
) -> list[dict[str, Any]]:
    """进度查询 by 受理号: a ticket of this conversation at once; any other with the last
    four digits of the phone left with it."""
    found = TICKET_NUMBER.search(text)
    number = number if number and TICKET_NUMBER.fullmatch(number) else None
    number = number or (found.group() if found else None)
    rest = TICKET_NUMBER.sub(" ", text)
    last4 = LAST4.search(rest)
    example = "请发送受理号和登记手机号的后四位，例如：12345678 5678"
    if deps.bridge is None:
        return [
            replies.message(
                f"查询工单办理进度：请拨打{deps.hotline}热线，报受理号和登记时留的手机号后四位。",
                [replies.HUMAN],
            )
        ]
    result = deps.bridge.status_for_chat(conversation_id, number, last4.group() if last4 else None)
    if result.get("found"):
        text = f"受理号{result['number']}：{result['status_label']}。"
        if result.get("can_rate"):
            text += "您对办理结果满意吗？"
            buttons = [{"title": r, "payload": r} for r in RATINGS]
            return [replies.message(text, buttons)]
        return [replies.message(text)]
    need = result.get("need")
    if need == "valid_number":
        return [replies.message("受理号是8位数字，好像有一位不对，请核对后再发。")]
    if need == "match":
        return [replies.message("没有找到这个受理号，或手机号后四位不对。请核对后再试。")]
    return [replies.message(f"查询工单办理进度：{example}。")]


def _recent_words(deps: Deps, conversation_id: str, limit: int = 20) -> list[str]:
    """The resident's latest messages, newest first."""
    with deps.db.session() as s:
        return list(
            s.scalars(
                select(ChatMessage.text)
                .where(
                    ChatMessage.conversation_id == conversation_id, ChatMessage.direction == "in"
                )
                .order_by(ChatMessage.id.desc())
                .limit(limit)
            ).all()
        )


def _last_question(deps: Deps, conversation_id: str) -> str:
    """The resident's latest message that is about the matter (not a request for a
    person, a button payload or a yes/no)."""
    for text in _recent_words(deps, conversation_id):
        t = text.strip()
        bare = t.strip(" 。！!？?~～，,")
        if (
            len(bare) >= 4
            and not t.startswith("/")
            and not ASKS_FOR_PERSON.fullmatch(bare)
            and not COURTESY.fullmatch(bare)
            and not PHONE.search(t)
        ):
            return t
    return ""


def _phone_in_transcript(deps: Deps, conversation_id: str) -> str:
    for text in _recent_words(deps, conversation_id):
        found = PHONE.search(text)
        if found:
            return found.group()
    return ""
