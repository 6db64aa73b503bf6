"""Rasa custom actions (assistant/actions.py) run through rasa-sdk's ActionExecutor with the
action calls Rasa 3.6 sends, and the /api/rasa/actions webhook that serves them."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionNotFoundException
from sqlalchemy import select
from support import TestClient

from assistant.actions import ACTIONS, make_executor
from assistant.api import action_token
from assistant.models import ChatMessage, Conversation, Handoff
from assistant.skills import Deps
from banshi.workcal import WorkCalendar

DOMAIN_FILE = Path(__file__).resolve().parents[2] / "nlu_data" / "domain.yml"
MONDAY_10 = dt.datetime(2026, 9, 14, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
CONV = "0123456789abcdef0123456789abcdef"
HUMAN = {"title": "转人工", "payload": "/request_human"}


@pytest.fixture(scope="module")
def domain() -> dict[str, Any]:
    return dict(yaml.safe_load(DOMAIN_FILE.read_text(encoding="utf-8")))


@pytest.fixture
def deps(hashing_kb: Any) -> Deps:
    d = Deps(
        settings=hashing_kb.settings,
        db=hashing_kb.db,
        kb=hashing_kb,
        calendar=WorkCalendar.from_config(hashing_kb.catalog.centre.get("opening")),
    )
    d.now = lambda: MONDAY_10  # type: ignore[method-assign]
    with d.db.session() as s:
        s.add(Conversation(id=CONV, channel="web", user_key="session-abcdefghijklmnop"))
    return d


@pytest.fixture
def executor(deps: Deps) -> ActionExecutor:
    return make_executor(deps)


def action_call(
    domain: dict[str, Any],
    action: str,
    text: str,
    intent: str = "ask_service",
    entities: list[dict[str, Any]] | None = None,
    sender: str = CONV,
    **slots: Any,
) -> dict[str, Any]:
    """An action call as Rasa 3.6.21 posts it to the action server."""
    values: dict[str, Any] = {
        "service_item": None,
        "misses": 0.0,
        "human_offered": False,
        "pending_question": None,
    }
    values.update(slots)
    return {
        "next_action": action,
        "sender_id": sender,
        "tracker": {
            "sender_id": sender,
            "slots": values,
            "latest_message": {
                "text": text,
                "intent": {"name": intent, "confidence": 0.99},
                "entities": entities or [],
            },
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
            "latest_event_time": 0,
        },
        "domain": domain,
        "version": "3.6.21",
    }


def entity(name: str, value: str) -> dict[str, Any]:
    return {"entity": name, "value": value, "start": 0, "end": len(value), "extractor": "test"}


def run(executor: ActionExecutor, call: dict[str, Any]) -> dict[str, Any]:
    result = asyncio.run(executor.run(call))
    assert result is not None
    return dict(result.model_dump())


def slots_set(result: dict[str, Any]) -> dict[str, Any]:
    assert all(e["event"] == "slot" for e in result["events"])
    return {e["name"]: e["value"] for e in result["events"]}


def handoffs(deps: Deps) -> list[Handoff]:
    with deps.db.session() as s:
        rows = s.scalars(select(Handoff).order_by(Handoff.id)).all()
        s.expunge_all()
        return list(rows)


# == the executor ============================================================================
def test_every_action_of_the_domain_is_served(
    domain: dict[str, Any], executor: ActionExecutor
) -> None:
    assert sorted(executor.actions) == sorted(domain["actions"])
    assert len(ACTIONS) == len(domain["actions"])


def test_answer_sets_the_slots_and_answers_with_buttons(
    domain: dict[str, Any], executor: ActionExecutor, deps: Deps
) -> None:
    result = run(executor, action_call(domain, "action_answer", "居住证怎么办理"))
    assert slots_set(result) == {
        "service_item": "residence-permit",
        "misses": 0.0,
        "human_offered": False,
        "pending_question": None,
    }
    [reply] = result["responses"]
    assert reply["text"].startswith("需在本区居住满半年")
    assert "居住证" in reply["text"]
    assert reply["buttons"][0] == {
        "title": "办居住证要带哪些材料？",
        "payload": "办居住证要带哪些材料？",
    }
    assert reply["buttons"][-1] == HUMAN
    # links travel as a custom message, which the REST channel hands back to us
    assert reply["custom"] == {
        "links": [{"title": "查看办事指南：居住证申领", "url": "/guides/residence-permit"}]
    }
    with deps.db.session() as s:  # the direct path can continue the topic
        conv = s.get(Conversation, CONV)
        assert conv is not None and (conv.item_id, conv.misses) == ("residence-permit", 0)


def test_answer_follow_up_uses_the_service_item_slot(
    domain: dict[str, Any], executor: ActionExecutor
) -> None:
    result = run(
        executor,
        action_call(domain, "action_answer", "那要带什么材料？", service_item="residence-permit"),
    )
    assert slots_set(result)["service_item"] == "residence-permit"
    assert "身份证" in result["responses"][0]["text"]


def test_first_miss_asks_back_and_keeps_the_question(
    domain: dict[str, Any], executor: ActionExecutor
) -> None:
    result = run(executor, action_call(domain, "action_answer", "就是那个东西", "nlu_fallback"))
    assert slots_set(result) == {
        "service_item": None,
        "misses": 1.0,
        "human_offered": False,
        "pending_question": "就是那个东西",
    }
    [reply] = result["responses"]
    assert reply["text"] == "抱歉，我不太确定您问的是哪件事。您是想问下面哪一项？"
    payloads = [b["payload"] for b in reply["buttons"]]
    assert len(payloads) == 4 and payloads[-1] == "/request_human"
    assert all(p.startswith('/ask_service{"service_item": "') for p in payloads[:3])
    assert not reply["custom"]  # no links to send


def test_second_miss_offers_a_person(domain: dict[str, Any], executor: ActionExecutor) -> None:
    call = action_call(domain, "action_answer", "就是那个东西啊", "nlu_fallback", misses=1.0)
    result = run(executor, call)
    assert slots_set(result) == {
        "service_item": None,
        "misses": 0.0,
        "human_offered": True,
        "pending_question": "就是那个东西啊",
    }
    [reply] = result["responses"]
    assert reply["text"].startswith("看来我没能帮上忙，需要为您转接人工客服吗？")
    assert [b["payload"] for b in reply["buttons"]] == ["/affirm", "/deny"]


def test_item_button_answers_the_question_asked_back_about(
    domain: dict[str, Any], executor: ActionExecutor
) -> None:
    call = action_call(
        domain,
        "action_answer",
        '/ask_service{"service_item": "marriage-registration"}',
        entities=[entity("service_item", "marriage-registration")],
        misses=1.0,
        pending_question="要带什么材料",
    )
    result = run(executor, call)
    assert slots_set(result) == {
        "service_item": "marriage-registration",
        "misses": 0.0,
        "human_offered": False,
        "pending_question": None,
    }
    text = result["responses"][0]["text"]
    assert "身份证" in text and "合影" in text
    assert result["responses"][0]["custom"]["links"][0]["url"] == "/guides/marriage-registration"


def test_an_entity_that_is_no_catalogue_id_is_not_trusted(
    domain: dict[str, Any], executor: ActionExecutor
) -> None:
    call = action_call(
        domain, "action_answer", "社保卡丢了怎么补", entities=[entity("service_item", "居住证")]
    )
    assert slots_set(run(executor, call))["service_item"] == "social-card-lost"


def test_handoff_after_an_offer_is_a_miss(
    domain: dict[str, Any], executor: ActionExecutor, deps: Deps
) -> None:
    call = action_call(
        domain,
        "action_handoff",
        "/affirm",
        "affirm",
        human_offered=True,
        pending_question="就是那个东西啊",
    )
    result = run(executor, call)
    assert slots_set(result) == {"human_offered": False, "misses": 0.0}
    [row] = handoffs(deps)
    assert (row.conversation_id, row.reason, row.summary, row.in_hours) == (
        CONV,
        "misses",
        "就是那个东西啊",
        True,
    )
    assert result["responses"][0]["text"].startswith("您的转人工请求已记录，正在为您转接工作人员")


def test_handoff_asked_for_with_a_phone(
    domain: dict[str, Any], executor: ActionExecutor, deps: Deps
) -> None:
    call = action_call(
        domain,
        "action_handoff",
        "转人工，电话13912345678",
        "request_human",
        entities=[entity("phone", "13912345678")],
    )
    run(executor, call)
    [row] = handoffs(deps)
    assert (row.reason, row.summary, row.phone) == (
        "request",
        "转人工，电话13912345678",
        "13912345678",
    )


def test_handoff_finds_the_phone_in_the_transcript(
    domain: dict[str, Any], executor: ActionExecutor, deps: Deps
) -> None:
    with deps.db.session() as s:
        s.add(
            ChatMessage(
                conversation_id=CONV, direction="in", author="resident", text="我电话18612345678"
            )
        )
    run(executor, action_call(domain, "action_handoff", "转人工", "request_human"))
    assert handoffs(deps)[0].phone == "18612345678"


def test_handoff_for_a_sender_we_never_saw(
    domain: dict[str, Any], executor: ActionExecutor, deps: Deps
) -> None:
    run(
        executor,
        action_call(domain, "action_handoff", "转人工", "request_human", sender="shell-user"),
    )
    [row] = handoffs(deps)
    assert row.conversation_id == "shell-user"
    with deps.db.session() as s:
        conv = s.get(Conversation, "shell-user")
        assert conv is not None and conv.channel == "rasa"


def test_complaint(domain: dict[str, Any], executor: ActionExecutor, deps: Deps) -> None:
    text = "我要投诉3号窗口工作人员态度差"
    result = run(
        executor, action_call(domain, "action_complaint", text, "complain", human_offered=True)
    )
    assert slots_set(result) == {"human_offered": False}
    [row] = handoffs(deps)
    assert (row.reason, row.summary) == ("complaint", text)
    assert result["responses"][0]["text"].startswith("您的投诉已记录")


def test_suggestion(domain: dict[str, Any], executor: ActionExecutor, deps: Deps) -> None:
    text = "建议周六下午也开放"
    result = run(executor, action_call(domain, "action_suggestion", text, "suggest"))
    assert result["events"] == []
    assert handoffs(deps)[0].reason == "suggestion"
    assert result["responses"][0]["text"].startswith("感谢您的建议！")


@pytest.mark.parametrize(
    ("entities", "slot", "where"),
    [
        (
            [entity("service_item", "social-card-apply")],
            None,
            "请到1楼B区人力资源和社会保障局窗口，号码以B开头",
        ),
        ([], "residence-permit", "请到1楼A区公安分局窗口，号码以A开头"),
        # a service named now wins over the one talked about, even when it is not resolved
        (
            [entity("service_item", "火星签证")],
            "residence-permit",
            "取号时在屏幕上选择您要办理的事项即可",
        ),
        ([], None, "取号时在屏幕上选择您要办理的事项即可"),
    ],
)
def test_take_number(
    domain: dict[str, Any],
    executor: ActionExecutor,
    entities: list[dict[str, Any]],
    slot: str | None,
    where: str,
) -> None:
    call = action_call(
        domain, "action_take_number", "怎么取号", "take_number", entities, service_item=slot
    )
    result = run(executor, call)
    assert result["events"] == []
    [reply] = result["responses"]
    assert reply["text"].startswith("现场取号：在青禾区政务服务中心大厅入口的自助取号机取号")
    assert where in reply["text"]
    assert reply["buttons"] == [{"title": "大厅几点开门？", "payload": "大厅几点开门？"}]


def test_greet_queue_and_ticket_status(domain: dict[str, Any], executor: ActionExecutor) -> None:
    greet = run(executor, action_call(domain, "action_greet", "你好", "greet"))
    assert greet["events"] == []
    assert greet["responses"][0]["text"].startswith("您好，我是青禾区政务服务中心的智能助手")
    assert "现在是工作时间" in greet["responses"][0]["text"]
    queue = run(
        executor, action_call(domain, "action_queue_status", "前面还有几个人", "queue_status")
    )
    assert queue["responses"][0]["text"].startswith("用手机扫描排队小票上的二维码")
    ticket = run(
        executor,
        action_call(
            domain,
            "action_ticket_status",
            "受理号20260914办好了吗",
            "ticket_status",
            [entity("ticket_number", "20260914")],
        ),
    )
    assert ticket["responses"][0]["text"].startswith("查询工单办理进度：请拨打12345热线")
    assert ticket["responses"][0]["buttons"] == [HUMAN]


def test_unknown_action_is_refused(domain: dict[str, Any], executor: ActionExecutor) -> None:
    with pytest.raises(ActionNotFoundException):
        asyncio.run(executor.run(action_call(domain, "action_restart_the_centre", "hi")))


# == the webhook =============================================================================
def post_action(client: TestClient, call: dict[str, Any], token: str | None) -> Any:
    params = {} if token is None else {"token": token}
    return client.post("/api/rasa/actions", params=params, json=call)


@pytest.fixture
def token(hashing_kb: Any) -> str:
    return action_token(hashing_kb.settings.secret_key)


def test_webhook_needs_the_action_token(
    hashing_client: TestClient, domain: dict[str, Any], hashing_kb: Any, token: str
) -> None:
    call = action_call(domain, "action_handoff", "转人工", "request_human")
    for bad in (None, "", "0" * 32, action_token("another-secret-key-456")):
        r = post_action(hashing_client, call, bad)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["message"] == "无权访问。"
    with hashing_kb.db.session() as s:  # nothing was run
        assert s.scalars(select(Handoff)).all() == []
    assert len(token) == 32


def test_webhook_runs_the_action(
    hashing_client: TestClient, domain: dict[str, Any], token: str
) -> None:
    r = post_action(hashing_client, action_call(domain, "action_answer", "居住证怎么办理"), token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert slots_set(body)["service_item"] == "residence-permit"
    assert body["responses"][0]["text"].startswith("需在本区居住满半年")
    assert body["responses"][0]["buttons"][-1] == HUMAN


def test_webhook_unknown_action_is_404(
    hashing_client: TestClient, domain: dict[str, Any], token: str
) -> None:
    r = post_action(hashing_client, action_call(domain, "action_restart_the_centre", "hi"), token)
    assert r.status_code == 404
    assert r.json()["action_name"] == "action_restart_the_centre"


def test_webhook_call_without_an_action_is_empty(
    hashing_client: TestClient, domain: dict[str, Any], token: str
) -> None:
    call = action_call(domain, "action_answer", "hi")
    del call["next_action"]
    r = post_action(hashing_client, call, token)
    assert (r.status_code, r.json()) == (200, {})


def test_action_token_is_derived_from_the_secret() -> None:
    assert action_token("test-secret-key-123") == action_token("test-secret-key-123")
    assert action_token("test-secret-key-123") != action_token("test-secret-key-124")
