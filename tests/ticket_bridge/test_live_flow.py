"""The live hand-off through the API: a resident asks for a person, an agent takes the
conversation, replies reach the widget live, the chat closes with a ticket that the resident
rates. Rasa is absent (the chat's direct path decides), the database is SQLite."""

from __future__ import annotations

from typing import Any

from bridge_support import always_open, closed_now, staff, use_calendar
from support import TestClient

SESSION = "resident-session-0001"


def say(client: TestClient, text: str, session: str = SESSION) -> dict[str, Any]:
    r = client.post("/api/chat/messages", json={"session": session, "text": text})
    assert r.status_code == 200, r.text
    return r.json()


def test_request_for_a_person_queues_and_an_agent_takes_it_and_replies(
    hashing_client: TestClient, hashing_kb: Any
) -> None:
    app = hashing_client.app
    use_calendar(app, always_open())
    agent = staff(hashing_client, hashing_kb.db, "wang")

    say(hashing_client, "居住证怎么办？")
    asked = say(hashing_client, "转人工")
    assert asked["messages"][0]["text"].startswith("您的转人工请求已记录，正在为您转接工作人员。")
    assert "您是下一位" in asked["messages"][0]["text"]

    queue = hashing_client.get("/api/agent/queue", headers=agent).json()["waiting"]
    # the agent sees what the resident asked, not the words "转人工"
    assert [(c["reason"], c["summary"]) for c in queue] == [("request", "居住证怎么办？")]
    chat_id = queue[0]["id"]
    # while waiting, the bot is silent and the resident's words go to the person
    assert say(hashing_client, "我周一要办，着急")["messages"] == []

    with hashing_client.websocket_connect(f"/api/chat/ws?session={SESSION}") as ws:
        claimed = hashing_client.post(f"/api/agent/chats/{chat_id}/claim", headers=agent)
        assert claimed.status_code == 200, claimed.text
        pushed = ws.receive_json()
        assert pushed["type"] == "push"
        assert pushed["messages"][0]["author"] == "system"
        assert pushed["messages"][0]["text"].startswith("工作人员已接入")

        view = hashing_client.get(f"/api/agent/chats/{chat_id}", headers=agent).json()
        said = [(m["author"], m["text"]) for m in view["messages"]]
        assert ("resident", "居住证怎么办？") in said
        assert ("resident", "我周一要办，着急") in said

        sent = hashing_client.post(
            f"/api/agent/chats/{chat_id}/messages",
            headers=agent,
            json={"text": "您好，周一上午9点来1楼A区就可以办理。"},
        )
        assert sent.json() == {"delivered": True, "channel_note": ""}
        pushed = ws.receive_json()
        assert [(m["author"], m["text"]) for m in pushed["messages"]] == [
            ("agent", "您好，周一上午9点来1楼A区就可以办理。")
        ]

    closed = hashing_client.post(
        f"/api/agent/chats/{chat_id}/close",
        headers=agent,
        json={
            "category": "咨询",
            "resolved": True,
            "result": "已告知办理地点和时间。",
            "phone": "13812345678",
        },
    )
    assert closed.status_code == 200, closed.text
    number = closed.json()["number"]
    assert len(number) == 8 and number.isdigit()

    # the bot is back, and the resident's rating word is the 回访
    history = hashing_client.get(f"/api/chat/history?session={SESSION}").json()["messages"]
    assert history[-1]["text"] == f"本次服务已结束，受理号{number}。请您对本次服务进行评价："
    assert [b["title"] for b in history[-1]["buttons"]] == ["非常满意", "满意", "不满意"]
    rated = say(hashing_client, "满意")
    assert rated["messages"][0]["text"] == "感谢您的评价！祝您生活愉快。"

    ticket = hashing_client.get(f"/api/tickets/{number}", headers=agent).json()
    assert ticket["status_label"] == "已审核办结"
    assert ticket["satisfaction"] == "满意"
    assert ticket["phone"] == "138****5678"
    assert [e["label"] for e in ticket["events"]] == ["登记", "即时办结", "回访"]
    assert any(m["text"] == "我周一要办，着急" for m in ticket["transcript"])

    # who looked at it is on record for the supervisor
    boss = staff(hashing_client, hashing_kb.db, "chen", "supervisor")
    audit = hashing_client.get(f"/api/supervisor/audit?number={number}", headers=boss).json()
    assert ("wang", "view_ticket") in [(e["actor"], e["action"]) for e in audit["entries"]]

    # the resident's own look-up shows the status and nothing more
    found = hashing_client.post(
        "/api/progress/lookup", json={"number": number, "phone_last4": "5678"}
    ).json()
    assert set(found) == {
        "number",
        "status",
        "status_label",
        "created_at",
        "updated_at",
        "closed",
        "can_rate",
    }
    assert found["status_label"] == "已审核办结"


