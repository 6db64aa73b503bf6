"""Builders and byte helpers for the printing tests (importable: tests/kiosk is on sys.path)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kiosk.printing.ticket import QueueTicketPrint

CHINESE_ON, CHINESE_OFF = b"\x1c\x26", b"\x1c\x2e"  # FS &, FS .
CUT = b"\x1bd\x06\x1dV\x00"  # ESC d 6 (feed past the cutter), GS V 0 (full cut)


def zh(text: str) -> bytes:
    """What a line with Chinese must look like on the wire."""
    return CHINESE_ON + text.encode("gb18030") + CHINESE_OFF


def make_ticket(**overrides: Any) -> QueueTicketPrint:
    values: dict[str, Any] = {
        "centre_name": "青禾区政务服务中心",
        "number": "A012",
        "service_name": "居住证申领",
        "windows": "3号窗口",
        "people_ahead": 2,
        "estimated_wait_minutes": 8,
        "taken_at": datetime(2026, 3, 2, 1, 5, tzinfo=UTC),  # 09:05 in Shanghai
        "status_url": "https://zwfw.example/q/A012",
        "tip": "请留意叫号。",
    }
    values.update(overrides)
    return QueueTicketPrint(**values)
