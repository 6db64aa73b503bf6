"""Printing a blank form on the kiosk's A4 printer through CUPS (``lp``), and a form's
填写要点 on the ticket printer.

The A4 printer is a CUPS queue named in BANSHI_FORMS_A4_PRINTER (``lpstat -p`` lists them):
one queue for every kiosk (``HallA4``), or per kiosk (``K01=HallA4,K02=DeskA4,*=HallA4``, ``*``
for the others). A kiosk without one tells residents to scan the QR or ask at the desk.
A resident pressing 打印 again and again gets one copy: the same form on the same kiosk is
printed at most once per ``repeat_s`` seconds."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from kiosk.errors import A4PrinterUnavailable, CounterError
from kiosk.per_kiosk import for_kiosk, parse_per_kiosk

LP_TIMEOUT_S = 20
JOB_ID = re.compile(r"request id is (\S+)")
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def parse_queues(spec: str) -> dict[str, str]:
    """``HallA4`` or ``K01=HallA4,*=DeskA4`` as kiosk -> queue (``*``: any other kiosk)."""
    try:
        return parse_per_kiosk(spec, _queue_name)
    except ValueError as exc:
        raise ValueError(
            "BANSHI_FORMS_A4_PRINTER must be a CUPS queue name or KIOSK=QUEUE pairs "
            f"separated by commas ('*' for the other kiosks), not {spec!r}: {exc}"
        ) from None


def _queue_name(text: str) -> str:
    if not NAME.fullmatch(text):
        raise ValueError(f"{text!r} is not a CUPS queue name (letters, digits, '_', '.', '-')")
    return text


class RecentlyPrinted(CounterError):
    code = "recently_printed"

    def __init__(self) -> None:
        super().__init__(
            "刚刚已经打印过了，请在出纸口取表。", "same form printed on this kiosk moments ago"
        )


class A4Printer:
    def __init__(
        self,
        queue: str,
        command: str = "lp",
        server: str = "",
        repeat_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queues = parse_queues(queue)
        self.command = command
        self.server = server.strip()  # host[:port] of a CUPS server; empty: lp's default
        self.repeat_s = repeat_s
        self._clock = clock
        self._recent: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._last: dict[str, Any] = {"status": "ok", "state": "unused"}

    @property
    def configured(self) -> bool:
        """Some kiosk has an A4 printer."""
        return bool(self.queues)

    def queue_for(self, kiosk: str) -> str:
        return for_kiosk(self.queues, kiosk) or ""

    def print_pdf(self, pdf: bytes, title: str, key: tuple[str, str]) -> str:
        """Send ``pdf`` to the CUPS queue; returns CUPS's job id. ``key`` (kiosk, form)
        refuses a repeat within ``repeat_s``."""
        queue = self.check_configured(key[0])
        self._claim(key)
        lp = shutil.which(self.command)
        if lp is None:
            self._forget(key)
            self._note("down", "lp_missing")
            raise A4PrinterUnavailable(
                "lp_missing",
                f"{self.command!r} not found: install cups-client (scripts/forms-setup)",
            )
        with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
            f.write(pdf)
            f.flush()
            args = [
                lp,
                *(["-h", self.server] if self.server else []),
                "-d",
                queue,
                "-t",
                title[:60],
                "-o",
                "media=A4",
                "-o",
                "fit-to-page",
                f.name,
            ]
            try:
                done = subprocess.run(
                    args, capture_output=True, text=True, timeout=LP_TIMEOUT_S, check=False
                )
            except subprocess.TimeoutExpired:
                self._forget(key)
                self._note("degraded", "timeout")
                raise A4PrinterUnavailable(
                    "timeout", f"lp did not answer in {LP_TIMEOUT_S} s"
                ) from None
        if done.returncode != 0:
            self._forget(key)
            reason = (done.stderr or done.stdout).strip()[:300]
            self._note("degraded", "refused", reason)
            raise A4PrinterUnavailable("refused", f"lp -d {queue} failed: {reason}")
        match = JOB_ID.search(done.stdout)
        job = match.group(1) if match else ""
        self._note("ok", "printed", job)
        return job

    def check_configured(self, kiosk: str) -> str:
        """The kiosk's CUPS queue, or A4PrinterUnavailable("not_configured")."""
        queue = self.queue_for(kiosk)
        if not queue:
            raise A4PrinterUnavailable(
                "not_configured",
                f"no A4 printer for kiosk {kiosk!r}: set BANSHI_FORMS_A4_PRINTER to a CUPS queue",
            )
        return queue

    def health(self) -> dict[str, Any]:
        if not self.configured:
            return {"status": "ok", "state": "not_configured"}
        with self._lock:
            return {"queues": dict(self.queues), **self._last}

    def _claim(self, key: tuple[str, str]) -> None:
        now = self._clock()
        with self._lock:
            if now - self._recent.get(key, -1e9) < self.repeat_s:
                raise RecentlyPrinted()
            self._recent = {k: t for k, t in self._recent.items() if now - t < self.repeat_s}
            self._recent[key] = now

    def _forget(self, key: tuple[str, str]) -> None:
        with self._lock:  # it did not print: the resident may try again at once
            self._recent.pop(key, None)

    def _note(self, status: str, state: str, detail: str = "") -> None:
        with self._lock:
            self._last = {"status": status, "state": state, "detail": detail}
