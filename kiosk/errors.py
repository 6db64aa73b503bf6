"""Errors of the lobby kiosk; banshi.errors turns them into HTTP responses."""

from __future__ import annotations

from banshi.errors import BanshiError, Unavailable


class KioskError(BanshiError):
    pass


class PrinterUnavailable(Unavailable, KioskError):
    """The ticket was not printed (nothing of it was sent): the kiosk shows the number and
    its QR on screen instead, and staff are told ``detail``."""

    code = "printer_unavailable"

    def __init__(self, device: str, reason: str, message: str, detail: str) -> None:
        super().__init__(message, f"printer {device}: {detail}", reason=reason)
        self.device = device  # e.g. "network 192.0.2.10:9100"
        self.reason = reason  # a PrinterStatus value: paper_out, cover_open, …
