"""Answer quality on Chinese questions with the real default encoder (use-m3).

Uses the session-scoped ``real_kb`` (the sample data, built once); nothing here writes to it.
"""

from __future__ import annotations

import pytest

from knowledge_base.answer import Answer
from knowledge_base.service import KnowledgeBase

pytestmark = pytest.mark.encoder

CONTRACT_KEYS = {"question", "answered", "item_id", "confidence", "answer", "sources", "candidates"}
ASK_WHICH = "请告诉我您要办理的具体事项"


def faq_questions(kb: KnowledgeBase, item_id: str) -> set[str]:
    return {
        d.data["question"] for d in kb.docs.values() if d.kind == "faq" and d.item_id == item_id
    }


def assert_answered(answer: Answer, item_id: str) -> None:
    assert answer.answered, (answer.question, answer.confidence, answer.candidates)
    assert answer.item_id == item_id, (answer.question, answer.candidates)
    assert answer.confidence >= 0.5
    assert answer.candidates[0]["item_id"] == item_id


# -- in scope ------------------------------------------------------------------------------
def test_lost_social_security_card(real_kb: KnowledgeBase) -> None:
    a = real_kb.ask("社保卡丢了怎么办")
    assert_answered(a, "social-card-lost")
    assert "挂失" in a.answer
    assert "1楼B区" in a.answer
    assert "B01" in a.answer
    assert a.item is not None and a.item["department"] == "人力资源和社会保障局"


def test_residence_permit_materials(real_kb: KnowledgeBase) -> None:
    a = real_kb.ask("居住证要带什么材料")
    assert_answered(a, "residence-permit")
    assert "身份证" in a.answer
    assert "1楼A区" in a.answer
    assert a.item is not None
    assert "居民身份证（原件1份）" in a.item["materials"]


def test_housing_fund_withdrawal_for_rent(real_kb: KnowledgeBase) -> None:
    a = real_kb.ask("公积金租房提取")
    assert_answered(a, "hpf-withdraw-rent")
    assert "2楼C区" in a.answer
    assert a.item is not None and a.item["department"] == "住房公积金管理中心"


@pytest.mark.parametrize(
    "question, fact",
    [
        ("几点下班", "17:00"),
        ("周六上班吗", "周六上午9:00—12:00"),
    ],
)
def test_opening_hours(real_kb: KnowledgeBase, question: str, fact: str) -> None:
    a = real_kb.ask(question)
    assert_answered(a, "hall-info")
    assert fact in a.answer


@pytest.mark.parametrize(
    "question, item_id",
    [
        ("身份证到期了怎么换", "id-card-renewal"),
        ("结婚登记需要带什么", "marriage-registration"),
        ("异地就医怎么备案", "medical-remote"),
        ("二手房过户要交哪些税", "property-transfer"),
        ("个体户营业执照怎么办", "individual-business"),
        ("孩子上小学怎么报名", "school-enrollment"),
        ("营业执照丢了怎么补", "license-replace"),
        pytest.param(
            "新生儿怎么上户口",
            "hukou-newborn",
            # Known miss, kept visible: the FAQ variant 新生儿没户口怎么参保 (newborn-insurance)
            # outranks the guide; strict, so this fails once ranking gets it right.
            marks=pytest.mark.xfail(strict=True, reason="ranked as newborn-insurance"),
        ),
    ],
)
def test_more_in_scope_questions(real_kb: KnowledgeBase, question: str, item_id: str) -> None:
    assert_answered(real_kb.ask(question), item_id)


def test_answer_cites_its_source_document(real_kb: KnowledgeBase) -> None:
    a = real_kb.ask("社保卡丢了怎么办")
    assert len(a.sources) == 1
    source = a.sources[0]
    doc = real_kb.docs[source["id"]]
    assert doc.item_id == "social-card-lost"
    assert source["kind"] == doc.kind
    assert source["title"] == doc.title
    assert set(source) == {"id", "kind", "title", "section"}


def test_suggestions_are_other_faq_questions_of_the_same_item(real_kb: KnowledgeBase) -> None:
    a = real_kb.ask("居住证要带什么材料")
    assert 1 <= len(a.suggestions) <= 3
    questions = faq_questions(real_kb, "residence-permit")
    assert set(a.suggestions) <= questions
    answered_from = real_kb.docs[a.sources[0]["id"]]
    if answered_from.kind == "faq":
        assert answered_from.data["question"] not in a.suggestions


def test_answer_is_not_overlong(real_kb: KnowledgeBase) -> None:
    for q in ["居住证要带什么材料", "二手房过户流程", "低保申请条件"]:
        assert len(real_kb.ask(q).answer) <= 480


# -- out of scope ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "question",
    ["今天天气怎么样", "帮我写一首诗", "股票明天会涨吗", "护照怎么办理", "推荐一家好吃的火锅店"],
)
def test_out_of_scope_is_not_answered(real_kb: KnowledgeBase, question: str) -> None:
    a = real_kb.ask(question)
    assert a.answered is False, (question, a.item_id, a.confidence)
    assert a.item_id is None
    assert a.confidence < 0.5
    assert "没有找到" in a.answer
    assert "12345" in a.answer
    assert a.sources == []
    assert 1 <= len(a.candidates) <= 5
    names = {i.name for i in real_kb.catalog.items.values()}
    assert all(s.removesuffix("怎么办理？") in names for s in a.suggestions)


# -- bad input never crashes ------------------------------------------------------------------
@pytest.mark.parametrize("question", ["", "   ", "\n\t", "😀😀😀", "🙏👍❤️", "？？？"])
def test_no_text_is_refused_asking_for_text(real_kb: KnowledgeBase, question: str) -> None:
    a = real_kb.ask(question)
    assert a.answered is False
    assert a.confidence == 0.0
    assert ASK_WHICH in a.answer
    assert a.candidates == []


