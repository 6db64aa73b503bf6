"""An agent's reply sent again after no answer (a process stopped mid-request): the same
``client_id`` for the same chat returns the message stored the first time and sends
nothing again, so the resident gets it once: on the widget, on WeChat, and when two
processes receive the retry at the same moment (PostgreSQL)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from bridge_support import always_open, staff, use_calendar
from sqlalchemy import func, select
from support import TestClient

from assistant.models import ChatMessage

SESSION = "resident-session-retry1"
CLIENT_ID = "0c9f3a7e5d2b4c6a8e1f0a2b3c4d5e6f"


def say(client: TestClient, text: str) -> dict[str, Any]:
    r = client.post("/api/chat/messages", json={"session": SESSION, "text": text})
    assert r.status_code == 200, r.text
    return r.json()


def held_chat(client: TestClient, db: Any, agent_name: str) -> tuple[dict[str, str], int]:
    use_calendar(client.app, always_open())
    agent = staff(client, db, agent_name)
    say(client, "转人工")
    [chat] = client.get("/api/agent/queue", headers=agent).json()["waiting"]
    assert client.post(f"/api/agent/chats/{chat['id']}/claim", headers=agent).status_code == 200
    return agent, chat["id"]


def agent_messages(db: Any, text: str) -> int:
    with db.session() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(ChatMessage)
                .where(ChatMessage.author == "agent", ChatMessage.text == text)
            )
            or 0
        )


def test_a_reply_sent_twice_with_one_client_id_is_stored_and_pushed_once(
    hashing_client: TestClient, hashing_kb: Any
) -> None:
    agent, chat_id = held_chat(hashing_client, hashing_kb.db, "retry-wang")
    url = f"/api/agent/chats/{chat_id}/messages"
    text = "您好，周一上午9点来1楼A区就可以办理。"
    with hashing_client.websocket_connect(f"/api/chat/ws?session={SESSION}") as ws:
        first = hashing_client.post(url, headers=agent, json={"text": text, "client_id": CLIENT_ID})
        assert first.status_code == 200, first.text
        body = first.json()
        assert (body["delivered"], body["channel_note"], body["duplicate"]) == (True, "", False)
        assert (body["message"]["author"], body["message"]["text"]) == ("agent", text)
        pushed = ws.receive_json()
        assert [(m["id"], m["text"]) for m in pushed["messages"]] == [(body["message"]["id"], text)]

        again = hashing_client.post(url, headers=agent, json={"text": text, "client_id": CLIENT_ID})
        assert again.status_code == 200, again.text
        assert again.json()["duplicate"] is True
        assert again.json()["message"] == body["message"]  # the stored one, same id
        assert again.json()["delivered"] is True

        # the next frame is the next reply: nothing was pushed for the retry
        nxt = hashing_client.post(
            url, headers=agent, json={"text": "还有别的问题吗？", "client_id": "second-reply-01"}
        )
        assert nxt.json()["duplicate"] is False
        frame = ws.receive_json()
        assert [m["text"] for m in frame["messages"]] == ["还有别的问题吗？"]
    assert agent_messages(hashing_kb.db, text) == 1
    history = hashing_client.get(f"/api/chat/history?session={SESSION}").json()["messages"]
    assert [m["text"] for m in history].count(text) == 1
    seen = hashing_client.get(f"/api/agent/chats/{chat_id}", headers=agent).json()["messages"]
    assert [m["text"] for m in seen].count(text) == 1
    # without a client id a reply is stored each time, and the reply looks as it always did
    plain = hashing_client.post(url, headers=agent, json={"text": "好的"})
    assert plain.json() == {"delivered": True, "channel_note": ""}


def test_an_agents_client_id_never_matches_a_residents_message_id(
    hashing_client: TestClient, hashing_kb: Any
) -> None:
    agent, chat_id = held_chat(hashing_client, hashing_kb.db, "retry-li")
    r = hashing_client.post(
        "/api/chat/messages", json={"session": SESSION, "text": "我还在", "client_id": CLIENT_ID}
    )
    assert r.status_code == 200, r.text
    sent = hashing_client.post(
        f"/api/agent/chats/{chat_id}/messages",
        headers=agent,
        json={"text": "收到", "client_id": CLIENT_ID},
    ).json()
    assert sent["duplicate"] is False and sent["message"]["text"] == "收到"


@pytest.mark.parametrize("bad", ["short", "a" * 59, "has space 123", "中文编号中文编号中文"])
def test_a_malformed_client_id_is_refused_naming_the_field(
    hashing_client: TestClient, hashing_kb: Any, bad: str
) -> None:
    agent, chat_id = held_chat(hashing_client, hashing_kb.db, "retry-zhao")
    r = hashing_client.post(
        f"/api/agent/chats/{chat_id}/messages",
        headers=agent,
        json={"text": "你好", "client_id": bad},
    )
    assert r.status_code == 422, r.text
    problems = r.json()["error"]["fields"]["problems"]
    assert [p["field"] for p in problems] == ["body.client_id"]
    assert agent_messages(hashing_kb.db, "你好") == 0


def test_a_wechat_reply_retried_is_sent_to_wechat_once(hashing_kb: Any) -> None:
    from fake_wechat import running_wechat_api
    from support import api_client, build_settings

    from assistant.wechat import make_signature

    with running_wechat_api() as wechat:
        settings = build_settings(
            hashing_kb.settings.data_dir,
            wechat_token="banshi-wechat-token",
            wechat_app_id="wx-app",
            wechat_app_secret="wx-secret",
            wechat_api_base=wechat.base_url,
        )
        with api_client(settings, hashing_kb) as client:
            use_calendar(client.app, always_open())
            agent = staff(client, hashing_kb.db, "retry-sun")
            ts, nonce = "1700000000", "42"
            xml = (
                "<xml><ToUserName><![CDATA[gh_banshi]]></ToUserName>"
                "<FromUserName><![CDATA[oResident-9]]></FromUserName>"
                "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                "<Content><![CDATA[转人工]]></Content><MsgId>8000000000000000009</MsgId></xml>"
            )
            client.post(
                "/wechat",
                params={
                    "signature": make_signature("banshi-wechat-token", ts, nonce),
                    "timestamp": ts,
                    "nonce": nonce,
                },
                content=xml,
                headers={"Content-Type": "text/xml"},
            )
            [chat] = client.get("/api/agent/queue", headers=agent).json()["waiting"]
            client.post(f"/api/agent/chats/{chat['id']}/claim", headers=agent)
            url = f"/api/agent/chats/{chat['id']}/messages"
            reply = {"text": "您好，请问要办什么业务？", "client_id": CLIENT_ID}
            first = client.post(url, headers=agent, json=reply).json()
            assert (first["delivered"], first["duplicate"]) == (True, False)
            again = client.post(url, headers=agent, json=reply).json()
            assert again["duplicate"] is True and again["message"] == first["message"]
            # whether WeChat took the first sending is not this request's to know
            assert again["delivered"] is None and "没有重复发送" in again["channel_note"]
            texts = [s["json"]["text"]["content"] for s in wechat.sends()]
            assert texts.count("您好，请问要办什么业务？") == 1


@pytest.mark.postgres
def test_the_same_reply_reaching_two_processes_at_once_is_stored_and_pushed_once(
    pg_url: str,
) -> None:
    """Two chat services on two engines (two API processes) get the same retry at once."""
    from assistant.chat import ChatService, topic
    from assistant.models import Conversation
    from assistant.skills import Deps
    from banshi.db import Database

    databases = [Database(pg_url), Database(pg_url)]
    databases[0].upgrade()
    try:
        with databases[0].session() as s:
            s.add(Conversation(id="c" * 32, channel="web", user_key="resident-pg"))
        services = [
            ChatService(Deps(settings=None, db=d, kb=None, calendar=always_open()), None)  # type: ignore[arg-type]
            for d in databases
        ]
        pushes: list[dict[str, Any]] = []
        barrier = threading.Barrier(6)
        got: list[tuple[dict[str, Any], bool]] = []
        failed: list[BaseException] = []
        originals = [service.bus.publish for service in services]

        def recording(publish: Any) -> Any:
            def publish_and_record(name: str, event: dict[str, Any]) -> None:
                assert name == topic("c" * 32)
                pushes.append(event)
                publish(name, event)

            return publish_and_record

        for service, publish in zip(services, originals, strict=True):
            service.bus.publish = recording(publish)  # type: ignore[method-assign]

        def agent(k: int) -> None:
            barrier.wait()
            try:
                posted = services[k % 2].post_once(
                    "c" * 32,
                    "agent",
                    {"text": "您好", "buttons": [], "links": []},
                    "agent:" + CLIENT_ID,
                )
                assert posted is not None
                got.append((posted[0], posted[1]))
            except BaseException as exc:
                failed.append(exc)

        threads = [threading.Thread(target=agent, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failed == []
        assert len({m["id"] for m, _ in got}) == 1
        assert sorted(duplicate for _, duplicate in got) == [False] + [True] * 5
        assert len(pushes) == 1 and pushes[0]["messages"][0]["text"] == "您好"
        with databases[1].session() as s:
            assert s.scalar(select(func.count()).select_from(ChatMessage)) == 1
    finally:
        for d in databases:
            d.dispose()