def test_out_of_hours_a_request_becomes_a_ticket_and_a_phone_left_later_is_kept(
    hashing_client: TestClient, hashing_kb: Any
) -> None:
    use_calendar(hashing_client.app, closed_now())
    asked = say(hashing_client, "转人工")
    text = asked["messages"][0]["text"]
    assert text.startswith("您的转人工请求已登记，受理号")
    assert "现在是非工作时间，工作人员" in text and "如需回电，请直接发送您的手机号码。" in text
    number = text.split("受理号")[1][:8]
    kept = say(hashing_client, "13900001111")
    assert (
        kept["messages"][0]["text"] == f"已记下您的手机号，工作人员办理受理号{number}时会联系您。"
    )
    # asking again the same evening gives the same ticket, not a second one
    again = say(hashing_client, "转人工")
    assert f"受理号{number}" in again["messages"][0]["text"]
    found = hashing_client.post(
        "/api/progress/lookup", json={"number": number, "phone_last4": "1111"}
    ).json()
    assert found["status_label"] == "待分派"
    # in the same conversation, the number alone is enough
    status = say(hashing_client, f"查询{number}")
    assert status["messages"][0]["text"] == f"受理号{number}：待分派。"


def test_two_agents_claiming_one_conversation_exactly_one_wins(
    hashing_client: TestClient, hashing_kb: Any
) -> None:
    use_calendar(hashing_client.app, always_open())
    a = staff(hashing_client, hashing_kb.db, "li")
    b = staff(hashing_client, hashing_kb.db, "zhao")
    say(hashing_client, "转人工")
    chat_id = hashing_client.get("/api/agent/queue", headers=a).json()["waiting"][0]["id"]
    first = hashing_client.post(f"/api/agent/chats/{chat_id}/claim", headers=a)
    second = hashing_client.post(f"/api/agent/chats/{chat_id}/claim", headers=b)
    assert (first.status_code, second.status_code) == (200, 409)
    assert second.json()["error"]["message"] == "这个对话已被其他工作人员接入或已结束。"
    # and the loser cannot read or write in it
    assert hashing_client.get(f"/api/agent/chats/{chat_id}", headers=b).status_code == 403
    r = hashing_client.post(
        f"/api/agent/chats/{chat_id}/messages", headers=b, json={"text": "你好"}
    )
    assert r.status_code == 403


def test_an_agent_reply_reaches_a_wechat_resident_through_the_customer_service_api(
    hashing_kb: Any,
) -> None:
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
            agent = staff(client, hashing_kb.db, "sun")
            ts, nonce = "1700000000", "42"
            sig = make_signature("banshi-wechat-token", ts, nonce)
            xml = (
                "<xml><ToUserName><![CDATA[gh_banshi]]></ToUserName>"
                "<FromUserName><![CDATA[oResident-1]]></FromUserName>"
                "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                "<Content><![CDATA[转人工]]></Content><MsgId>8000000000000000001</MsgId></xml>"
            )
            r = client.post(
                "/wechat",
                params={"signature": sig, "timestamp": ts, "nonce": nonce},
                content=xml,
                headers={"Content-Type": "text/xml"},
            )
            assert "正在为您转接工作人员" in r.text
            [chat] = client.get("/api/agent/queue", headers=agent).json()["waiting"]
            assert chat["channel"] == "wechat"
            client.post(f"/api/agent/chats/{chat['id']}/claim", headers=agent)
            sent = client.post(
                f"/api/agent/chats/{chat['id']}/messages",
                headers=agent,
                json={"text": "您好，我是工作人员，请问要办什么业务？"},
            )
            assert sent.json() == {"delivered": True, "channel_note": ""}
            texts = [s["json"]["text"]["content"] for s in wechat.sends()]
            assert texts[-1] == "您好，我是工作人员，请问要办什么业务？"
            assert texts[0].startswith("工作人员已接入")
            assert {s["json"]["touser"] for s in wechat.sends()} == {"oResident-1"}

            # WeChat refuses (the resident has been silent for over 48 hours): the agent is told
            wechat.send_results.append({"errcode": 45015, "errmsg": "response out of time limit"})
            refused = client.post(
                f"/api/agent/chats/{chat['id']}/messages", headers=agent, json={"text": "在吗？"}
            ).json()
            assert refused["delivered"] is False
            assert refused["channel_note"].startswith("微信未能送达")


