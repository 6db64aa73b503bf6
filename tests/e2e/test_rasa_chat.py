"""The chat through a real Rasa server: `banshi serve` starts Rasa (its own environment,
the model trained by the test command) beside the API, Rasa calls the custom actions back
in the API, and residents talk over HTTP. Multi-turn, context, fallback, hand-off, and
Rasa dying mid-conversation."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serving import Served, http, serve

pytestmark = [pytest.mark.e2e, pytest.mark.rasa]

REPO = Path(__file__).resolve().parents[2]
RASA_VENV = REPO / ".venv-rasa"
START_TIMEOUT = 300.0


def trained_model() -> Path | None:
    """The model `scripts/test` trained (BANSHI_TEST_RASA_HOME), else the operator's."""
    home = Path(os.environ.get("BANSHI_TEST_RASA_HOME") or REPO / ".test-data" / "rasa")
    pointer = home / "models" / "CURRENT"
    if not pointer.exists():
        return None
    model = pointer.parent / pointer.read_text().strip()
    return model if model.exists() else None


class Server:
    def __init__(self, served: Served) -> None:
        self.base, self.data_dir, self.rasa_port = served.base, served.data_dir, served.rasa_port

    def say(self, session: str, text: str) -> dict[str, Any]:
        status, body = http(
            "POST", f"{self.base}/api/chat/messages", {"session": session, "text": text}
        )
        assert status == 200, body
        return body

    def handoffs(self) -> list[tuple[str, str]]:
        with sqlite3.connect(self.data_dir / "banshi.db") as conn:
            return conn.execute("SELECT reason, summary FROM chat_handoffs ORDER BY id").fetchall()

    def rasa_state(self) -> str:
        _, body = http("GET", f"{self.base}/healthz")
        return str(body["checks"]["rasa"]["status"])


def rasa_ready(health: dict[str, Any]) -> bool:
    return bool(health.get("checks", {}).get("rasa", {}).get("status") == "ok")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    model = trained_model()
    if not (RASA_VENV / "bin" / "rasa").exists() or model is None:
        pytest.skip("needs scripts/setup-rasa and a trained model (`banshi rasa train`)")
    data_dir = tmp_path_factory.mktemp("rasa-e2e") / "data"
    models = data_dir / "rasa" / "models"
    models.mkdir(parents=True)
    shutil.copy2(model, models / model.name)
    (models / "CURRENT").write_text(model.name)
    # people answer at any hour: a request for one is queued whatever the time of day
    env = {"BANSHI_RASA_VENV": str(RASA_VENV), "BANSHI_AGENT_HOURS": "always"}
    with serve(data_dir, env=env, ready=rasa_ready, timeout_s=START_TIMEOUT) as served:
        yield Server(served)


def texts(body: dict[str, Any]) -> str:
    return "\n".join(m["text"] for m in body["messages"])


def test_greeting_question_and_a_follow_up_in_context(server: Server) -> None:
    session = "rasa-e2e-context-000001"
    hello = server.say(session, "你好")
    assert hello["degraded"] is False
    assert "智能助手" in texts(hello)
    assert "周一至周五" in texts(hello)

    first = server.say(session, "居住证怎么办理")
    assert first["degraded"] is False
    assert "居住证" in texts(first)
    assert first["messages"][0]["links"][0]["url"] == "/guides/residence-permit"

    # names no service: answered about 居住证 because the conversation is about it
    follow = server.say(session, "那要带什么材料？")
    assert "居民身份证" in texts(follow)
    assert follow["messages"][0]["links"][0]["url"] == "/guides/residence-permit"

    thanks = server.say(session, "谢谢")
    assert texts(thanks) == "不客气！还有其他要办的事吗？"


def test_unclear_twice_then_a_person_is_offered_and_accepted(server: Server) -> None:
    session = "rasa-e2e-fallback-000002"
    before = len(server.handoffs())
    vague = server.say("rasa-e2e-vague-0000021", "我想办个证")  # names no service
    assert "请告诉我您要办理的具体事项" in texts(vague)

    first = server.say(session, "我想办个补贴")  # several subsidies: asks back with them
    assert "您是想问下面哪一项" in texts(first)
    payloads = [b["payload"] for b in first["messages"][0]["buttons"]]
    assert '/ask_service{"service_item": "elderly-allowance"}' in payloads
    assert "/request_human" in payloads

    second = server.say(session, "我想办个补贴")  # the same again
    assert "需要为您转接人工客服吗" in texts(second)
    assert [b["payload"] for b in second["messages"][0]["buttons"]] == ["/affirm", "/deny"]

    yes = server.say(session, "好的")
    assert "转人工请求已记录" in texts(yes)
    assert server.handoffs()[before:] == [("misses", "我想办个补贴")]


def test_an_item_button_answers_about_that_item(server: Server) -> None:
    body = server.say(
        "rasa-e2e-button-000003", '/ask_service{"service_item": "marriage-registration"}'
    )
    assert "结婚登记" in texts(body)
    assert body["messages"][0]["links"][0]["url"] == "/guides/marriage-registration"


def test_asking_for_a_person_and_complaining_are_recorded(server: Server) -> None:
    before = len(server.handoffs())
    assert "转人工请求已记录" in texts(server.say("rasa-e2e-handoff-000004", "转人工"))
    # (a second resident: the first one's chat now waits for a person, the bot is silent)
    complaint = server.say("rasa-e2e-handoff-000005", "我要投诉你们窗口的人态度太差了")
    assert "您的投诉已记录" in texts(complaint)
    reasons = [r for r, _ in server.handoffs()[before:]]
    assert reasons == ["request", "complaint"]


def test_when_rasa_dies_chat_degrades_and_recovers(server: Server) -> None:
    found = subprocess.run(
        ["pgrep", "-f", f"rasa run .*--port {server.rasa_port}"], capture_output=True, text=True
    )
    pids = [int(p) for p in found.stdout.split()]
    assert pids, "the Rasa process of this server was not found"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    body = server.say("rasa-e2e-rasa-down-000005", "社保卡丢了怎么办")
    assert body["degraded"] is True
    assert "1楼B区" in texts(body)
    assert server.rasa_state() == "degraded"
    # `banshi serve` restarts Rasa; the chat goes back to it by itself
    deadline = time.monotonic() + START_TIMEOUT
    while server.rasa_state() != "ok":
        assert time.monotonic() < deadline, "Rasa was not restarted"
        time.sleep(2)
    # and the topic the direct path kept (社保卡补办) carries over to Rasa's actions
    again = server.say("rasa-e2e-rasa-down-000005", "那要带什么材料")
    assert again["degraded"] is False
    assert again["messages"][0]["links"][0]["url"] == "/guides/social-card-lost"
