"""/healthz reports the database and the knowledge base, and says when a part is down."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from support import api_client

from banshi.health import HealthRegistry
from banshi.settings import Settings


def test_healthz_reports_database_and_knowledge_base(shared_client: TestClient) -> None:
    r = shared_client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["checks"]["database"] == {"status": "ok", "dialect": "sqlite"}
    kb = body["checks"]["knowledge_base"]
    assert kb["encoder"] == "hashing"
    assert kb["documents"] == 304  # 38 guides + 260 FAQs + 6 policies in the sample
    assert kb["chunks"] > kb["documents"]
    # the hashing encoder has no calibration: served with a conservative default
    assert kb["calibrated"] is False
    assert kb["status"] == "degraded"
    assert body["status"] == "degraded"


@pytest.mark.encoder
def test_healthz_is_ok_with_the_calibrated_default_encoder(real_kb) -> None:
    with api_client(real_kb.settings, real_kb) as client:
        r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    # everything but Rasa (not running in unit tests: chat answers directly) is ok
    assert body["status"] == "degraded"
    assert {k: v["status"] for k, v in body["checks"].items()} == {
        "database": "ok",
        "knowledge_base": "ok",
        "rasa": "degraded",
        "ticket_bridge": "ok",
        "ticket_printer": "ok",
        "form_samples": "ok",
        "a4_printer": "ok",
        # no speech model here: the hotline works with keys only and says so
        "voice": "degraded",
    }
    assert body["checks"]["form_samples"]["forms"] == 33  # knowledge_base/sample/forms
    assert body["checks"]["a4_printer"]["state"] == "not_configured"
    assert body["checks"]["voice"]["speech"] == "off"
    assert "BANSHI_VOSK_MODEL" in body["checks"]["voice"]["speech_reason"]
    assert body["checks"]["ticket_bridge"] == {
        "status": "ok",
        "waiting": 0,
        "agents_online": 0,
        "outbox_failed": 0,
    }
    assert body["checks"]["knowledge_base"]["encoder"] == "use-m3"
    assert body["checks"]["knowledge_base"]["calibrated"] is True


def test_knowledge_base_that_cannot_start_is_reported_down(settings: Settings) -> None:
    """GIVEN a misconfigured encoder
    WHEN the app starts (the knowledge base fails in the lifespan)
    THEN the app still serves: /healthz is 503 naming the problem, and questions get a
    Chinese "not ready" message instead of a crash."""
    broken = settings.model_copy(update={"kb_encoder": "no-such-encoder"})
    with api_client(broken) as client:
        health = client.get("/healthz")
        ask = client.post("/api/kb/ask", json={"question": "社保卡丢了怎么办"})
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "down"
    assert body["checks"]["database"]["status"] == "ok"
    kb = body["checks"]["knowledge_base"]
    assert kb["status"] == "down"
    assert "EncoderUnavailable" in kb["error"]
    assert "no-such-encoder" in kb["error"]
    assert ask.status_code == 503
    assert ask.json()["error"]["message"] == "知识库正在准备中，请稍后再试。"


def test_a_failing_check_is_reported_not_raised() -> None:
    registry = HealthRegistry()
    registry.register("good", lambda: {"status": "ok"})

    def broken() -> dict[str, object]:
        raise ConnectionError("数据库连不上")

    registry.register("bad", broken)
    report = registry.report()
    assert report["status"] == "down"
    assert report["checks"]["good"] == {"status": "ok"}
    assert report["checks"]["bad"] == {"status": "down", "error": "ConnectionError: 数据库连不上"}


def test_worst_status_wins() -> None:
    registry = HealthRegistry()
    registry.register("a", lambda: {"status": "ok"})
    registry.register("b", lambda: {"status": "degraded"})
    assert registry.report()["status"] == "degraded"
    assert HealthRegistry().report() == {"status": "ok", "checks": {}}
