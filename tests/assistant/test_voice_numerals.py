"""Chinese spoken numbers as ASR writes them (assistant/voice/numerals.py): digit-by-digit
ticket numbers with telephone readings (幺 拐 勾 洞), mixed scripts and filler words, and
place-value numbers for menu choices."""

from __future__ import annotations

import doctest

import pytest

from assistant.voice import numerals
from assistant.voice.numerals import digits_from_speech, number_from_speech


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("五二八三 零四幺七", "52830417"),
        ("我的受理号是5283零417", "52830417"),
        ("幺三八 一二三四 五六七八", "13812345678"),
        ("我的受理号是五二八三零四幺七号", "52830417"),
        ("五、二，八。三-零 四 幺 七", "52830417"),
        ("１２３", "123"),
        ("１２３四五6", "123456"),
        ("幺一壹", "111"),
        ("二两贰俩", "2222"),
        ("三叁四肆五伍六陆", "33445566"),
        ("七柒拐八捌九玖勾", "77788999"),
        ("零〇洞o", "0000"),
        ("幺o五", "105"),
        ("帮我查一下五二八三零四幺七", "52830417"),
        ("是八", "8"),
    ],
)
def test_digit_by_digit_readings(text: str, digits: str) -> None:
    assert digits_from_speech(text) == digits


@pytest.mark.parametrize("text", ["", "嗯", "我的受理号是", "ok", "No", "再说一遍"])
def test_no_digits(text: str) -> None:
    assert digits_from_speech(text) == ""


@pytest.mark.parametrize("text", ["二十", "一百零五", "五二八三十", "两万"])
def test_place_values_are_not_a_digit_reading(text: str) -> None:
    assert digits_from_speech(text) == ""


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("一百二十三", 123),
        ("十五", 15),
        ("二十", 20),
        ("一千零五", 1005),
        ("两万", 20000),
        ("十", 10),
        ("一十五", 15),
        ("一百零五", 105),
        ("一百一十五", 115),
        ("一百十五", 115),
        ("一千零一十", 1010),
        ("一万零五", 10005),
        ("一万一千", 11000),
        ("三千万", 30_000_000),
        ("一亿二千万", 120_000_000),
        ("一百五十万", 1_500_000),
        ("两百", 200),
        ("壹佰贰拾叁", 123),
        ("一百零", 100),
        # colloquial: a digit right after a unit counts in the next place down
        ("一百五", 150),
        ("两千三", 2300),
        ("一万二", 12000),
        ("一万二千三", 12300),
        # written digits with units, as recognisers sometimes write them
        ("3万", 30000),
        ("12万", 120000),
        ("1百", 100),
        # digit by digit, and words around the number
        ("二零二四", 2024),
        ("五二八三 零四幺七", 52830417),
        ("5283零417", 52830417),
        ("3", 3),
        ("零", 0),
        ("我选二", 2),
        ("第十五号", 15),
        ("我的受理号是五二八三零四幺七", 52830417),
    ],
)
def test_numbers(text: str, number: int) -> None:
    assert number_from_speech(text) == number


@pytest.mark.parametrize(
    "text",
    [
        "",
        "没有号码",
        "三号和五号",  # two numbers
        "百",  # a unit without its digit
        "万",
        "十十",  # units out of order
        "一百二百",
        "五六百",  # two digits before a unit
        "一二十",
        "一百五零",  # 零 right after a digit, inside a place-value number
    ],
)
def test_no_number(text: str) -> None:
    assert number_from_speech(text) is None


def test_docstring_examples() -> None:
    assert doctest.testmod(numerals).failed == 0