def test_staff_endpoints_need_login_the_right_role_and_the_csrf_header(
    hashing_client: TestClient, hashing_kb: Any
) -> None:
    assert hashing_client.get("/api/agent/queue").status_code == 401
    assert hashing_client.get("/api/tickets").status_code == 401
    agent = staff(hashing_client, hashing_kb.db, "qian")
    assert hashing_client.get("/api/supervisor/overview", headers=agent).status_code == 403
    r = hashing_client.post("/api/agent/canned", headers=agent, json={"title": "x", "text": "y"})
    assert r.status_code == 403

    # the pages log in with a cookie: changes need the CSRF token as well
    with hashing_kb.db.session() as s:
        from banshi.auth import create_user

        create_user(s, "zhou", "pw-zhou-12345", "supervisor")
    login = hashing_client.post(
        "/api/auth/login", json={"username": "zhou", "password": "pw-zhou-12345", "cookie": True}
    )
    assert login.json()["token"] == ""  # nothing for a script to steal
    csrf = login.json()["csrf"]
    assert hashing_client.get("/api/supervisor/overview").status_code == 200
    canned = {"title": "下班", "text": "今天的服务时间已结束。"}
    forged = hashing_client.post("/api/agent/canned", json=canned)
    assert forged.status_code == 403
    assert forged.json()["error"]["message"] == "页面已过期，请刷新后重试。"
    made = hashing_client.post("/api/agent/canned", json=canned, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201
    assert hashing_client.get("/api/auth/me").json()["csrf"] == csrf


def test_residents_cannot_read_other_residents_tickets_or_conversations(
    hashing_client: TestClient, hashing_kb: Any
) -> None:
    use_calendar(hashing_client.app, closed_now())
    mine = say(hashing_client, "转人工 我的电话13800001234", session="resident-a-000000001")
    number = mine["messages"][0]["text"].split("受理号")[1][:8]
    other = "resident-b-000000002"
    # another resident's chat knows nothing of it without the phone digits…
    asked = say(hashing_client, f"查询{number}", session=other)
    assert (
        asked["messages"][0]["text"]
        == "查询工单办理进度：请发送受理号和登记手机号的后四位，例如：12345678 5678。"
    )
    wrong = say(hashing_client, f"{number} 9999", session=other)
    assert wrong["messages"][0]["text"] == "没有找到这个受理号，或手机号后四位不对。请核对后再试。"
    right = say(hashing_client, f"{number} 1234", session=other)
    assert right["messages"][0]["text"] == f"受理号{number}：待分派。"
    # …and never sees the first resident's conversation
    history = hashing_client.get(f"/api/chat/history?session={other}").json()["messages"]
    assert all("13800001234" not in m["text"] for m in history)
    r = hashing_client.post("/api/progress/lookup", json={"number": number, "phone_last4": "12345"})
    assert r.status_code == 422


def test_a_resident_tired_of_waiting_leaves_the_queue_and_the_bot_answers_again(
    hashing_client: TestClient, hashing_kb: Any
) -> None:
    use_calendar(hashing_client.app, always_open())
    agent = staff(hashing_client, hashing_kb.db, "feng")
    assert "不想等了可以发送“取消”" in say(hashing_client, "转人工")["messages"][0]["text"]
    left = say(hashing_client, "取消")
    assert left["messages"][0]["text"].startswith("已为您取消排队，智能助手继续为您服务。")
    assert hashing_client.get("/api/agent/queue", headers=agent).json()["waiting"] == []
    answer = say(hashing_client, "居住证怎么办？")
    assert "居住证" in answer["messages"][0]["text"]


def test_a_widget_reconnecting_gets_what_it_missed(
    hashing_client: TestClient, hashing_kb: Any
) -> None:
    use_calendar(hashing_client.app, always_open())
    agent = staff(hashing_client, hashing_kb.db, "he")
    hashing_client.put("/api/agent/state", headers=agent, json={"status": "online"})
    say(hashing_client, "转人工")
    history = hashing_client.get(f"/api/chat/history?session={SESSION}").json()["messages"]
    last_seen = history[-1]["id"]
    [chat] = hashing_client.get("/api/agent/chats", headers=agent).json()["chats"]
    # the page is closed while the agent writes
    hashing_client.post(
        f"/api/agent/chats/{chat['id']}/messages", headers=agent, json={"text": "还在吗？"}
    )
    with hashing_client.websocket_connect(
        f"/api/chat/ws?session={SESSION}&after={last_seen}"
    ) as ws:
        caught_up = ws.receive_json()
    assert caught_up["type"] == "push"
    assert [m["text"] for m in caught_up["messages"]][-1] == "还在吗？"
