"""The real server: ``banshi serve`` as a separate process with the default encoder."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import http, serve

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, subprocess.Popen, Path]]:  # type: ignore[type-arg]
    with serve(tmp_path_factory.mktemp("e2e") / "data") as served:
        yield served.base, served.proc, served.log_path


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
