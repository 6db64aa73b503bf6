"""A real redis-server for the tests of the bus between processes (``redis_server`` is its
URL; ``redis_process`` can kill and restart it on the same port)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
PASSWORD = "bus-test-secret"  # the URL carries a password, as in production


class RedisProcess:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        with socket.socket() as s:  # a free loopback port (the server binds it at once)
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # no persistence: the bus keeps nothing in Redis
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--requirepass", PASSWORD, "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        with redis.Redis.from_url(self.url, socket_timeout=1) as client:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}")
                time.sleep(0.02)

    def kill(self) -> None:
        """As a crash: SIGKILL, its clients' connections drop."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    if not os.path.exists(REDIS_SERVER):
        message = "redis-server is not installed (scripts/production-setup installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis_server(redis_process: RedisProcess) -> str:
    """The URL of a fresh redis-server (with a password) on a free loopback port."""
    return redis_process.url