@pytest.mark.parametrize("question", ["怎么申请呢", "收费吗？", "要多久能办好", "在哪个窗口办理"])
def test_a_question_naming_no_service_asks_which(real_kb: KnowledgeBase, question: str) -> None:
    """Answering "how do I apply?" with some service would be a guess."""
    a = real_kb.ask(question)
    assert a.answered is False, (question, a.item_id)
    assert ASK_WHICH in a.answer
    assert "居住证要带什么材料" in a.answer


@pytest.mark.parametrize(
    ("question", "item_id"), [("几点开门", "hall-info"), ("收费吗 居住证", "residence-permit")]
)
def test_one_specific_word_is_enough(real_kb: KnowledgeBase, question: str, item_id: str) -> None:
    a = real_kb.ask(question)
    assert a.answered, (question, a.confidence, a.candidates)
    assert a.item_id == item_id


def test_ten_thousand_characters(real_kb: KnowledgeBase) -> None:
    question = ("我的社保卡丢了，想问问怎么补办。" * 700)[:10_000]
    a = real_kb.ask(question)
    assert "500" in a.notice
    assert len(a.question) == 500
    if a.answered:
        assert a.item_id == "social-card-lost"
    else:
        assert "没有找到" in a.answer


def test_ten_thousand_random_characters_do_not_crash(real_kb: KnowledgeBase) -> None:
    a = real_kb.ask("".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(10_000)))
    assert "500" in a.notice
    assert 0.0 <= a.confidence <= 1.0


def test_traditional_chinese(real_kb: KnowledgeBase) -> None:
    a = real_kb.ask("身份證過期了怎麼換")
    assert_answered(a, "id-card-renewal")
    assert "工本费" in a.answer  # answers are in simplified Chinese


def test_pinyin(real_kb: KnowledgeBase) -> None:
    assert_answered(real_kb.ask("shebaoka diule zenme ban"), "social-card-lost")


def test_mixed_english(real_kb: KnowledgeBase) -> None:
    assert_answered(real_kb.ask("请问ID card丢了怎么补办"), "id-card-lost")


def test_emoji_around_a_real_question(real_kb: KnowledgeBase) -> None:
    assert_answered(real_kb.ask("😭社保卡丢了怎么办🙏"), "social-card-lost")


def test_full_width_and_typos(real_kb: KnowledgeBase) -> None:
    assert_answered(real_kb.ask("公基金租房提取需要什么材料？？"), "hpf-withdraw-rent")


@pytest.mark.parametrize(
    "question",
    ["<script>alert(1)</script>", "' OR 1=1 --", "\x00\x01\x02", "a" * 600, "1234567890", "?" * 50],
)
def test_odd_input_never_crashes(real_kb: KnowledgeBase, question: str) -> None:
    a = real_kb.ask(question)
    assert isinstance(a.answer, str) and a.answer
    assert 0.0 <= a.confidence <= 1.0


# -- the contract ------------------------------------------------------------------------------
@pytest.mark.parametrize("question", ["社保卡丢了怎么办", "今天天气怎么样", ""])
def test_contract_has_exactly_the_agreed_keys(real_kb: KnowledgeBase, question: str) -> None:
    c = real_kb.ask(question).contract()
    assert set(c) == CONTRACT_KEYS
    assert c["question"] == question
    assert isinstance(c["answered"], bool)
    assert 0.0 <= c["confidence"] <= 1.0
    assert isinstance(c["answer"], str) and c["answer"]
    assert c["item_id"] is None or c["item_id"] in real_kb.catalog.items
    for candidate in c["candidates"]:
        assert set(candidate) == {"item_id", "score"}
        assert candidate["item_id"] in real_kb.catalog.items
        assert isinstance(candidate["score"], float)
    scores = [cand["score"] for cand in c["candidates"]]
    assert scores == sorted(scores, reverse=True)
    if c["answered"]:
        assert c["item_id"] == c["candidates"][0]["item_id"]


def test_to_dict_adds_suggestions_item_and_notice(real_kb: KnowledgeBase) -> None:
    d = real_kb.ask("社保卡丢了怎么办").to_dict()
    assert set(d) == CONTRACT_KEYS | {"suggestions", "item", "notice"}
    assert d["item"]["id"] == "social-card-lost"


# -- accuracy floor on the held-out question set ---------------------------------------------
def test_accuracy_floor_on_the_held_out_questions(real_kb: KnowledgeBase) -> None:
    """bench/data/kb_heldout.jsonl: questions written for evaluation and never used for
    calibration, in every style (colloquial, typos, pinyin, traditional, long, out of
    scope). The floors are well below the measured values (about 82 % answered right, 99 %
    right item in the top three, 94 % of must-not-answer questions refused); falling under
    them means retrieval or calibration broke, not that one question moved."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "data" / "kb_heldout.jsonl"
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    rows = rows[::2]  # every other question: every style and item range, half the time
    in_scope = [r for r in rows if r["item_id"]]
    out_of_scope = [r for r in rows if not r["item_id"]]
    assert len(in_scope) >= 30 and len(out_of_scope) >= 10
    right = top3 = wrong = refused = 0
    for r in in_scope:
        a = real_kb.ask(r["question"])
        right += a.answered and a.item_id == r["item_id"]
        wrong += a.answered and a.item_id != r["item_id"]
        top3 += r["item_id"] in [c["item_id"] for c in a.candidates[:3]]
    for r in out_of_scope:
        refused += not real_kb.ask(r["question"]).answered
    assert right / len(in_scope) >= 0.70
    assert top3 / len(in_scope) >= 0.90
    assert wrong / len(in_scope) <= 0.10
    assert refused / len(out_of_scope) >= 0.80
