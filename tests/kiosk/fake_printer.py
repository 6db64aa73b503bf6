"""ESC/POS printers for tests, on loopback TCP and on a pseudo-terminal: they record every
byte they receive and answer the real-time status query ``DLE EOT n`` with a configurable
status byte."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
import tty
from types import TracebackType

# Status bytes as a real printer sends them (bits 1 and 4 always set): n=1 printer,
# n=2 offline cause, n=3 error cause, n=4 roll paper sensor.
READY = {1: 0x12, 2: 0x12, 3: 0x12, 4: 0x12}
PAPER_OUT = {1: 0x1A, 2: 0x32, 3: 0x12, 4: 0x72}  # offline, stopped at paper end, no paper
COVER_OPEN = {1: 0x1A, 2: 0x16, 3: 0x12, 4: 0x12}  # offline, cover open
PAPER_NEAR_END = {1: 0x12, 2: 0x12, 3: 0x12, 4: 0x1E}  # online, near-end sensor
SILENT: dict[int, int] = {}  # answers nothing


class StatusAnswers:
    """Like a printer, answers each complete ``DLE EOT n`` as soon as it has arrived."""

    def __init__(self, statuses: dict[int, int], queries: list[int]) -> None:
        self.statuses = statuses
        self.queries = queries
        self._data = b""
        self._scanned = 0

    def feed(self, chunk: bytes) -> bytes:
        self._data += chunk
        answer = b""
        while (i := self._data.find(b"\x10\x04", self._scanned)) != -1 and i + 2 < len(self._data):
            n = self._data[i + 2]
            self.queries.append(n)
            if n in self.statuses:
                answer += bytes([self.statuses[n]])
            self._scanned = i + 3
        self._scanned = max(self._scanned, len(self._data) - 1)
        return answer


class FakeNetworkPrinter:
    def __init__(self, statuses: dict[int, int] | None = None) -> None:
        self.statuses = dict(READY if statuses is None else statuses)
        self.connections: list[bytes] = []  # bytes of each finished connection
        self.queries: list[int] = []  # the n of every DLE EOT n seen
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.05)
        self.port: int = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._done = threading.Condition()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"network://127.0.0.1:{self.port}?timeout=0.3"

    @property
    def received(self) -> bytes:
        return b"".join(self.connections)

    def wait_for(self, connections: int, timeout: float = 2.0) -> None:
        with self._done:
            if not self._done.wait_for(lambda: len(self.connections) >= connections, timeout):
                raise AssertionError(f"only {len(self.connections)} connections finished")

    def __enter__(self) -> FakeNetworkPrinter:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(2)
        self._server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            with conn:
                data = self._read_all(conn)
            with self._done:
                self.connections.append(data)
                self._done.notify_all()

    def _read_all(self, conn: socket.socket) -> bytes:
        conn.settimeout(2)
        answers = StatusAnswers(self.statuses, self.queries)
        data = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except (ConnectionResetError, TimeoutError):
                return data
            if not chunk:
                return data
            data += chunk
            if reply := answers.feed(chunk):
                conn.sendall(reply)


class FakeSerialPrinter:
    """A serial printer behind a pseudo-terminal: open ``device`` as the serial port."""

    def __init__(self, statuses: dict[int, int] | None = None) -> None:
        self.statuses = dict(READY if statuses is None else statuses)
        self.queries: list[int] = []
        self.received = b""
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self.device = os.ttyname(slave)
        os.close(slave)  # the printer's user opens it by name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"serial://{self.device}?baudrate=19200&timeout=0.5"

    def wait_until_received(self, data: bytes, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while data not in self.received:
            if time.monotonic() > deadline:
                raise AssertionError(f"got only {self.received!r}")
            time.sleep(0.01)

    def __enter__(self) -> FakeSerialPrinter:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self._master)

    def _serve(self) -> None:
        answers = StatusAnswers(self.statuses, self.queries)
        while not self._stop.is_set():
            if not select.select([self._master], [], [], 0.02)[0]:
                continue
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: nobody has the port open right now
                time.sleep(0.01)
                continue
            self.received += chunk
            if reply := answers.feed(chunk):
                os.write(self._master, reply)


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
