"""The lobby's ticket printer as the API uses it: a queue ticket (the engine's dict) made
into a printed slip, and the printer's last state for /healthz, so staff learn of paper
out from the health page and the log while residents see their number on screen."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from kiosk.errors import PrinterUnavailable
from kiosk.printing.checklist import FieldChecklistPrint
from kiosk.printing.connection import PrinterConfig
from kiosk.printing.layout import PaperWidth
from kiosk.printing.service import print_checklist, print_ticket
from kiosk.printing.status import PrinterState
from kiosk.printing.ticket import QueueTicketPrint

TIP = "温馨提示：请留意大厅屏幕和语音叫号；过号可扫码重新排队一次。本号当日有效。"


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
