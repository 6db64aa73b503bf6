"""Print a ticket or a checklist: check the printer, then send the whole job in one write.

The job is drawn onto python-escpos's in-memory ``Dummy`` first and goes to the printer as
one ``_raw`` call, after the status check said it can print. So a printer without paper or
with its cover open receives nothing (it cannot print a stale backlog when the paper comes
back), and there is no queue that replays old tickets: a reprint is simply another call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from kiosk.errors import PrinterUnavailable
from kiosk.printing.checklist import FieldChecklistPrint, render_checklist
from kiosk.printing.connection import describe
from kiosk.printing.layout import PaperWidth
from kiosk.printing.status import PrinterState, PrinterStatus, check_status
from kiosk.printing.ticket import QueueTicketPrint, render_ticket

if TYPE_CHECKING:
    from escpos.escpos import Escpos

log = logging.getLogger(__name__)

PrinterFactory = Callable[[], "Escpos"]  # a new, unconnected printer per job
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def render_bytes(draw: Callable[[Escpos], None]) -> bytes:
    """The ESC/POS bytes ``draw`` produces, collected on a ``Dummy``."""
    from escpos.printer import Dummy

    dummy = Dummy()
    draw(dummy)
    return bytes(dummy.output)


def ticket_bytes(ticket: QueueTicketPrint, paper_mm: PaperWidth = 80) -> bytes:
    return render_bytes(lambda p: render_ticket(p, ticket, paper_mm))


def checklist_bytes(checklist: FieldChecklistPrint, paper_mm: PaperWidth = 80) -> bytes:
    return render_bytes(lambda p: render_checklist(p, checklist, paper_mm))


def print_ticket(
    printer_factory: PrinterFactory,
    ticket: QueueTicketPrint,
    *,
    paper_mm: PaperWidth = 80,
    check: bool = True,
) -> PrinterState:
    """Print ``ticket``, or raise :class:`PrinterUnavailable` having sent nothing. The
    state returned may be ``paper_near_end``: printed, but staff should change the roll."""
    return send_job(printer_factory, ticket_bytes(ticket, paper_mm), check=check)


def print_checklist(
    printer_factory: PrinterFactory,
    checklist: FieldChecklistPrint,
    *,
    paper_mm: PaperWidth = 80,
    check: bool = True,
) -> PrinterState:
    return send_job(printer_factory, checklist_bytes(checklist, paper_mm), check=check)


def send_job(printer_factory: PrinterFactory, job: bytes, *, check: bool = True) -> PrinterState:
    """Check the printer's state (unless ``check`` is off), then send ``job`` in one write."""
    from escpos.exceptions import Error as EscposError

    printer = printer_factory()
    device = describe(printer)
    # one job at a time per device in this process: two kiosks' tickets never interleave
    with _lock_for(device):
        try:
            state = check_status(printer) if check else PrinterState(PrinterStatus.OK, "unchecked")
            if not state.can_print:
                raise _unavailable(device, state)
            try:
                printer._raw(job)
            except (EscposError, OSError, ValueError) as exc:
                raise _unavailable(
                    device, PrinterState(PrinterStatus.UNREACHABLE, f"sending failed: {exc}")
                ) from exc
        finally:
            printer.close()
    if state.status is PrinterStatus.PAPER_NEAR_END:
        log.warning("printer %s: %s", device, state.detail)
    return state


def _unavailable(device: str, state: PrinterState) -> PrinterUnavailable:
    return PrinterUnavailable(device, state.status.value, state.message, state.detail)


def _lock_for(device: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(device, threading.Lock())
