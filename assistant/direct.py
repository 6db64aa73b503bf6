"""Answering while Rasa is down: a few unmistakable words decide the obvious intents, and
everything else goes to the knowledge base with the conversation's context, exactly as the
custom actions would answer it. Degraded, never silent."""

from __future__ import annotations

import json
import re
from typing import Any

from assistant import replies, skills
from assistant.models import Conversation
from assistant.skills import Deps

GREETING = re.compile(r"^(你好|您好|在吗|在么|hi|hello|哈喽|有人吗)[啊呀吗呢！!。.？?～~ ]*$", re.I)
THANKS = re.compile(r"^(谢谢|多谢|感谢|谢了)")
HUMAN = re.compile(r"转人工|人工客服|人工服务|找真人|真人|工作人员")
# Wanting to complain, not asking how complaints work ("怎么查投诉的办理进度？" is a question).
COMPLAINT = re.compile(r"(我要|我想|我得|我必须|要)(投诉|举报)|投诉你们|举报你们")
ABOUT = re.compile(r"怎么|如何|哪里|在哪|进度|电话|渠道|多久|流程|吗[？?]?$")
SUGGESTION = re.compile(r"^(我)?(有个|提个|提一个)?建议")
# About one's own ticket ("我的投诉办得怎么样了"), not how progress is checked in general.
PROGRESS = re.compile(r"我的(工单|投诉|求助|受理号)|^(查询?|查一下)(工单|受理号|进度)")


def respond(deps: Deps, conv_id: str, text: str) -> list[dict[str, Any]]:
    with deps.db.session() as s:
        conv = s.get(Conversation, conv_id)
        item, misses = (conv.item_id, conv.misses) if conv else (None, 0)
        pending = conv.pending_question if conv else None
    if text.startswith("/"):
        return _payload(deps, conv_id, text, item, misses, pending)
    if GREETING.match(text):
        return [replies.greeting_message(deps.kb.catalog, deps.calendar, deps.now())]
    if THANKS.match(text):
        return [replies.message("不客气！还有其他要办的事吗？")]
    if COMPLAINT.search(text) and not ABOUT.search(text):
        return skills.record_handoff(deps, conv_id, "complaint", text)
    if HUMAN.search(text):
        return skills.record_handoff(deps, conv_id, "request", text)
    if SUGGESTION.match(text):
        return skills.record_handoff(deps, conv_id, "suggestion", text)
    if skills.TICKET_NUMBER.search(text) or PROGRESS.search(text):
        return skills.ticket_status(deps, conv_id, text, None)
    return _answer(deps, conv_id, text, item, None, misses)


def _payload(
    deps: Deps, conv_id: str, payload: str, item: str | None, misses: int, pending: str | None
) -> list[dict[str, Any]]:
    """Buttons send Rasa-style payloads ("/intent{json}"); honour the ones we emit."""
    intent, _, raw = payload[1:].partition("{")
    if intent == "affirm" and pending is not None:  # yes to the person we offered
        return skills.record_handoff(deps, conv_id, "misses", pending)
    if intent in {"request_human", "affirm"}:
        return skills.record_handoff(deps, conv_id, "request", pending or "转人工")
    if intent == "deny":
        return [replies.message("好的。您可以换个说法再问我，或者直接说要办的事项名称。")]
    if intent == "ask_service" and raw:
        try:
            named = json.loads("{" + raw).get("service_item")
        except ValueError:
            named = None
        if named:
            return _answer(deps, conv_id, "", item, str(named), misses)
    return [replies.message("请直接输入您的问题，例如：“居住证怎么办？”")]


def _answer(
    deps: Deps, conv_id: str, text: str, item: str | None, named: str | None, misses: int
) -> list[dict[str, Any]]:
    outcome = skills.answer(deps, text, item, named, misses)
    skills.remember(deps, conv_id, outcome)
    return outcome.messages
