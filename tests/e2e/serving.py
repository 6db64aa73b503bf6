"""Starting the real server for end-to-end tests: ``banshi serve`` as a subprocess on free
loopback ports with its own data directory, ready when a check on /healthz says so."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BANSHI = Path(sys.executable).parent / "banshi"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


@dataclass
class Served:
    base: str
    proc: subprocess.Popen  # type: ignore[type-arg]
    data_dir: Path
    log_path: Path
    rasa_port: int


def healthy(health: dict[str, Any]) -> bool:
    return health.get("status") in {"ok", "degraded"}


@contextmanager
def serve(
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    ready: Callable[[dict[str, Any]], bool] = healthy,
    timeout_s: float = 120.0,
) -> Iterator[Served]:
    """Run ``banshi serve`` until the block ends (SIGTERM, then kill after 60 s). Rasa's
    address is a free port: nothing listens there unless the data directory has a model."""
    if not BANSHI.exists():
        pytest.skip(f"{BANSHI} is not installed")
    data_dir.mkdir(parents=True, exist_ok=True)
    port, rasa_port = free_port(), free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BANSHI_")}
    full_env.update(
        {
            "BANSHI_DATA_DIR": str(data_dir),
            "BANSHI_ENV": "development",
            "BANSHI_RASA_URL": f"http://127.0.0.1:{rasa_port}",
            **(env or {}),
        }
    )
    log_path = data_dir.parent / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(BANSHI), "serve", "--port", str(port)],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", proc, data_dir, log_path, rasa_port)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited early ({proc.returncode}):\n{tail(log_path)}")
            try:
                if ready(http("GET", f"{served.base}/healthz")[1]):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready within {timeout_s:.0f} s:\n{tail(log_path)}")
            time.sleep(0.5)
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def add_user(
    data_dir: Path, username: str, role: str, password: str, env: dict[str, str] | None = None
) -> None:
    """``banshi users add`` on a server's data directory (``env``: the server's other
    BANSHI_* settings, e.g. its source directory)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("BANSHI_")}
    full.update(env or {})
    full.update({"BANSHI_DATA_DIR": str(data_dir), "BANSHI_ENV": "development"})
    done = subprocess.run(
        [str(BANSHI), "users", "add", username, "--role", role, "--password-stdin"],
        input=password + "\n",
        text=True,
        env=full,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
