"""Three python-escpos printer classes adjusted for a kiosk (imported only when a printer is
opened: this module imports python-escpos)."""

from __future__ import annotations

import socket
from typing import Any

from escpos.escpos import Escpos
from escpos.exceptions import DeviceNotFoundError
from escpos.printer import Network, Serial


class AppendFile(Escpos):
    """Appends each job to a file, so a capture keeps every ticket in order, like paper.
    (python-escpos's ``File`` truncates the file whenever it opens it, and the kiosk opens
    a fresh printer for each job.)"""

    def __init__(self, path: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path = path

    def _raw(self, msg: bytes) -> None:
        # opened per write: one job is one write, and nothing stays open between jobs
        try:
            with open(self.path, "ab") as out:
                out.write(msg)
        except OSError as exc:
            raise DeviceNotFoundError(f"cannot write to {self.path}: {exc}") from exc


class TcpPrinter(Network):
    """python-escpos's ``Network`` whose failed connect closes its socket: 3.1 leaves it to
    the garbage collector, with a ResourceWarning every time the printer is switched off."""

    def open(self, raise_not_found: bool = True) -> None:
        if self._device:
            self.close()
        connection: socket.socket | None = None
        try:
            connection = socket.create_connection((self.host, self.port), self.timeout)
        except OSError as exc:
            if raise_not_found:
                raise DeviceNotFoundError(f"{self.host}:{self.port}: {exc}") from exc
        finally:
            self.device = connection  # None after a failure: python-escpos's "not connected"


class SerialPrinter(Serial):
    """python-escpos's ``Serial`` reading one byte per status answer: its ``read(16)`` waits
    out the whole timeout for bytes a printer never sends, three times per check."""

    def _read(self) -> bytes:
        assert self.device
        return bytes(self.device.read(1))
