"""Is the printer ready? Asked with the real-time status command before every job.

``DLE EOT n`` (0x10 0x04 n) is answered at once with one byte, even while the printer is
offline or its buffer is full: n=1 printer (bit 3: offline), n=2 offline cause (bit 2: cover
open, bit 5: stopped at paper end, bit 6: error), n=4 roll paper sensor (bits 2-3: near end,
bits 5-6: no paper). Every answer has bits 1 and 4 set and bits 0 and 7 clear, which tells a
real answer from noise. Only connections that can read (network, serial, USB) are asked; a
file or the in-memory dummy is always ready.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from escpos.escpos import Escpos

DLE_EOT = b"\x10\x04"
_FIXED_MASK, _FIXED_BITS = 0x93, 0x12


class PrinterStatus(StrEnum):
    OK = "ok"
    PAPER_NEAR_END = "paper_near_end"  # still prints; staff should change the roll soon
    PAPER_OUT = "paper_out"
    COVER_OPEN = "cover_open"
    OFFLINE = "offline"  # connected but not printing (error, or no answer to the query)
    UNREACHABLE = "unreachable"  # no connection at all


_KEEP_NUMBER = "请记下屏幕上的号码，或扫码保存，您的排队不受影响。"
RESIDENT_MESSAGES: dict[PrinterStatus, str] = {
    PrinterStatus.OK: "打印机正常。",
    PrinterStatus.PAPER_NEAR_END: "打印纸快用完了，请工作人员及时更换。",
    PrinterStatus.PAPER_OUT: "打印机缺纸，" + _KEEP_NUMBER,
    PrinterStatus.COVER_OPEN: "打印机纸仓盖没有关好，" + _KEEP_NUMBER,
    PrinterStatus.OFFLINE: "打印机暂时不能出票，" + _KEEP_NUMBER,
    PrinterStatus.UNREACHABLE: "打印机暂时连接不上，" + _KEEP_NUMBER,
}


@dataclass(frozen=True)
class PrinterState:
    status: PrinterStatus
    detail: str = ""  # English, for staff and logs

    @property
    def message(self) -> str:
        """Plain Chinese for the resident at the kiosk."""
        return RESIDENT_MESSAGES[self.status]

    @property
    def can_print(self) -> bool:
        return self.status in (PrinterStatus.OK, PrinterStatus.PAPER_NEAR_END)


def can_report_status(printer: Escpos) -> bool:
    """Whether the connection reads answers: python-escpos's ``Network``, ``Serial`` and
    ``Usb`` implement ``_read``; ``File`` and ``Dummy`` keep the base class's, which raises."""
    from escpos.escpos import Escpos

    return type(printer)._read is not Escpos._read


def check_status(printer: Escpos) -> PrinterState:
    """The printer's state; connects if it is not connected yet. Never raises for a printer
    problem: a failed connection is ``unreachable``."""
    if not can_report_status(printer):
        return PrinterState(PrinterStatus.OK, "this connection cannot report status")
    from escpos.exceptions import Error as EscposError

    try:
        printer_byte = _ask(printer, 1)
        if printer_byte is None:
            return PrinterState(
                PrinterStatus.OFFLINE,
                "no valid answer to DLE EOT 1 (printer status) before the timeout; if this "
                "printer cannot report status, add ?status=off to BANSHI_KIOSK_PRINTER",
            )
        cause = _ask(printer, 2) if printer_byte & 0x08 else None
        roll = _ask(printer, 4)
    except (EscposError, OSError, ValueError) as exc:  # ValueError: pyusb without a backend
        return PrinterState(PrinterStatus.UNREACHABLE, f"cannot talk to the printer: {exc}")
    return _interpret(printer_byte, cause, roll)


def _interpret(printer_byte: int, cause: int | None, roll: int | None) -> PrinterState:
    seen = f"DLE EOT 1={printer_byte:#04x}, 2={_hex(cause)}, 4={_hex(roll)}"
    # the cover first: a resident changing the roll has it open and the paper out
    if cause is not None and cause & 0x04:
        return PrinterState(PrinterStatus.COVER_OPEN, f"cover open ({seen})")
    if (cause is not None and cause & 0x20) or (roll is not None and roll & 0x60):
        return PrinterState(PrinterStatus.PAPER_OUT, f"paper out ({seen})")
    if printer_byte & 0x08:
        return PrinterState(PrinterStatus.OFFLINE, f"printer offline ({seen})")
    if roll is not None and roll & 0x0C:
        return PrinterState(PrinterStatus.PAPER_NEAR_END, f"paper near end ({seen})")
    return PrinterState(PrinterStatus.OK, seen)


def _ask(printer: Escpos, n: int) -> int | None:
    """The status byte for ``DLE EOT n``, or None when nothing valid came back in time."""
    try:
        reply = bytes(printer.query_status(DLE_EOT + bytes([n])))
    except OSError as exc:
        # a read timeout means a silent printer (socket and pyusb say it differently);
        # anything else is a broken connection
        if isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT:
            return None
        raise
    if not reply:
        return None
    byte = reply[-1]  # the newest byte answers this query
    return byte if byte & _FIXED_MASK == _FIXED_BITS else None


def _hex(value: int | None) -> str:
    return "-" if value is None else f"{value:#04x}"
