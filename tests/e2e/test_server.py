"""The real server: ``banshi serve`` as a separate process with the default encoder."""

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
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BANSHI = Path(sys.executable).parent / "banshi"
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(
    method: str, url: str, body: dict[str, object] | None = None
) -> tuple[int, dict[str, object]]:
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


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, subprocess.Popen, Path]]:  # type: ignore[type-arg]
    if not BANSHI.exists():
        pytest.skip(f"{BANSHI} is not installed")
    data_dir = tmp_path_factory.mktemp("e2e") / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANSHI_")}
    env.update({"BANSHI_DATA_DIR": str(data_dir), "BANSHI_ENV": "development"})
    env["BANSHI_RASA_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    log_path = data_dir.parent / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [str(BANSHI), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"server exited early ({proc.returncode}):\n"
                    + log_path.read_text(errors="replace")
                )
            try:
                status, _ = http("GET", f"{base}/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"/healthz not 200 within {START_TIMEOUT:.0f}s:\n"
                    + log_path.read_text(errors="replace")
                )
            time.sleep(0.5)
        yield base, proc, log_path
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def test_health_reports_the_default_encoder(server) -> None:  # type: ignore[no-untyped-def]
    base, _, _ = server
    status, body = http("GET", f"{base}/healthz")
    assert status == 200
    # No Rasa model in this data directory: chat answers directly, which is "degraded"
    assert body["status"] == "degraded"
    rasa = body["checks"]["rasa"]  # type: ignore[index]
    assert rasa["effect"] == "chat answers from the knowledge base directly"
    kb = body["checks"]["knowledge_base"]  # type: ignore[index]
    assert kb["status"] == "ok"
    assert kb["encoder"] == "use-m3"
    assert kb["documents"] == 304


def test_ask_over_http(server) -> None:  # type: ignore[no-untyped-def]
    base, _, _ = server
    status, body = http("POST", f"{base}/api/kb/ask", {"question": "社保卡丢了怎么办"})
    assert status == 200
    assert body["answered"] is True
    assert body["item_id"] == "social-card-lost"
    assert "1楼B区" in body["answer"]


def test_chat_without_rasa_answers_from_the_knowledge_base(server) -> None:  # type: ignore[no-untyped-def]
    base, _, _ = server
    session = "e2e-no-rasa-0123456789"
    status, body = http(
        "POST", f"{base}/api/chat/messages", {"session": session, "text": "社保卡丢了怎么办"}
    )
    assert status == 200
    assert body["degraded"] is True
    first = body["messages"][0]  # type: ignore[index]
    assert "1楼B区" in first["text"]
    assert {"title": "转人工", "payload": "/request_human"} in first["buttons"]


def test_errors_over_http_are_chinese_json(server) -> None:  # type: ignore[no-untyped-def]
    base, _, _ = server
    status, body = http("GET", f"{base}/no/such/page")
    assert status == 404
    assert body["error"]["message"] == "您访问的页面或资源不存在。"  # type: ignore[index]


def test_server_stops_cleanly_on_sigterm(server) -> None:  # type: ignore[no-untyped-def]
    _, proc, log_path = server
    before = len(log_path.read_bytes())
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert proc.wait(timeout=30) in {0, -signal.SIGTERM}
    shutdown_log = log_path.read_bytes()[before:].decode(errors="replace")
    assert "Application shutdown complete." in shutdown_log
    assert "Traceback" not in shutdown_log
