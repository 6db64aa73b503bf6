"""How a call is shown and said: ``请A012号到A03号窗口办理``."""

from __future__ import annotations

import doctest

import pytest

from kiosk import announce
from kiosk.announce import cardinal, display_text, spoken_text, spoken_ticket, spoken_window


def call(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "type": "call",
        "id": 12,
        "number": "A012",
        "window": "A03",
        "window_name": "A03号窗口",
        "service": "户籍与身份证",
        "recall": False,
        "at": "2026-03-02T09:15:04+08:00",
    }
    values.update(overrides)
    return values


def test_display_text() -> None:
    assert display_text(call()) == "请A012号到A03号窗口办理"
    assert display_text(call(number="A012", window="3", window_name="3号窗口")) == (
        "请A012号到3号窗口办理"
    )
    assert display_text(call(window_name="")) == "请A012号到A03号窗口办理"


def test_spoken_text_says_it_twice() -> None:
    assert spoken_text(call()) == "请A零一二号，到A三号窗口办理。\n\n请A零一二号，到A三号窗口办理。"


def test_a_recall_is_prefixed_once() -> None:
    assert spoken_text(call(recall=True, window_name="3号窗口")) == (
        "重复呼叫，请A零一二号，到三号窗口办理。\n\n请A零一二号，到三号窗口办理。"
    )


@pytest.mark.parametrize(
    ("number", "said"),
    [
        ("A012", "A零一二"),
        ("B100", "B一零零"),
        ("C007", "C零零七"),
        ("a5", "A五"),
        ("AB012", "A B零一二"),  # espeak-ng would read "AB" as an English word
        ("1234", "一二三四"),
    ],
)
def test_ticket_digits_are_read_one_by_one(number: str, said: str) -> None:
    assert spoken_ticket(number) == said


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("3号窗口", "三号窗口"),
        ("A03号窗口", "A三号窗口"),
        ("12号窗口", "十二号窗口"),
        ("B10号窗口", "B十号窗口"),
        ("20号窗口", "二十号窗口"),
        ("综合受理区2号窗口", "综合受理区二号窗口"),
        ("绿色通道窗口", "绿色通道窗口"),
    ],
)
def test_windows_are_read_as_numbers(name: str, said: str) -> None:
    assert spoken_window(name) == said


@pytest.mark.parametrize(
    ("digits", "words"),
    [
        ("0", "零"),
        ("7", "七"),
        ("10", "十"),
        ("11", "十一"),
        ("19", "十九"),
        ("21", "二十一"),
        ("100", "一百"),
        ("105", "一百零五"),
        ("110", "一百一十"),
        ("200", "两百"),
        ("1001", "一千零一"),
        ("1010", "一千零一十"),
        ("2300", "两千三百"),
        ("12345", "一二三四五"),
    ],
)
def test_cardinal(digits: str, words: str) -> None:
    assert cardinal(digits) == words


def test_docstring_examples() -> None:
    result = doctest.testmod(announce)
    assert result.attempted > 5 and result.failed == 0
