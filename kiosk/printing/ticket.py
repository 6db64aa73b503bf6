"""The queue ticket (取号单): what it says, and how it is laid out on 58 or 80 mm paper."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from kiosk.printing.layout import PaperWidth, Sheet, display_width, paper

if TYPE_CHECKING:
    from escpos.escpos import Escpos

CENTRE_TZ = ZoneInfo("Asia/Shanghai")
NUMBER_SIZE = 4  # the number at four times width and height: read from across the hall


@dataclass(frozen=True)
class QueueTicketPrint:
    centre_name: str  # 青禾区政务服务中心
    number: str  # A012
    service_name: str  # 居住证申领
    windows: str  # 1楼A区 A01—A08
    people_ahead: int
    estimated_wait_minutes: int | None  # None: no recent service times to estimate from
    taken_at: datetime  # aware; printed in the centre's local time
    status_url: str  # the QR: the ticket's live status page
    tip: str = ""  # 温馨提示, wrapped to the paper

    def __post_init__(self) -> None:
        if not self.number.strip():
            raise ValueError("a ticket needs its number")
        if self.taken_at.tzinfo is None or self.taken_at.utcoffset() is None:
            raise ValueError("taken_at must be timezone-aware (printed in Asia/Shanghai time)")
        if self.people_ahead < 0:
            raise ValueError("people_ahead cannot be negative")
        if self.estimated_wait_minutes is not None and self.estimated_wait_minutes < 0:
            raise ValueError("estimated_wait_minutes cannot be negative")
        if not self.status_url.isascii() or not self.status_url.strip():
            raise ValueError("status_url must be a non-empty ASCII URL (it becomes the QR)")

    @property
    def local_time(self) -> str:
        return self.taken_at.astimezone(CENTRE_TZ).strftime("%Y-%m-%d %H:%M")


def render_ticket(printer: Escpos, ticket: QueueTicketPrint, paper_mm: PaperWidth = 80) -> None:
    """Draw the ticket onto ``printer`` (a python-escpos printer; a ``Dummy`` collects the
    bytes), ending with a cut."""
    sheet = Sheet(printer, paper(paper_mm))
    sheet.start()
    sheet.align("center")
    sheet.style(bold=True, height=2)
    sheet.paragraph(ticket.centre_name)
    # a long number (a prefix and four digits) still fits on one line at a smaller size
    size = max(1, min(NUMBER_SIZE, sheet.paper.columns // display_width(ticket.number)))
    sheet.style(bold=True, width=size, height=size)
    sheet.line(ticket.number)
    sheet.style(bold=True, height=2)
    sheet.paragraph(ticket.service_name)
    sheet.style()
    sheet.rule()
    sheet.align("left")
    sheet.paragraph(ticket.windows, first="办理窗口：", indent="　　　　　")
    sheet.line(f"前面还有{ticket.people_ahead}人")
    if ticket.estimated_wait_minutes is not None:
        sheet.line(f"预计等候约{max(1, ticket.estimated_wait_minutes)}分钟")
    sheet.line(f"取号时间：{ticket.local_time}")
    sheet.align("center")
    sheet.qr(ticket.status_url)
    sheet.line("扫码查看排队进度")
    sheet.align("left")
    if ticket.tip.strip():
        sheet.paragraph(ticket.tip)
    sheet.cut()
