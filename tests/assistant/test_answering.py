"""Answering within a conversation (assistant/answering.py), the assistant's skills
(assistant/skills.py) and what it says (assistant/replies.py).

Answers that depend on retrieval use ``real_kb`` (the use-m3 encoder, marked ``encoder``);
hand-offs, taking a number and the wording of replies use the shared hashing knowledge base
with a private database for the chat tables."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from assistant import replies, skills
from assistant.answering import FACETS, _names_an_item, answer_in_context, resolve_item
from assistant.models import ChatMessage, Conversation, Handoff
from assistant.skills import Deps
from banshi.db import Database
from banshi.workcal import WorkCalendar
from knowledge_base.answer import Answer

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY_10 = dt.datetime(2026, 9, 14, 10, 0, tzinfo=SHANGHAI)  # open
SUNDAY_EVENING = dt.datetime(2026, 9, 13, 20, 0, tzinfo=SHANGHAI)  # closed, opens tomorrow
SATURDAY_AFTERNOON = dt.datetime(2026, 9, 19, 15, 0, tzinfo=SHANGHAI)  # closed; 调休 Sunday next


def make_deps(db: Database, kb: Any, now: dt.datetime = MONDAY_10) -> Deps:
    """Deps as banshi/app.py start_chat builds them, with the clock fixed at ``now``."""
    deps = Deps(
        settings=kb.settings,
        db=db,
        kb=kb,
        calendar=WorkCalendar.from_config(kb.catalog.centre.get("opening")),
    )
    deps.now = lambda: now  # type: ignore[method-assign]
    return deps


def conversation(db: Database, *incoming: str, conv_id: str = "c" * 32) -> str:
    """A web conversation whose resident said ``incoming`` (in that order)."""
    with db.session() as s:
        s.add(Conversation(id=conv_id, channel="web", user_key=f"session-{conv_id}"))
        s.flush()
        for text in incoming:
            s.add(
                ChatMessage(conversation_id=conv_id, direction="in", author="resident", text=text)
            )
    return conv_id


def handoffs(db: Database) -> list[Handoff]:
    with db.session() as s:
        rows = s.scalars(select(Handoff).order_by(Handoff.id)).all()
        s.expunge_all()
        return list(rows)


def item_payload(item_id: str) -> str:
    return '/ask_service{"service_item": "' + item_id + '"}'


# == answer_in_context ======================================================================
@pytest.mark.encoder
def test_follow_up_with_a_facet_is_asked_about_the_context_item(real_kb: Any) -> None:
    turn = answer_in_context(real_kb, "那要带什么材料？", "residence-permit")
    assert turn.contextual is True
    assert turn.item_id == "residence-permit"
    assert turn.answer.answered
    assert turn.answer.item_id == "residence-permit"
    assert "身份证" in turn.answer.answer
    assert turn.answer.item is not None
    assert turn.answer.item["materials"][0] == "居民身份证（原件1份）"


@pytest.mark.encoder
def test_the_same_follow_up_without_context_is_not_guessed(real_kb: Any) -> None:
    turn = answer_in_context(real_kb, "那要带什么材料？", None)
    assert turn.contextual is False
    assert turn.item_id is None
    assert not turn.answer.answered
    assert "请告诉我您要办理的具体事项" in turn.answer.answer


@pytest.mark.encoder
@pytest.mark.parametrize(
    ("question", "context", "expected", "words"),
    [
        ("多久能办好？", "residence-permit", "residence-permit", "15个工作日"),
        ("收费吗", "divorce-registration", "divorce-registration", "不收费"),
        ("能代办吗", "residence-permit", "residence-permit", "委托"),
        ("那个怎么弄", "social-card-lost", "social-card-lost", "挂失"),
    ],
)
def test_follow_ups_about_other_facets(
    real_kb: Any, question: str, context: str, expected: str, words: str
) -> None:
    turn = answer_in_context(real_kb, question, context)
    assert (turn.contextual, turn.item_id, turn.answer.item_id) == (True, expected, expected)
    assert words in turn.answer.answer


@pytest.mark.encoder
@pytest.mark.parametrize(
    ("question", "expected", "words"),
    [
        ("那结婚登记呢要带什么", "marriage-registration", "身份证"),
        ("那办结婚证呢，要带什么", "marriage-registration", "合影"),
        ("社保卡丢了怎么办", "social-card-lost", "挂失"),
        ("上户口要带什么材料", "hukou-newborn", "出生医学证明"),
    ],
)
def test_a_message_naming_another_item_leaves_the_context(
    real_kb: Any, question: str, expected: str, words: str
) -> None:
    assert _names_an_item(real_kb, question, besides="residence-permit")
    turn = answer_in_context(real_kb, question, "residence-permit")
    assert turn.contextual is False
    assert turn.item_id == expected
    assert turn.answer.item_id == expected
    assert words in turn.answer.answer


@pytest.mark.encoder
@pytest.mark.parametrize(
    ("question", "context", "named"),
    [
        ("那社保卡呢，要带什么材料", "residence-permit", "social-card-apply"),
        ("办营业执照要多少钱", "residence-permit", "individual-business"),
        ("那离婚呢？在哪里办", "marriage-registration", "divorce-registration"),
    ],
)
def test_a_short_name_of_another_service_is_not_answered_about_the_old_one(
    real_kb: Any, question: str, context: str, named: str
) -> None:
    plain = real_kb.ask(question)
    assert plain.answered and plain.item_id == named  # the message alone is clear
    turn = answer_in_context(real_kb, question, context)
    assert turn.answer.item_id != context


@pytest.mark.encoder
@pytest.mark.parametrize("question", ["就是那个东西", "我想问问那个"])
def test_vague_message_without_a_facet_is_not_scoped(real_kb: Any, question: str) -> None:
    assert not any(f in question for f in FACETS)
    turn = answer_in_context(real_kb, question, "residence-permit")
    assert turn.contextual is False
    assert not turn.answer.answered
    assert turn.answer.item_id is None
    assert turn.answer.answer.startswith("抱歉，知识库里没有找到能准确回答这个问题的内容")
    # the conversation is still about the item talked about before
    assert turn.item_id == "residence-permit"


@pytest.mark.encoder
def test_unknown_context_item_is_ignored(real_kb: Any) -> None:
    turn = answer_in_context(real_kb, "那要带什么材料？", "no-such-item")
    assert turn.contextual is False
    assert not turn.answer.answered


@pytest.mark.encoder
@pytest.mark.parametrize(
    ("item_id", "words"),
    [("residence-permit", "居住满半年"), ("social-card-apply", "即时制卡")],
)
def test_button_with_no_question_gives_the_items_overview(
    real_kb: Any, item_id: str, words: str
) -> None:
    turn = answer_in_context(real_kb, "", None, item_id)
    assert (turn.contextual, turn.item_id, turn.answer.item_id) == (True, item_id, item_id)
    assert turn.answer.answered
    assert words in turn.answer.answer


@pytest.mark.encoder
def test_named_item_is_asked_with_the_question_and_wins_over_the_context(real_kb: Any) -> None:
    turn = answer_in_context(real_kb, "多久能办好？", "residence-permit", "marriage-registration")
    assert turn.item_id == "marriage-registration"
    assert turn.answer.item_id == "marriage-registration"
    assert "当场发给结婚证" in turn.answer.answer


@pytest.mark.encoder
def test_named_item_not_in_the_catalogue_is_not_trusted(real_kb: Any) -> None:
    turn = answer_in_context(real_kb, "居住证怎么办理", None, "no-such-item")
    assert turn.contextual is False
    assert turn.item_id == "residence-permit"
    empty = answer_in_context(real_kb, "", None, "no-such-item")
    assert (empty.item_id, empty.answer.answered) == (None, False)


@pytest.mark.encoder
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("居住证", "residence-permit"),
        ("social-card-apply", "social-card-apply"),  # the synonym mapping found the id
        ("不存在的东西xyz", None),
        ("", None),
        (None, None),
    ],
)
def test_resolve_item(real_kb: Any, value: str | None, expected: str | None) -> None:
    assert resolve_item(real_kb, value) == expected


# == skills.answer ==========================================================================
@pytest.mark.encoder
def test_answered_question_resets_misses(real_kb: Any, db: Database) -> None:
    out = skills.answer(make_deps(db, real_kb), "居住证怎么办理", None, None, misses=1)
    assert out.answered
    assert (out.item_id, out.misses, out.offered_human) == ("residence-permit", 0, False)
    assert out.pending_question is None
    [msg] = out.messages
    assert msg["text"].startswith("需在本区居住满半年")
    assert "\n需要材料：居民身份证（原件1份）；" in msg["text"]
    assert msg["text"].endswith("\n办理时限：受理之日起15个工作日内制证；可选择邮寄送达。")
    assert msg["buttons"][-1] == {"title": "转人工", "payload": "/request_human"}
    assert {"title": "办居住证要带哪些材料？", "payload": "办居住证要带哪些材料？"} in msg[
        "buttons"
    ]
    assert msg["links"] == [
        {"title": "查看办事指南：居住证申领", "url": "/guides/residence-permit"}
    ]


@pytest.mark.encoder
def test_first_miss_asks_back_with_the_nearest_items(real_kb: Any, db: Database) -> None:
    question = "就是那个东西"
    nearest = [c["item_id"] for c in real_kb.ask(question).candidates[:3]]
    assert len(nearest) == 3
    out = skills.answer(make_deps(db, real_kb), question, "residence-permit", None, misses=0)
    assert not out.answered
    assert (out.item_id, out.misses, out.offered_human) == ("residence-permit", 1, False)
    assert out.pending_question == question
    [msg] = out.messages
    assert msg["text"] == "抱歉，我不太确定您问的是哪件事。您是想问下面哪一项？"
    assert msg["buttons"] == [
        *({"title": real_kb.catalog.items[i].name, "payload": item_payload(i)} for i in nearest),
        {"title": "转人工", "payload": "/request_human"},
    ]
    assert msg["links"] == []


@pytest.mark.encoder
def test_miss_with_nothing_to_offer_says_why(real_kb: Any, db: Database) -> None:
    out = skills.answer(make_deps(db, real_kb), "那要带什么材料？", None, None, misses=0)
    assert out.misses == 1
    [msg] = out.messages
    assert msg["text"].startswith("请告诉我您要办理的具体事项")
    assert msg["buttons"] == [replies.HUMAN]


@pytest.mark.encoder
def test_second_miss_offers_a_person(real_kb: Any, db: Database) -> None:
    out = skills.answer(
        make_deps(db, real_kb, now=MONDAY_10), "就是那个东西", "residence-permit", None, misses=1
    )
    assert out.offered_human is True
    assert (out.item_id, out.misses, out.pending_question) == (
        "residence-permit",
        0,
        "就是那个东西",
    )
    [msg] = out.messages
    assert msg["text"] == "看来我没能帮上忙，需要为您转接人工客服吗？\n您也可以拨打12345热线。"
    assert msg["buttons"] == [
        {"title": "好的，转人工", "payload": "/affirm"},
        {"title": "不用了", "payload": "/deny"},
    ]


@pytest.mark.encoder
def test_offer_out_of_hours_says_when_people_are_back(real_kb: Any, db: Database) -> None:
    out = skills.answer(
        make_deps(db, real_kb, now=SUNDAY_EVENING), "就是那个东西", None, None, misses=1
    )
    assert out.offered_human
    assert out.messages[0]["text"] == (
        "看来我没能帮上忙，需要为您转接人工客服吗？"
        "（现在是非工作时间，工作人员明天（周一）上午9:00上班后联系您）"
        "\n您也可以拨打12345热线。"
    )


def test_answer_while_the_knowledge_base_is_not_ready(
    shared_hashing_kb: Any, db: Database, hashing_encoder: Any, shared_text: Any
) -> None:
    from knowledge_base.service import KnowledgeBase

    not_started = KnowledgeBase(
        shared_hashing_kb.settings, db, encoder=hashing_encoder, text=shared_text
    )
    out = skills.answer(make_deps(db, not_started), "居住证怎么办理", "social-card-apply", None, 1)
    assert (out.answered, out.item_id, out.misses, out.offered_human) == (
        False,
        "social-card-apply",
        1,
        False,
    )
    [msg] = out.messages
    assert msg["text"] == "知识库正在更新，请稍后再问；着急的话可以转人工或拨打12345热线。"
    assert msg["buttons"] == [replies.HUMAN]


# == skills.record_handoff ==================================================================
def test_handoff_in_hours_stores_the_request_with_the_phone_from_the_transcript(
    shared_hashing_kb: Any, db: Database
) -> None:
    conv = conversation(db, "居住证怎么办", "我的电话是13912345678，请联系我", "好的谢谢")
    out = skills.record_handoff(
        make_deps(db, shared_hashing_kb, MONDAY_10), conv, "request", "转人工"
    )
    [row] = handoffs(db)
    assert (row.conversation_id, row.reason, row.status) == (conv, "request", "pending")
    # "转人工" says nothing: the summary is the resident's question (not the phone or thanks)
    assert (row.summary, row.phone, row.in_hours) == ("居住证怎么办", "13912345678", True)
    assert out == [
        replies.message(
            "您的转人工请求已记录，正在为您转接工作人员，请稍候。"
            "对话记录会一并转给工作人员，您不用再说一遍。\n紧急情况请拨打12345热线。"
        )
    ]


def test_handoff_out_of_hours_says_when_and_asks_for_a_phone(
    shared_hashing_kb: Any, db: Database
) -> None:
    conv = conversation(db, "窗口态度很差")
    out = skills.record_handoff(
        make_deps(db, shared_hashing_kb, SATURDAY_AFTERNOON), conv, "complaint", "窗口态度很差"
    )
    [row] = handoffs(db)
    assert (row.reason, row.phone, row.in_hours) == ("complaint", "", False)
    assert out[0]["text"] == (
        "您的投诉已记录。现在是非工作时间，工作人员明天（周日）上午9:00上班后"
        "会按对话记录处理并联系您。如需回电，请留下手机号码。\n紧急情况请拨打12345热线。"
    )
    assert (
        out[0]["text"]
        != skills.record_handoff(
            make_deps(db, shared_hashing_kb, MONDAY_10), conv, "complaint", "窗口态度很差"
        )[0]["text"]
    )


def test_handoff_phone_is_the_latest_one_the_resident_gave(
    shared_hashing_kb: Any, db: Database
) -> None:
    conv = conversation(
        db,
        "旧号码13800000000",
        "编号213912345678不是手机号",  # 12 digits: not a phone number
        "换个号码吧，打15912345678",
        "受理号20260914",
    )
    with db.session() as s:  # what the bot said is not searched (it quotes numbers too)
        s.add(
            ChatMessage(
                conversation_id=conv, direction="out", author="bot", text="请拨打18600000000"
            )
        )
    skills.record_handoff(make_deps(db, shared_hashing_kb), conv, "request", "转人工")
    assert handoffs(db)[0].phone == "15912345678"


def test_handoff_phone_given_explicitly_wins(shared_hashing_kb: Any, db: Database) -> None:
    conv = conversation(db, "我的电话是13912345678")
    skills.record_handoff(
        make_deps(db, shared_hashing_kb), conv, "request", "转人工", "13700001111"
    )
    assert handoffs(db)[0].phone == "13700001111"


def test_handoff_for_a_conversation_only_rasa_knows(shared_hashing_kb: Any, db: Database) -> None:
    summary = "长" * 600
    skills.record_handoff(make_deps(db, shared_hashing_kb), "rasa-shell-sender", "request", summary)
    with db.session() as s:
        conv = s.get(Conversation, "rasa-shell-sender")
        assert conv is not None
        assert (conv.channel, conv.user_key, conv.state) == ("rasa", "rasa-shell-sender", "bot")
    [row] = handoffs(db)
    assert row.summary == "长" * 500
    assert row.phone == ""


def test_suggestion_is_stored_and_thanked(shared_hashing_kb: Any, db: Database) -> None:
    conv = conversation(db, "建议周末多开几个窗口")
    out = skills.record_handoff(
        make_deps(db, shared_hashing_kb), conv, "suggestion", "建议周末多开几个窗口"
    )
    assert handoffs(db)[0].reason == "suggestion"
    assert [m["text"] for m in out] == [
        "感谢您的建议！已记录并转交中心相关部门，我们会认真研究改进。"
    ]
    assert out[0]["buttons"] == []


def test_remember_keeps_the_context_of_known_conversations(
    shared_hashing_kb: Any, db: Database
) -> None:
    conv = conversation(db)
    deps = make_deps(db, shared_hashing_kb)
    offered = skills.AnswerOutcome([], "residence-permit", 0, True, "办那个要多久")
    skills.remember(deps, conv, offered)
    skills.remember(deps, "unknown-conversation", offered)  # nothing to update
    with db.session() as s:
        row = s.get(Conversation, conv)
        assert row is not None
        assert (row.item_id, row.misses, row.pending_question) == (
            "residence-permit",
            0,
            "办那个要多久",
        )
        assert s.get(Conversation, "unknown-conversation") is None
    skills.remember(deps, conv, skills.AnswerOutcome([], "residence-permit", 1))
    with db.session() as s:
        row = s.get(Conversation, conv)
        assert row is not None
        assert (row.misses, row.pending_question) == (1, None)


# == take_number and the other skills ========================================================
@pytest.mark.parametrize(
    ("item_id", "where"),
    [
        ("residence-permit", "办理“居住证申领”请到1楼A区公安分局窗口，号码以A开头。"),
        (
            "social-card-apply",
            "办理“社会保障卡申领”请到1楼B区人力资源和社会保障局窗口，号码以B开头。",
        ),
        ("marriage-registration", "办理“结婚登记”请到2楼C区民政局窗口，号码以E开头。"),
        (None, "取号时在屏幕上选择您要办理的事项即可。"),
        ("no-such-item", "取号时在屏幕上选择您要办理的事项即可。"),
    ],
)
def test_take_number(shared_hashing_kb: Any, db: Database, item_id: str | None, where: str) -> None:
    [msg] = skills.take_number(make_deps(db, shared_hashing_kb), item_id)
    assert msg["text"] == (
        "现场取号：在青禾区政务服务中心大厅入口的自助取号机取号（可刷身份证）。"
        + where
        + "\n预约办事：通过“青禾办”微信小程序提前预约，到场后扫预约二维码签到。"
        "\n温馨提示：每个时段结束前30分钟停止现场取号。"
    )
    assert msg["buttons"] == [{"title": "大厅几点开门？", "payload": "大厅几点开门？"}]


def test_queue_and_ticket_status(shared_hashing_kb: Any, db: Database) -> None:
    deps = make_deps(db, shared_hashing_kb)
    [queue] = skills.queue_status(deps)
    assert queue["text"].startswith("用手机扫描排队小票上的二维码")
    # without the ticket bridge (this part alone) the hotline is the way
    [ticket] = skills.ticket_status(deps, "c1", "受理号20260914办好了吗", "20260914")
    assert ticket["text"] == (
        "查询工单办理进度：请拨打12345热线，报受理号和登记时留的手机号后四位。"
    )
    assert ticket["buttons"] == [replies.HUMAN]


def test_hotline_comes_from_centre_yml(shared_hashing_kb: Any, db: Database) -> None:
    assert make_deps(db, shared_hashing_kb).hotline == "12345"


# == replies ===============================================================================
def an_answer(**changes: Any) -> Answer:
    values: dict[str, Any] = {
        "question": "居住证怎么办理",
        "answered": True,
        "item_id": "residence-permit",
        "confidence": 0.99,
        "answer": "到1楼A区A05窗口办理。",
        "suggestions": [],
        "item": {
            "title": "居住证申领",
            "materials": ["甲（原件1份）", "乙（原件1份）", "丙（原件1份）", "丁（原件1份）"],
            "time_limit": "15个工作日",
        },
    }
    values.update(changes)
    return Answer(**values)


def test_answer_message_adds_key_facts_buttons_and_the_guide_link() -> None:
    msg = replies.answer_message(an_answer(), "https://zw.example.cn")
    assert msg["text"] == (
        "到1楼A区A05窗口办理。"
        "\n需要材料：甲（原件1份）；乙（原件1份）；丙（原件1份）；丁（原件1份）。"
        "\n办理时限：15个工作日。"
    )
    # no suggestions: the standard follow-ups, then a person
    assert [b["title"] for b in msg["buttons"]] == [*replies.FOLLOW_UPS, "转人工"]
    assert msg["links"] == [
        {
            "title": "查看办事指南：居住证申领",
            "url": "https://zw.example.cn/guides/residence-permit",
        }
    ]


def test_answer_message_does_not_repeat_facts_already_said() -> None:
    five = [f"材料{i}" for i in range(5)]
    msg = replies.answer_message(
        an_answer(
            answer="办理时限15个工作日。",
            item={"title": "居住证申领", "materials": five, "time_limit": "15个工作日"},
            notice="您的问题较长，只按前200个字理解。",
        )
    )
    assert msg["text"] == (
        "您的问题较长，只按前200个字理解。\n办理时限15个工作日。"
        "\n需要材料：材料0；材料1；材料2；材料3等。"
    )
    text_with_materials = replies.answer_message(an_answer(answer="材料：身份证。"))["text"]
    assert "需要材料" not in text_with_materials


def test_answer_message_buttons_skip_the_question_just_asked() -> None:
    asked = "办居住证要带哪些材料？"
    suggestions = [asked, "居住证办好要多久？", "办居住证收费吗？", "居住证能代办吗？"]
    msg = replies.answer_message(an_answer(question=asked, suggestions=suggestions))
    assert [b["payload"] for b in msg["buttons"]] == [
        "居住证办好要多久？",
        "办居住证收费吗？",
        "/request_human",
    ]
    # without suggestions, a follow-up starting like the question is left out
    plain = replies.answer_message(an_answer(question="需要带什么材料？"))
    assert [b["title"] for b in plain["buttons"]] == ["多久能办好？", "在哪个窗口办？", "转人工"]


def test_answer_message_without_an_item_has_no_link() -> None:
    msg = replies.answer_message(an_answer(item_id=None, item=None))
    assert msg["links"] == []
    assert msg["text"] == "到1楼A区A05窗口办理。"


def test_ask_back_drops_candidates_not_in_the_catalogue(shared_hashing_kb: Any) -> None:
    answer = an_answer(
        answered=False,
        candidates=[{"item_id": "retired-item"}, {"item_id": "hpf-loan"}],
    )
    msg = replies.ask_back_message(answer, shared_hashing_kb.catalog)
    assert msg["buttons"] == [
        {"title": "住房公积金个人住房贷款", "payload": item_payload("hpf-loan")},
        replies.HUMAN,
    ]


def test_item_button_payload_keeps_chinese_titles_and_an_exact_id() -> None:
    assert replies.item_button("hukou-newborn", "新生儿出生登记（上户口）") == {
        "title": "新生儿出生登记（上户口）",
        "payload": '/ask_service{"service_item": "hukou-newborn"}',
    }


def test_greeting_in_and_out_of_hours(shared_hashing_kb: Any) -> None:
    catalog = shared_hashing_kb.catalog
    cal = WorkCalendar.from_config(catalog.centre.get("opening"))
    open_ = replies.greeting_message(catalog, cal, MONDAY_10)
    closed = replies.greeting_message(catalog, cal, SUNDAY_EVENING)
    head = (
        "您好，我是青禾区政务服务中心的智能助手，可以为您解答办事问题。"
        "\n大厅办公时间：周一至周五 上午9:00—12:00，下午13:30—17:00。"
    )
    assert (
        open_["text"] == head + "\n现在是工作时间，需要时可以随时转人工。\n请问您要办理什么业务？"
    )
    assert closed["text"] == (
        head
        + "\n现在是非工作时间，我照常为您解答；人工服务明天（周一）上午9:00恢复。"
        + "\n请问您要办理什么业务？"
    )
    assert [b["title"] for b in open_["buttons"]] == [
        "居住证怎么办？",
        "社保卡丢了怎么补？",
        "大厅几点开门？",
    ]


def test_an_answer_links_the_items_form_samples(hashing_kb: Any, tmp_path: Any) -> None:
    from banshi.settings import SAMPLE_KB_DIR
    from kiosk.forms.library import FormLibrary, departments_and_items

    departments, items = departments_and_items(hashing_kb.catalog)
    library = FormLibrary(
        hashing_kb.db, departments, items, SAMPLE_KB_DIR / "forms", tmp_path / "forms"
    )
    library.start()
    deps = make_deps(hashing_kb.db, hashing_kb)
    deps.forms = library
    out = skills.answer(deps, "居住证怎么办理", None, None, misses=0)
    assert out.answered and out.item_id == "residence-permit"
    assert out.messages[0]["links"] == [
        {"title": "查看办事指南：居住证申领", "url": "/guides/residence-permit"},
        {"title": "填表样例：居住证申领登记表", "url": "/forms/residence-permit-application"},
    ]
    assert library.forms_for_item("divorce-registration") == [
        ("divorce-registration-application", "离婚登记申请书"),
        ("divorce-agreement", "离婚协议书"),
    ]
