"""The lobby's ticket printers as the API uses them: a queue ticket (the engine's dict) made
into a printed slip, and each printer's last state for /healthz, so staff learn of paper
out from the health page and the log while residents see their number on screen.

:class:`TicketPrinters` holds one :class:`TicketPrinter` per distinct printer of
BANSHI_KIOSK_PRINTER and gives each kiosk its own (``for_kiosk``); kiosks sharing a printer
share its state. Every API process builds the same from the same setting, so whichever
process nginx sends a kiosk's request to prints on that kiosk's printer."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from typing import Any

from kiosk.errors import PrinterUnavailable
from kiosk.per_kiosk import OTHERS, for_kiosk
from kiosk.printing.checklist import FieldChecklistPrint
from kiosk.printing.connection import PrinterConfig, kiosks_by_printer, parse_printer_map
from kiosk.printing.layout import PaperWidth
from kiosk.printing.service import print_checklist, print_ticket
from kiosk.printing.status import PrinterState
from kiosk.printing.ticket import QueueTicketPrint

TIP = "温馨提示：请留意大厅屏幕和语音叫号；过号可扫码重新排队一次。本号当日有效。"
NOT_CONFIGURED = "not_configured"  # the reason when a kiosk has no ticket printer
NO_PRINTER_TICKET = "本机没有连接小票打印机，请记下屏幕上的号码，或扫码保存，您的排队不受影响。"
NO_PRINTER_CHECKLIST = "本机没有连接小票打印机，请扫码在手机上查看，或到咨询台询问。"
_ORDER = {"ok": 0, "degraded": 1, "down": 2}


class TicketPrinter:
    def __init__(self, config: PrinterConfig, paper_mm: PaperWidth, centre_name: str) -> None:
        self.config = config
        self.paper_mm = paper_mm
        self.centre_name = centre_name
        self._lock = threading.Lock()
        self._last: dict[str, Any] = {"status": "ok", "printer": config.name, "state": "unused"}

    def print_queue_ticket(self, ticket: dict[str, Any]) -> None:
        """Print ``ticket`` (QueueDesk's view plus ``status_url``) or raise PrinterUnavailable."""
        slip = QueueTicketPrint(
            centre_name=self.centre_name,
            number=ticket["number"],
            service_name=ticket["service_name"],
            windows=ticket["windows"],
            people_ahead=int(ticket["ahead"]),
            estimated_wait_minutes=int(ticket["wait_minutes"]),
            taken_at=dt.datetime.fromisoformat(ticket["issued_at"]),
            status_url=ticket["status_url"],
            tip=TIP,
        )
        self._run(
            lambda: print_ticket(
                self.config.open, slip, paper_mm=self.paper_mm, check=self.config.check_status
            )
        )

    def print_field_checklist(self, checklist: FieldChecklistPrint) -> None:
        """A form's 填写要点 on the ticket roll, or raise PrinterUnavailable."""
        self._run(
            lambda: print_checklist(
                self.config.open, checklist, paper_mm=self.paper_mm, check=self.config.check_status
            )
        )

    def _run(self, job: Callable[[], PrinterState]) -> None:
        try:
            state = job()
        except PrinterUnavailable as exc:
            self._remember("degraded", exc.reason, exc.detail)
            raise
        near_end = state.status.value == "paper_near_end"
        self._remember("degraded" if near_end else "ok", state.status.value, state.detail)

    def health(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._last)

    def _remember(self, status: str, state: str, detail: str) -> None:
        with self._lock:
            self._last = {
                "status": status,
                "printer": self.config.name,
                "state": state,
                "detail": detail,
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }


class TicketPrinters:
    """Each kiosk's ticket printer, from BANSHI_KIOSK_PRINTER (``parse_printer_map``)."""

    def __init__(
        self, printers: Mapping[str, PrinterConfig], paper_mm: PaperWidth, centre_name: str
    ) -> None:
        self._kiosks: dict[str, TicketPrinter] = {}
        self._served: list[tuple[TicketPrinter, list[str]]] = []
        for config, kiosks in kiosks_by_printer(dict(printers)).items():
            printer = TicketPrinter(config, paper_mm, centre_name)
            self._served.append((printer, kiosks))
            self._kiosks.update(dict.fromkeys(kiosks, printer))

    @classmethod
    def from_setting(cls, spec: str, paper_mm: PaperWidth, centre_name: str) -> TicketPrinters:
        return cls(parse_printer_map(spec), paper_mm, centre_name)

    def for_kiosk(self, kiosk: str) -> TicketPrinter | None:
        """The kiosk's printer, else the one for the kiosks not listed (``*``), else None."""
        return for_kiosk(self._kiosks, kiosk)

    @property
    def printers(self) -> list[tuple[TicketPrinter, list[str]]]:
        """Each distinct printer and the kiosks it serves."""
        return list(self._served)

    def health(self) -> dict[str, Any]:
        """One printer for every kiosk: its state as ever (status, printer, state…).
        Per kiosk: the worst status, and each printer's state with its kiosks."""
        if list(self._kiosks) == [OTHERS]:
            return self._served[0][0].health()
        printers = [{"kiosks": kiosks, **p.health()} for p, kiosks in self._served]
        worst = max((p["status"] for p in printers), key=lambda s: _ORDER.get(s, 2), default="ok")
        report: dict[str, Any] = {"status": worst, "printers": printers}
        if OTHERS not in self._kiosks:
            report["other_kiosks"] = "no printer"
        return report


def printer_for(
    printers: TicketPrinters | TicketPrinter | None, kiosk: str
) -> TicketPrinter | None:
    """The kiosk's printer from ``app.state.ticket_printer``: the app puts
    :class:`TicketPrinters` there; one :class:`TicketPrinter` (a test's) serves every kiosk."""
    if isinstance(printers, TicketPrinters):
        return printers.for_kiosk(kiosk)
    return printers


def no_printer(kiosk: str, message: str = NO_PRINTER_TICKET) -> PrinterUnavailable:
    """For a kiosk BANSHI_KIOSK_PRINTER gives no printer (a list without ``*``)."""
    return PrinterUnavailable(  # detail: "printer for kiosk 'K09': none in …"
        f"for kiosk {kiosk!r}",
        NOT_CONFIGURED,
        message,
        "none in BANSHI_KIOSK_PRINTER (the kiosk is not listed, and there is no '*')",
    )
