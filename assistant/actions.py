"""Rasa custom actions (rasa-sdk), served by the API process itself at /api/rasa/actions.

Why here and not in a separate action server in Rasa's environment: the actions need the
knowledge base (FAISS, current numpy) and the database, which live in the main environment;
running them in the API process answers from the already loaded index with no extra hop
and no second copy of it in memory. The action protocol is plain JSON over HTTP, so Rasa
3.6 in its own environment talks to a current rasa-sdk here without trouble.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import ActionExecutor, CollectingDispatcher

from assistant import replies, skills
from assistant.answering import resolve_item
from assistant.skills import Deps


def utter(dispatcher: CollectingDispatcher, messages: list[dict[str, Any]]) -> None:
    for m in messages:
        dispatcher.utter_message(
            text=m["text"],
            buttons=m["buttons"] or None,
            json_message={"links": m["links"]} if m["links"] else None,
        )


def _entity(tracker: Tracker, name: str) -> str | None:
    values = [
        e.get("value")
        for e in tracker.latest_message.get("entities", [])
        if e.get("entity") == name
    ]
    return str(values[0]) if values and values[0] is not None else None


class BanshiAction(Action):
    action_name = ""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def name(self) -> str:
        return self.action_name

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        # Knowledge-base lookups and database writes are blocking: keep the loop free.
        return await asyncio.to_thread(self.act, dispatcher, tracker)

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
        raise NotImplementedError


class ActionGreet(BanshiAction):
    action_name = "action_greet"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
        d = self.deps
        utter(dispatcher, [replies.greeting_message(d.kb.catalog, d.calendar, d.now())])
        return []


class ActionAnswer(BanshiAction):
    """ask_service, and whatever NLU was unsure of: the knowledge base is the judge."""

    action_name = "action_answer"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
        text = tracker.latest_message.get("text") or ""
        named = _entity(tracker, "service_item")
        named = named if named in self.deps.kb.catalog.items else None
        # A button ("/ask_service{...}") carries no question: take the one asked back about.
        question = (tracker.get_slot("pending_question") or "") if text.startswith("/") else text
        # The slot, or what the direct path remembered while Rasa was away
        context = tracker.get_slot("service_item") or skills.remembered_item(
            self.deps, tracker.sender_id
        )
        outcome = skills.answer(
            self.deps,
            question,
            context,
            named,
            int(tracker.get_slot("misses") or 0),
        )
        utter(dispatcher, outcome.messages)
        skills.remember(self.deps, tracker.sender_id, outcome)
        return [
            SlotSet("service_item", outcome.item_id),
            SlotSet("misses", float(outcome.misses)),
            SlotSet("human_offered", outcome.offered_human),
            SlotSet("pending_question", outcome.pending_question),
        ]


class ActionHandoff(BanshiAction):
    """request_human, or yes to an offered person."""

    action_name = "action_handoff"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
        offered = bool(tracker.get_slot("human_offered"))
        summary = tracker.get_slot("pending_question") or tracker.latest_message.get("text") or ""
        utter(
            dispatcher,
            skills.record_handoff(
                self.deps,
                tracker.sender_id,
                "misses" if offered else "request",
                summary,
                _entity(tracker, "phone") or "",
            ),
        )
        return [SlotSet("human_offered", False), SlotSet("misses", 0.0)]


class ActionComplaint(BanshiAction):
    action_name = "action_complaint"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
        text = tracker.latest_message.get("text") or ""
        utter(
            dispatcher,
            skills.record_handoff(
                self.deps, tracker.sender_id, "complaint", text, _entity(tracker, "phone") or ""
            ),
        )
        return [SlotSet("human_offered", False)]


class ActionSuggestion(BanshiAction):
    action_name = "action_suggestion"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
        text = tracker.latest_message.get("text") or ""
        utter(dispatcher, skills.record_handoff(self.deps, tracker.sender_id, "suggestion", text))
        return []


class ActionTakeNumber(BanshiAction):
    action_name = "action_take_number"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
        named = _entity(tracker, "service_item")
        # A service named now wins over the one talked about before, even if unresolved.
        item = resolve_item(self.deps.kb, named) if named else tracker.get_slot("service_item")
        utter(dispatcher, skills.take_number(self.deps, item))
        return []


class ActionQueueStatus(BanshiAction):
    action_name = "action_queue_status"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
        utter(dispatcher, skills.queue_status(self.deps))
        return []


class ActionTicketStatus(BanshiAction):
    action_name = "action_ticket_status"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
        text = tracker.latest_message.get("text") or ""
        number = _entity(tracker, "ticket_number")
        utter(dispatcher, skills.ticket_status(self.deps, tracker.sender_id, text, number))
        return []


ACTIONS = (
    ActionGreet,
    ActionAnswer,
    ActionHandoff,
    ActionComplaint,
    ActionSuggestion,
    ActionTakeNumber,
    ActionQueueStatus,
    ActionTicketStatus,
)


def make_executor(deps: Deps) -> ActionExecutor:
    executor = ActionExecutor()
    for cls in ACTIONS:
        executor.register_action(cls(deps))
    return executor
