"""Normalisation and tokenisation of Chinese questions and documents."""

from __future__ import annotations

import gc
import warnings

import pytest

from knowledge_base.text import STOPWORDS, TextPipeline


@pytest.fixture
def text(shared_text: TextPipeline) -> TextPipeline:
    return shared_text  # the session's pipeline: jieba takes a while to load


def test_traditional_is_converted_to_simplified(text: TextPipeline) -> None:
    n = text.normalize("身份證過期了怎麼換")
    assert "身份证" in n
    assert "过期" in n
    assert "證" not in n and "過" not in n


def test_full_width_becomes_half_width_and_lower_case(text: TextPipeline) -> None:
    assert text.normalize("ＡＢＣ１２３号") == "abc123号"
    assert text.normalize("Ｂ０１窗口") == "b01窗口"


def has_content(text: TextPipeline, raw: str) -> bool:
    """What the knowledge base checks before answering: a letter or digit survives."""
    return any(ch.isalnum() for ch in text.normalize(raw))


@pytest.mark.parametrize("emoji_only", ["😀", "😀🎉👍", "❤️", "👨‍👩‍👧", "🇨🇳"])
def test_emoji_only_normalises_to_empty(text: TextPipeline, emoji_only: str) -> None:
    assert has_content(text, emoji_only) is False
    assert text.normalize(emoji_only) == ""


def test_emoji_inside_a_question_is_removed(text: TextPipeline) -> None:
    n = text.normalize("社保卡😭丢失👍怎么补")
    assert "😭" not in n and "👍" not in n
    assert "社保卡" in n and "怎么补" in n


@pytest.mark.parametrize(
    "raw, canonical",
    [
        ("公基金怎么取", "公积金"),
        ("社保卡丢了咋整", "怎么办"),
        ("社会保障卡补办", "社保卡"),
        ("暂住证怎么弄", "居住证"),
        ("户口本丢了", "户口簿"),
        ("低保怎么申请", "最低生活保障"),
    ],
)
def test_synonyms_and_typos_map_to_one_spelling(
    text: TextPipeline, raw: str, canonical: str
) -> None:
    assert canonical in text.normalize(raw)


def test_synonym_variant_itself_disappears(text: TextPipeline) -> None:
    n = text.normalize("社会保障卡丢了咋整")
    assert n == "社保卡丢失怎么办"


def test_pinyin_is_decoded_into_domain_words(text: TextPipeline) -> None:
    n = text.normalize("shebaoka diule zenme ban")
    assert "社保卡" in n
    assert "怎么办" in n
    assert "shebaoka" not in n


def test_pinyin_in_capitals_is_decoded(text: TextPipeline) -> None:
    assert "公积金" in text.normalize("GONGJIJIN TIQU")


def test_english_that_is_not_pinyin_is_left_alone(text: TextPipeline) -> None:
    assert text.normalize("hello world") == "hello world"


def test_whitespace_is_collapsed(text: TextPipeline) -> None:
    assert text.normalize("  社保卡 \t\n  补办  ") == "社保卡 补办"


@pytest.mark.parametrize("blank", ["", "   ", "\n\t", "。。。", "？？！"])
def test_blank_and_punctuation_only_have_no_content(text: TextPipeline, blank: str) -> None:
    assert has_content(text, blank) is False


def test_tokens_drop_stopwords_and_punctuation(text: TextPipeline) -> None:
    tokens = text.tokens(text.normalize("我想问一下，社保卡的挂失怎么办理？"))
    assert "社保卡" in tokens
    assert "挂失" in tokens
    for word in ("我", "想", "一下", "的", "，", "？"):
        assert word not in tokens
    assert not set(tokens) & STOPWORDS


def test_tokens_use_the_domain_dictionary(text: TextPipeline) -> None:
    assert "公积金" in text.tokens(text.normalize("租房提取公积金"))


def test_add_words_teaches_the_tokenizer(text: TextPipeline) -> None:
    word = "青禾蓝莓窗口"  # a made-up word no document uses
    assert word not in text.tokens(text.normalize(f"{word}在哪"))
    text.add_words([word])
    assert word in text.tokens(text.normalize(f"{word}在哪"))
    assert word in text.domain_words()


def test_tokenizer_start_leaks_no_file_handle() -> None:
    """The project runs its tests with warnings as errors; starting the tokenizer must not
    leave the user dictionary file open (jieba's load_userdict(path) never closes it, so the
    pipeline has to hand it an open file instead)."""
    fresh = TextPipeline()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh.tokens("社保卡")
        gc.collect()
    leaks = [
        str(w.message)
        for w in caught
        if issubclass(w.category, ResourceWarning) and "userdict" in str(w.message)
    ]
    assert leaks == []
