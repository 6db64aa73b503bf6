"""Line wrapping by display width: a Chinese character takes two columns, ASCII one."""

from __future__ import annotations

import pytest

from kiosk.printing.layout import PAPERS, display_width, wrap

TIP = (
    "温馨提示：请携带本人身份证原件，如需帮助请拨打12345热线或访问zwfw.qinghe.gov.cn查询办理进度。"
)
# marks that must not start / end a line (ASCII ones inside a cut URL are fine)
CLOSING = "，。、；：？！）》」”…"
OPENING = "（《「“"


def test_display_width_counts_chinese_twice() -> None:
    assert display_width("居住证") == 6
    assert display_width("A012") == 4
    assert display_width("前面还有3人") == 11
    assert display_width("A01—A08，") == 10  # the dash and the comma are double-byte too


def test_a_mixed_tip_on_58mm_paper() -> None:
    assert wrap(TIP, PAPERS[58].columns) == [
        "温馨提示：请携带本人身份证原件，",
        "如需帮助请拨打12345热线或访问",
        "zwfw.qinghe.gov.cn查询办理进度。",
    ]


def test_a_mixed_tip_on_80mm_paper() -> None:
    assert wrap(TIP, PAPERS[80].columns) == [
        "温馨提示：请携带本人身份证原件，如需帮助请拨打",
        "12345热线或访问zwfw.qinghe.gov.cn查询办理进度。",
    ]


def test_english_words_break_at_spaces_only() -> None:
    assert wrap("Please bring your ID card and 户口本 (household register).", 32) == [
        "Please bring your ID card and 户",
        "口本 (household register).",
    ]


def test_punctuation_stays_on_the_right_line() -> None:
    assert wrap("《居住证暂行条例》第十二条规定：“居住证持有人享有……”", 16) == [
        "《居住证暂行条",
        "例》第十二条规",
        "定：“居住证持有",
        "人享有……”",
    ]


def test_a_word_longer_than_the_line_is_cut() -> None:
    assert wrap("https://zwfw.qinghe.gov.cn/queue/A012", 16) == [
        "https://zwfw.qin",
        "ghe.gov.cn/queue",
        "/A012",
    ]


def test_paragraphs_and_blank_lines_are_kept() -> None:
    assert wrap("第一行\n\n第二行", 32) == ["第一行", "", "第二行"]
    assert wrap("", 32) == [""]


@pytest.mark.parametrize("columns", [PAPERS[58].columns, PAPERS[80].columns, 20, 11])
@pytest.mark.parametrize(
    "text",
    [
        TIP,
        "过号请到服务台登记（每个号码只能重新排队一次），谢谢配合！Thank you.",
        "材料：身份证、户口本、结婚证（原件及复印件各一份）；办理时限：5个工作日。",
    ],
)
def test_no_line_is_too_wide_and_nothing_is_lost(text: str, columns: int) -> None:
    lines = wrap(text, columns)
    assert all(display_width(line) <= columns for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert not any(line[0] in CLOSING for line in lines[1:])
    assert not any(line[-1] in OPENING for line in lines)
