"""The ticket and the checklist as exact ESC/POS bytes, rendered on python-escpos's Dummy."""

from __future__ import annotations

from datetime import datetime

import pytest
from printing_builders import CHINESE_OFF, CHINESE_ON, CUT, make_ticket, zh

from kiosk.printing.checklist import FieldChecklistPrint
from kiosk.printing.service import checklist_bytes, ticket_bytes

CENTRE, LEFT = b"\x1ba\x01", b"\x1ba\x00"  # ESC a n
NORMAL = b"\x1d!\x00\x1bE\x00"  # GS ! 0 (normal size), ESC E 0 (bold off)
TALL_BOLD = b"\x1d!\x01\x1bE\x01"  # GS ! 0x01: double height


def qr(url: str, module: int) -> bytes:
    """Native QR (GS ( k): model 2, module size, error correction M, store data, print."""
    return b"".join(
        [
            b"\x1d(k\x04\x001A2\x00",
            b"\x1d(k\x03\x001C" + bytes([module]),
            b"\x1d(k\x03\x001E1",
            b"\x1d(k" + bytes([len(url) + 3, 0]) + b"1P0" + url.encode(),
            b"\x1d(k\x03\x001Q0",
        ]
    )


def test_a_58mm_ticket_byte_for_byte() -> None:
    expected = b"".join(
        [
            b"\x1b@",  # ESC @: a clean start
            CENTRE,
            TALL_BOLD + zh("青禾区政务服务中心") + b"\n",
            b"\x1d!\x33\x1bE\x01" + b"A012\n",  # GS ! 0x33: four times wide and high
            TALL_BOLD + zh("居住证申领") + b"\n",
            NORMAL + b"-" * 32 + b"\n",
            LEFT,
            zh("办理窗口：3号窗口") + b"\n",
            zh("前面还有2人") + b"\n",
            zh("预计等候约8分钟") + b"\n",
            zh("取号时间：2026-03-02 09:05") + b"\n",  # 01:05 UTC is 09:05 in Shanghai
            CENTRE,
            qr("https://zwfw.example/q/A012", module=5) + b"\n",
            zh("扫码查看排队进度") + b"\n",
            LEFT,
            zh("请留意叫号。") + b"\n",
            CUT,
        ]
    )
    assert ticket_bytes(make_ticket(), 58) == expected


def test_chinese_is_gb18030_inside_the_chinese_mode_and_the_number_is_large() -> None:
    data = ticket_bytes(make_ticket(), 80)
    service = "居住证申领".encode("gb18030")
    assert service == b"\xbe\xd3\xd7\xa1\xd6\xa4\xc9\xea\xc1\xec"
    start = data.index(service)
    assert data.rfind(CHINESE_ON, 0, start) > data.rfind(CHINESE_OFF, 0, start)
    assert data.index(CHINESE_OFF, start) == start + len(service)
    assert "居住证申领".encode() not in data  # no UTF-8 anywhere
    assert data.index(b"\x1d!\x33") < data.index(b"A012\n")  # large size before the number
    assert data.index(b"\x1d!\x00") > data.index(b"A012\n")  # and back to normal after it
    assert b"\x1d(k" in data and b"https://zwfw.example/q/A012" in data
    assert data.endswith(CUT)
    assert b"\x1bt" not in data  # python-escpos's magic encoder never picked a code page


def test_80mm_is_wider_and_has_a_larger_qr() -> None:
    data = ticket_bytes(make_ticket(), 80)
    assert NORMAL + b"-" * 48 + b"\n" in data
    assert qr("https://zwfw.example/q/A012", module=6) in data


def test_the_tip_is_wrapped_to_the_paper() -> None:
    tip = "温馨提示：请留意大厅屏幕和语音叫号，过号请到服务台重新排队。"
    narrow = ticket_bytes(make_ticket(tip=tip), 58)  # 16 Chinese characters a line
    lines = zh("温馨提示：请留意大厅屏幕和语音叫"), zh("号，过号请到服务台重新排队。")
    assert b"\n".join(lines) + b"\n" + CUT in narrow
    wide = ticket_bytes(make_ticket(tip=tip), 80)  # 24
    lines = zh("温馨提示：请留意大厅屏幕和语音叫号，过号请到服务"), zh("台重新排队。")
    assert b"\n".join(lines) + b"\n" + CUT in wide


def test_long_windows_text_hangs_under_its_label() -> None:
    data = ticket_bytes(make_ticket(windows="1楼A区 A01—A08（婚姻登记处在2楼C区西侧）"), 58)
    first, second = "办理窗口：1楼A区 A01—A08（婚姻", "　　　　　登记处在2楼C区西侧）"
    assert zh(first) + b"\n" + zh(second) + b"\n" in data


def test_a_long_number_is_printed_smaller_to_stay_on_one_line() -> None:
    data = ticket_bytes(make_ticket(number="A012345678"), 58)  # 10 columns × 4 > 32
    assert b"\x1d!\x22\x1bE\x01A012345678\n" in data  # GS ! 0x22: triple size


def test_no_estimate_leaves_the_line_out_and_text_cannot_inject_commands() -> None:
    data = ticket_bytes(make_ticket(estimated_wait_minutes=None, service_name="居住\x1b@证"), 58)
    assert "预计等候".encode("gb18030") not in data
    assert zh("居住 @证") in data  # ESC became a space: "@" alone is just a character
    assert data.count(b"\x1b@") == 1  # only the job's own initialisation


def test_a_ticket_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_ticket(taken_at=datetime(2026, 3, 2, 9, 5))


def test_a_checklist_numbers_its_lines_with_a_hanging_indent() -> None:
    checklist = FieldChecklistPrint(
        title="居住证申领 所需材料",
        lines=("居民身份证原件", "近期一寸白底免冠彩色照片两张（可现场拍照）", "居住证明"),
        note="材料齐全可当场受理。",
    )
    expected = b"".join(
        [
            b"\x1b@",
            CENTRE,
            TALL_BOLD + zh("居住证申领 所需材料") + b"\n",
            NORMAL + b"-" * 32 + b"\n",
            LEFT,
            zh("1. 居民身份证原件") + b"\n",
            zh("2. 近期一寸白底免冠彩色照片两张") + b"\n",
            zh("   （可现场拍照）") + b"\n",
            zh("3. 居住证明") + b"\n",
            b"-" * 32 + b"\n",
            zh("材料齐全可当场受理。") + b"\n",
            CUT,
        ]
    )
    assert checklist_bytes(checklist, 58) == expected
