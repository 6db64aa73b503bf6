"""The hall display on a small app: LocalBus, an in-memory call board, the fake synthesizer,
served by uvicorn in a thread (an endless SSE stream needs a real server: the TestClient
waits for a response to end)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from support import build_settings

from banshi.bus import LocalBus
from banshi.errors import install_handlers
from kiosk.display import MemoryCallBoard, router
from kiosk.tts import Synthesizer, ToneSynthesizer


def display_app(
    data_dir: Path, board: Any = None, synthesizer: Synthesizer | None = None
) -> FastAPI:
    app = FastAPI()
    install_handlers(app)
    app.include_router(router)
    app.state.settings = build_settings(data_dir)
    app.state.bus = LocalBus()
    app.state.call_board = board if board is not None else MemoryCallBoard()
    app.state.synthesizer = synthesizer if synthesizer is not None else ToneSynthesizer()
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` on a free loopback port until the block ends; yields its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free_port(),
        log_level="warning",
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


class EventReader:
    """Reads a text/event-stream response one event (or comment) at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()
        self.comments: list[str] = []

    def next(self) -> dict[str, Any]:
        """The next event with data: ``{"id": "12", "event": "call", "data": {...}}``."""
        fields: dict[str, Any] = {}
        for line in self.lines:
            if line.startswith(":"):
                self.comments.append(line)
            elif line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            elif "data" in fields:
                fields["data"] = json.loads(fields["data"])
                return fields
            else:
                fields = {}  # a block without data (retry:) or a comment
        raise EOFError("the stream ended")

    def until_retry(self) -> None:
        """Wait for the stream's first line: from then on it is subscribed to the bus."""
        for line in self.lines:
            if line.startswith("retry:"):
                return
        raise EOFError("the stream ended before its first line")


@contextmanager
def stream(
    base: str, query: str = "", headers: dict[str, str] | None = None
) -> Iterator[EventReader]:
    with httpx.Client(timeout=httpx.Timeout(5.0, read=4.0)) as client:
        url = f"{base}/api/kiosk/calls/stream{query}"
        with client.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            yield EventReader(response)
