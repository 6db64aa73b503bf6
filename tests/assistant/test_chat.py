"""One resident turn through ChatService (assistant/chat.py): storage of what comes in and
goes out, retries, long and empty messages, the rate limit, a person holding the
conversation, and the direct path (assistant/direct.py) that answers while Rasa is down.

Rasa is a fake object with the client's ``send``; the knowledge base is the test's private
hashing knowledge base, whose database also holds the chat tables."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import socket
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select
from support import build_settings

from assistant.chat import EMPTY, TOO_FAST, ChatReply, ChatService
from assistant.models import ChatMessage, Conversation, Handoff
from assistant.rasa_client import RasaClient, RasaDown, from_rasa
from assistant.replies import HUMAN, message
from assistant.skills import Deps
from banshi.workcal import WorkCalendar

MONDAY_10 = dt.datetime(2026, 9, 14, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))

RASA_ANSWER = [
    message(
        "办理居住证需在本区居住满半年，带身份证到1楼A区A05—A06窗口办理。",
        [{"title": "办居住证要带哪些材料？", "payload": "办居住证要带哪些材料？"}, HUMAN],
        [{"title": "查看办事指南：居住证申领", "url": "/guides/residence-permit"}],
    ),
    message("还有什么可以帮您？"),
]


class FakeRasa:
    """Stands in for RasaClient: records the calls, answers with ``answer`` or is down."""

    def __init__(self, answer: list[dict[str, Any]] | None = None, down: bool = False) -> None:
        self.answer = RASA_ANSWER if answer is None else answer
        self.down = down
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def send(self, sender: str, text: str, metadata: dict[str, Any]) -> list[dict[str, Any]]:
        self.calls.append((sender, text, metadata))
        if self.down:
            raise RasaDown("Rasa at http://127.0.0.1:5005: ConnectError('connection refused')")
        return copy.deepcopy(self.answer)


def make_chat(kb: Any, rasa: FakeRasa | None, **settings: Any) -> ChatService:
    s = build_settings(kb.settings.data_dir, **settings) if settings else kb.settings
    deps = Deps(
        settings=s,
        db=kb.db,
        kb=kb,
        calendar=WorkCalendar.from_config(kb.catalog.centre.get("opening")),
    )
    deps.now = lambda: MONDAY_10  # type: ignore[method-assign]
    return ChatService(deps, rasa)  # type: ignore[arg-type]


def say(
    chat: ChatService, text: str, user: str = "resident-1", external_id: str | None = None
) -> ChatReply:
    return asyncio.run(chat.handle("web", user, text, external_id))


def rows(kb: Any, conv_id: str) -> list[ChatMessage]:
    with kb.db.session() as s:
        found = s.scalars(
            select(ChatMessage)
            .where(ChatMessage.conversation_id == conv_id)
            .order_by(ChatMessage.id)
        ).all()
        s.expunge_all()
        return list(found)


def handoffs(kb: Any) -> list[Handoff]:
    with kb.db.session() as s:
        found = s.scalars(select(Handoff).order_by(Handoff.id)).all()
        s.expunge_all()
        return list(found)


def conversation(kb: Any, conv_id: str) -> Conversation:
    with kb.db.session() as s:
        conv = s.get(Conversation, conv_id)
        assert conv is not None
        s.expunge(conv)
        return conv


# == with Rasa ===============================================================================
def test_a_turn_stores_the_message_and_the_bots_answer(hashing_kb: Any) -> None:
    rasa = FakeRasa()
    chat = make_chat(hashing_kb, rasa)
    reply = say(chat, "  居住证怎么办理？ ", external_id="m-1")
    assert (reply.duplicate, reply.degraded, reply.limited) == (False, False, False)
    assert reply.messages == RASA_ANSWER
    assert rasa.calls == [(reply.conversation_id, "居住证怎么办理？", {"channel": "web"})]
    assert chat.rasa_ok is True

    inbound, *outbound = rows(hashing_kb, reply.conversation_id)
    assert (inbound.direction, inbound.author, inbound.text, inbound.external_id) == (
        "in",
        "resident",
        "居住证怎么办理？",  # stripped
        "m-1",
    )
    assert inbound.reply_to is None
    assert [(r.direction, r.author, r.reply_to) for r in outbound] == [
        ("out", "bot", inbound.id)
    ] * 2
    assert [r.text for r in outbound] == [m["text"] for m in RASA_ANSWER]
    assert outbound[0].payload == {
        "buttons": RASA_ANSWER[0]["buttons"],
        "links": RASA_ANSWER[0]["links"],
    }
    conv = conversation(hashing_kb, reply.conversation_id)
    assert (conv.channel, conv.user_key, conv.state) == ("web", "resident-1", "bot")


def test_one_conversation_per_resident_and_channel(hashing_kb: Any) -> None:
    chat = make_chat(hashing_kb, FakeRasa())
    first = say(chat, "你好")
    again = say(chat, "居住证怎么办理")
    other = say(chat, "你好", user="resident-2")
    wechat = asyncio.run(chat.handle("wechat", "resident-1", "你好"))
    assert first.conversation_id == again.conversation_id
    assert len({first.conversation_id, other.conversation_id, wechat.conversation_id}) == 3


def test_a_retry_gets_the_first_answer_without_asking_rasa_again(hashing_kb: Any) -> None:
    rasa = FakeRasa()
    chat = make_chat(hashing_kb, rasa)
    first = say(chat, "居住证怎么办理", external_id="wx-6000000001")
    retry = say(chat, "居住证怎么办理", external_id="wx-6000000001")
    assert retry.duplicate is True
    assert retry.conversation_id == first.conversation_id
    assert retry.messages == first.messages == RASA_ANSWER
    assert len(rasa.calls) == 1
    assert [r.direction for r in rows(hashing_kb, first.conversation_id)] == ["in", "out", "out"]


def test_the_same_external_id_from_another_resident_is_not_a_retry(hashing_kb: Any) -> None:
    rasa = FakeRasa()
    chat = make_chat(hashing_kb, rasa)
    say(chat, "居住证怎么办理", external_id="client-1")
    other = say(chat, "居住证怎么办理", user="resident-2", external_id="client-1")
    assert other.duplicate is False
    assert len(rasa.calls) == 2


def test_a_long_message_is_cut_with_a_notice(hashing_kb: Any) -> None:
    rasa = FakeRasa()
    chat = make_chat(hashing_kb, rasa, chat_max_chars=20)
    text = "我想问一下居住证怎么办理，需要带哪些材料，多久能办好，在哪个窗口，要不要预约"
    assert len(text) > 20
    reply = say(chat, text)
    assert (
        reply.messages[0]["text"] == f"您的消息较长，只按前20个字理解。\n{RASA_ANSWER[0]['text']}"
    )
    assert reply.messages[1] == RASA_ANSWER[1]
    assert rasa.calls[0][1] == text[:20]
    inbound, first_out, _ = rows(hashing_kb, reply.conversation_id)
    assert inbound.text == text[:20]
    assert first_out.text.startswith("您的消息较长，只按前20个字理解。")


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_an_empty_message_asks_for_a_question(hashing_kb: Any, text: str) -> None:
    rasa = FakeRasa()
    chat = make_chat(hashing_kb, rasa)
    reply = say(chat, text)
    assert reply.messages == [message(EMPTY)]
    assert reply.messages[0]["text"].startswith("请输入您想咨询的问题")
    assert rasa.calls == []
    assert rows(hashing_kb, reply.conversation_id) == []


def test_rate_limit_is_per_resident(hashing_kb: Any) -> None:
    rasa = FakeRasa()
    chat = make_chat(hashing_kb, rasa, chat_rate_per_minute=3)
    replies = [say(chat, f"第{i}个问题：居住证怎么办理") for i in range(1, 5)]
    assert [r.limited for r in replies] == [False, False, False, True]
    assert replies[3].messages == [message(TOO_FAST)]
    assert TOO_FAST == "您发送得太快了，请稍等一分钟再发。"
    assert len(rasa.calls) == 3
    stored = rows(hashing_kb, replies[0].conversation_id)
    assert [r.text for r in stored if r.direction == "in"] == [
        "第1个问题：居住证怎么办理",
        "第2个问题：居住证怎么办理",
        "第3个问题：居住证怎么办理",
    ]
    other = say(chat, "居住证怎么办理", user="resident-2")
    assert other.limited is False
    assert other.messages == RASA_ANSWER
    assert len(rasa.calls) == 4


def test_only_the_last_minute_counts_for_the_rate_limit(hashing_kb: Any) -> None:
    chat = make_chat(hashing_kb, FakeRasa(), chat_rate_per_minute=3)
    first = say(chat, "居住证怎么办理")
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    with hashing_kb.db.session() as s:
        s.add_all(
            ChatMessage(
                conversation_id=first.conversation_id,
                direction="in",
                author="resident",
                text=f"昨天的第{i}条",
                created_at=long_ago,
            )
            for i in range(5)
        )
    assert [say(chat, "社保卡怎么办").limited for _ in range(3)] == [False, False, True]


def test_a_retry_past_the_limit_still_gets_its_answer(hashing_kb: Any) -> None:
    chat = make_chat(hashing_kb, FakeRasa(), chat_rate_per_minute=2)
    say(chat, "居住证怎么办理", external_id="m-1")
    say(chat, "社保卡怎么办", external_id="m-2")
    retry = say(chat, "社保卡怎么办", external_id="m-2")
    assert (retry.duplicate, retry.limited, retry.messages) == (True, False, RASA_ANSWER)


def test_no_bot_reply_while_a_person_has_the_conversation(hashing_kb: Any) -> None:
    rasa = FakeRasa()
    chat = make_chat(hashing_kb, rasa)
    first = say(chat, "转人工")
    with hashing_kb.db.session() as s:
        conv = s.get(Conversation, first.conversation_id)
        assert conv is not None
        conv.state = "agent"
    reply = say(chat, "我的电话是13912345678")
    assert reply.messages == []
    assert len(rasa.calls) == 1
    last = rows(hashing_kb, first.conversation_id)[-1]
    assert (last.direction, last.text) == ("in", "我的电话是13912345678")  # kept for the agent


def test_history_is_oldest_first_with_authors(hashing_kb: Any) -> None:
    chat = make_chat(hashing_kb, FakeRasa())
    say(chat, "居住证怎么办理")
    say(chat, "谢谢")
    say(chat, "别人的问题", user="resident-2")
    history = chat.history("web", "resident-1")
    assert [(h["author"], h["text"]) for h in history] == [
        ("resident", "居住证怎么办理"),
        ("bot", RASA_ANSWER[0]["text"]),
        ("bot", "还有什么可以帮您？"),
        ("resident", "谢谢"),
        ("bot", RASA_ANSWER[0]["text"]),
        ("bot", "还有什么可以帮您？"),
    ]
    assert history[1]["buttons"] == RASA_ANSWER[0]["buttons"]
    assert history[1]["links"] == RASA_ANSWER[0]["links"]
    assert history[0]["buttons"] == [] and history[0]["links"] == []
    assert dt.datetime.fromisoformat(history[0]["at"]) <= dt.datetime.fromisoformat(
        history[-1]["at"]
    )
    # the limit keeps the newest messages, still oldest first
    assert [h["text"] for h in chat.history("web", "resident-1", limit=2)] == [
        RASA_ANSWER[0]["text"],
        "还有什么可以帮您？",
    ]
    assert chat.history("web", "nobody") == []
    assert chat.history("wechat", "resident-1") == []


def test_welcome_is_the_greeting_with_the_hours(hashing_kb: Any) -> None:
    [greeting] = make_chat(hashing_kb, FakeRasa()).welcome()
    assert greeting["text"].startswith("您好，我是青禾区政务服务中心的智能助手")
    assert "现在是工作时间，需要时可以随时转人工。" in greeting["text"]


# == without Rasa: the direct path =============================================================
def test_rasa_down_answers_from_the_knowledge_base(hashing_kb: Any) -> None:
    rasa = FakeRasa(down=True)
    chat = make_chat(hashing_kb, rasa)
    reply = say(chat, "居住证怎么办理")
    assert reply.degraded is True
    assert chat.rasa_ok is False
    assert len(rasa.calls) == 1
    [msg] = reply.messages
    assert msg["text"].startswith("需在本区居住满半年")
    assert "居住证窗口" in msg["text"]
    assert msg["links"] == [
        {"title": "查看办事指南：居住证申领", "url": "/guides/residence-permit"}
    ]
    assert msg["buttons"][-1] == HUMAN
    # stored like any answer, and the topic is kept for follow-ups
    inbound, out = rows(hashing_kb, reply.conversation_id)
    assert (out.reply_to, out.text) == (inbound.id, msg["text"])
    assert conversation(hashing_kb, reply.conversation_id).item_id == "residence-permit"


def test_no_rasa_configured_is_the_direct_path_too(hashing_kb: Any) -> None:
    chat = make_chat(hashing_kb, None)
    reply = say(chat, "社保卡丢了怎么补")
    assert reply.degraded is True
    assert reply.messages[0]["text"].startswith("立即通过掌上12333")


def test_rasa_back_again_is_not_degraded(hashing_kb: Any) -> None:
    rasa = FakeRasa(down=True)
    chat = make_chat(hashing_kb, rasa)
    assert say(chat, "居住证怎么办理").degraded
    rasa.down = False
    back = say(chat, "社保卡怎么办")
    assert (back.degraded, back.messages, chat.rasa_ok) == (False, RASA_ANSWER, True)


def test_direct_follow_up_uses_the_stored_context(hashing_kb: Any) -> None:
    chat = make_chat(hashing_kb, FakeRasa(down=True))
    say(chat, "居住证怎么办理")
    reply = say(chat, "那要带什么材料？")
    assert "身份证" in reply.messages[0]["text"]
    assert reply.messages[0]["links"][0]["url"] == "/guides/residence-permit"


def test_direct_request_for_a_person_stores_a_handoff(hashing_kb: Any) -> None:
    chat = make_chat(hashing_kb, FakeRasa(down=True))
    say(chat, "我的手机号是13912345678")
    reply = say(chat, "转人工")
    [row] = handoffs(hashing_kb)
    assert (row.conversation_id, row.reason, row.summary) == (
        reply.conversation_id,
        "request",
        "转人工",
    )
    assert (row.phone, row.in_hours) == ("13912345678", True)
    assert reply.messages[0]["text"].startswith("您的转人工请求已记录，正在为您转接工作人员")


@pytest.mark.parametrize(
    ("text", "reason", "summary", "words"),
    [
        ("我要投诉3号窗口的工作人员态度差", "complaint", None, "您的投诉已记录"),
        ("我有个建议：周六下午也开放吧", "suggestion", None, "感谢您的建议！"),
        ("能找真人聊吗", "request", None, "您的转人工请求已记录"),
        ("/request_human", "request", "转人工", "您的转人工请求已记录"),
    ],
)
def test_direct_words_for_handoffs(
    hashing_kb: Any, text: str, reason: str, summary: str | None, words: str
) -> None:
    chat = make_chat(hashing_kb, FakeRasa(down=True))
    reply = say(chat, text)
    [row] = handoffs(hashing_kb)
    assert (row.reason, row.summary) == (reason, summary or text)
    assert reply.messages[0]["text"].startswith(words)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("你好！", "您好，我是青禾区政务服务中心的智能助手"),
        ("谢谢你", "不客气！还有其他要办的事吗？"),
        ("/deny", "好的。您可以换个说法再问我"),
        ("/goodbye", "请直接输入您的问题"),
        ("/ask_service{broken json", "请直接输入您的问题"),
    ],
)
def test_direct_small_talk_and_payloads(hashing_kb: Any, text: str, words: str) -> None:
    reply = say(make_chat(hashing_kb, FakeRasa(down=True)), text)
    assert reply.messages[0]["text"].startswith(words)
    assert handoffs(hashing_kb) == []


def test_direct_item_button_answers_about_that_item(hashing_kb: Any) -> None:
    chat = make_chat(hashing_kb, FakeRasa(down=True))
    reply = say(chat, '/ask_service{"service_item": "residence-permit"}')
    assert reply.degraded
    [msg] = reply.messages
    assert "居住证" in msg["text"]
    assert msg["links"] == [
        {"title": "查看办事指南：居住证申领", "url": "/guides/residence-permit"}
    ]
    assert conversation(hashing_kb, reply.conversation_id).item_id == "residence-permit"


def test_direct_misses_ask_back_then_offer_a_person(hashing_kb: Any) -> None:
    chat = make_chat(hashing_kb, FakeRasa(down=True))
    first = say(chat, "就是那个东西")
    assert first.messages[0]["text"] == "抱歉，我不太确定您问的是哪件事。您是想问下面哪一项？"
    assert first.messages[0]["buttons"][0]["payload"].startswith('/ask_service{"service_item": "')
    assert conversation(hashing_kb, first.conversation_id).misses == 1
    second = say(chat, "就是那个东西啊")
    assert second.messages[0]["text"].startswith("看来我没能帮上忙，需要为您转接人工客服吗？")
    assert [b["payload"] for b in second.messages[0]["buttons"]] == ["/affirm", "/deny"]
    assert conversation(hashing_kb, first.conversation_id).misses == 0
    yes = say(chat, "/affirm")
    assert yes.messages[0]["text"].startswith("您的转人工请求已记录")
    assert len(handoffs(hashing_kb)) == 1


def test_direct_yes_to_an_offered_person_is_stored_like_the_rasa_path(hashing_kb: Any) -> None:
    chat = make_chat(hashing_kb, FakeRasa(down=True))
    say(chat, "就是那个东西")
    say(chat, "就是那个东西啊")
    say(chat, "/affirm")
    [row] = handoffs(hashing_kb)
    assert (row.reason, row.summary) == ("misses", "就是那个东西啊")


def test_direct_pressing_an_offered_follow_up_about_complaints_answers_it(hashing_kb: Any) -> None:
    chat = make_chat(hashing_kb, FakeRasa(down=True))
    shown = say(chat, '/ask_service{"service_item": "complaint-channel"}')
    offered = [b["payload"] for b in shown.messages[0]["buttons"]]
    assert "怎么查投诉的办理进度？" in offered
    reply = say(chat, "怎么查投诉的办理进度？")
    assert handoffs(hashing_kb) == []
    assert "投诉" in reply.messages[0]["text"]
    assert reply.messages[0]["links"][0]["url"] == "/guides/complaint-channel"


# == the Rasa client ===========================================================================
def test_from_rasa_joins_links_to_the_text_before_them() -> None:
    out: list[dict[str, Any]] = [
        {
            "recipient_id": "c1",
            "text": "办理居住证需在本区居住满半年。",
            "buttons": [{"title": "办居住证要带哪些材料？", "payload": "办居住证要带哪些材料？"}],
        },
        {
            "recipient_id": "c1",
            "custom": {
                "links": [{"title": "查看办事指南：居住证申领", "url": "/guides/residence-permit"}]
            },
        },
        {"recipient_id": "c1", "text": "还有什么可以帮您？"},
    ]
    assert from_rasa(out) == [
        {
            "text": "办理居住证需在本区居住满半年。",
            "buttons": [{"title": "办居住证要带哪些材料？", "payload": "办居住证要带哪些材料？"}],
            "links": [{"title": "查看办事指南：居住证申领", "url": "/guides/residence-permit"}],
        },
        {"text": "还有什么可以帮您？", "buttons": [], "links": []},
    ]


def test_from_rasa_copes_with_missing_and_empty_parts() -> None:
    assert from_rasa([]) == []
    out: list[dict[str, Any]] = [
        {"custom": {"links": [{"title": "先到的链接", "url": "/x"}]}},  # nothing to join yet
        {"text": None},
        {"text": ""},
        {"image": "https://example.cn/a.png"},
        {"text": "您好", "buttons": None, "custom": None},
        {"text": "请选择", "buttons": [{"payload": "/affirm"}, {"title": "不用了"}]},
        {"custom": "not a dict"},
        {"custom": {}},
    ]
    assert from_rasa(out) == [
        {"text": "您好", "buttons": [], "links": []},
        {
            "text": "请选择",
            "buttons": [{"title": "", "payload": "/affirm"}, {"title": "不用了", "payload": ""}],
            "links": [],
        },
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_rasa_client_against_a_closed_port_is_down() -> None:
    async def go() -> None:
        client = RasaClient(f"http://127.0.0.1:{free_port()}/", timeout_s=2.0)
        try:
            with pytest.raises(RasaDown, match=r"Rasa at http://127\.0\.0\.1:\d+: ConnectError"):
                await client.send("c1", "你好", {"channel": "web"})
        finally:
            await client.close()

    asyncio.run(go())
    report = RasaClient(f"http://127.0.0.1:{free_port()}", 2.0).health_sync()
    assert report["status"] == "down"
    assert report["error"] == "ConnectError"


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (500, b"[]", "HTTPStatusError"),
        (200, b"<html>proxy error</html>", "JSONDecodeError"),
        (200, b'{"error": "no model"}', "unexpected reply"),
    ],
)
def test_rasa_client_bad_replies_are_down(status: int, body: bytes, words: str) -> None:
    async def go() -> None:
        client = RasaClient("http://rasa.test", timeout_s=2.0)
        await client._http.aclose()
        client._http = httpx.AsyncClient(
            transport=httpx.MockTransport(lambda _: httpx.Response(status, content=body))
        )
        try:
            with pytest.raises(RasaDown, match=words):
                await client.send("c1", "你好", {})
        finally:
            await client.close()

    asyncio.run(go())


def test_rasa_client_posts_to_the_rest_channel() -> None:
    seen: list[httpx.Request] = []

    def rasa(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json=[
                {"recipient_id": "c1", "text": "您好", "buttons": [HUMAN]},
                {
                    "recipient_id": "c1",
                    "custom": {"links": [{"title": "指南", "url": "/guides/x"}]},
                },
            ],
        )

    async def go() -> list[dict[str, Any]]:
        client = RasaClient("http://rasa.test/", timeout_s=2.0)
        await client._http.aclose()
        client._http = httpx.AsyncClient(transport=httpx.MockTransport(rasa))
        try:
            return await client.send("c1", "你好", {"channel": "web"})
        finally:
            await client.close()

    assert asyncio.run(go()) == [
        {"text": "您好", "buttons": [HUMAN], "links": [{"title": "指南", "url": "/guides/x"}]}
    ]
    [request] = seen
    assert str(request.url) == "http://rasa.test/webhooks/rest/webhook"
    assert json.loads(request.content) == {
        "sender": "c1",
        "message": "你好",
        "metadata": {"channel": "web"},
    }
