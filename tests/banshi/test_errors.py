"""Every error reaches the client as JSON with a Chinese message and an English detail."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from support import api_client

INVALID_REQUEST = "请求内容不完整或格式不正确，请检查后重试。"


def test_malformed_json_to_ask_is_422_in_chinese(shared_client: TestClient) -> None:
    r = shared_client.post(
        "/api/kb/ask",
        content='{"question": "社保卡'.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"] == INVALID_REQUEST


def test_missing_field_names_the_field(shared_client: TestClient) -> None:
    r = shared_client.post("/api/kb/ask", json={"q": "社保卡丢了"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["message"] == INVALID_REQUEST
    assert [p["field"] for p in error["fields"]["problems"]] == ["body.question"]


@pytest.mark.parametrize(
    "body",
    [{"question": 123}, {"question": None}, {"question": ["社保卡"]}, {"question": "社" * 20_001}],
)
def test_wrongly_typed_or_oversized_question_is_422(
    shared_client: TestClient, body: dict[str, object]
) -> None:
    r = shared_client.post("/api/kb/ask", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["message"] == INVALID_REQUEST


def test_unknown_route_is_404_json_in_chinese(shared_client: TestClient) -> None:
    r = shared_client.get("/api/no/such/thing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert error["code"] == "http_404"
    assert error["message"] == "您访问的页面或资源不存在。"


def test_wrong_method_is_405_in_chinese(shared_client: TestClient) -> None:
    r = shared_client.get("/api/kb/ask")
    assert r.status_code == 405
    assert r.json()["error"]["message"] == "不支持这种请求方式。"


def test_unexpected_error_is_500_with_a_chinese_message_and_no_traceback(
    shared_hashing_kb, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(question: str) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(shared_hashing_kb, "ask", explode)
    with api_client(
        shared_hashing_kb.settings, shared_hashing_kb, raise_server_exceptions=False
    ) as client:
        r = client.post("/api/kb/ask", json={"question": "社保卡丢了怎么办"})
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["message"] == "系统暂时出了点问题，请稍后再试，或拨打12345热线。"
    assert error["detail"] == "RuntimeError"
    assert "secret internal detail" not in r.text


def test_database_outage_is_503_with_retry_after(
    shared_hashing_kb, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import IntegrityError, OperationalError

    def restarting(question: str) -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("server closed"))

    monkeypatch.setattr(shared_hashing_kb, "ask", restarting)
    with api_client(
        shared_hashing_kb.settings, shared_hashing_kb, raise_server_exceptions=False
    ) as client:
        r = client.post("/api/kb/ask", json={"question": "社保卡丢了怎么办"})
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "3"
        assert r.json()["error"]["message"] == "系统正在恢复，请稍等几秒再试。"
        assert r.json()["error"]["detail"] == "database unavailable (ConnectionRefusedError)"

        def broken(question: str) -> None:  # a bug, not an outage: still a 500
            raise IntegrityError("INSERT", {}, ValueError("duplicate key"))

        monkeypatch.setattr(shared_hashing_kb, "ask", broken)
        r = client.post("/api/kb/ask", json={"question": "社保卡丢了怎么办"})
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
