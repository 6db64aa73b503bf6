"""The WeChat Official Account webhook: signatures, XML, passive replies, safe mode, the
deadline with the customer-service API (a fake WeChat API on 127.0.0.1), and the webhook on
the real app with the real chat service."""

from __future__ import annotations

import ast
import asyncio
import base64
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fake_wechat import FakeWeChatApi, running_wechat_api
from fastapi import FastAPI
from support import TestClient, api_client, build_settings

from assistant.chat import TOO_FAST, ChatReply
from assistant.replies import HUMAN, item_button, message
from assistant.wechat import (
    HUMAN_HINT,
    MAX_BODY_BYTES,
    BadMessage,
    CryptoError,
    CustomerServiceClient,
    WeChatCrypto,
    cdata,
    check_msg_signature,
    check_signature,
    fit,
    make_signature,
    parse_fields,
    parse_message,
    render_text,
    text_reply_xml,
)
from assistant.wechat_api import router
from banshi.settings import Settings

EVAL = Path("/work/shared/eval-data/wechat")
PAYLOADS = EVAL / "payloads"
WECHATPY_CRYPTO_TESTS = EVAL / "wechatpy" / "tests" / "test_crypto.py"

TOKEN = "banshi-wechat-token"
AES_KEY = base64.b64encode(bytes(range(1, 33))).decode().rstrip("=")  # 43 characters
APP_ID = "wx0123456789abcdef"
ME = "gh_banshi"
USER = "oUser-openid-123"
XML = {"Content-Type": "text/xml"}

ANSWER = "办理居住证请携带身份证和居住证明，到3号窗口办理。"
GREETING = (
    "您好，我是区政务服务中心的智能助手，可以为您解答办事问题。"
    "\n大厅办公时间：周一至周五 9:00-17:00。"
)


# -- helpers -----------------------------------------------------------------------------------
def signed(timestamp: str = "1700000000", nonce: str = "4711", **extra: str) -> dict[str, str]:
    return {
        "signature": make_signature(TOKEN, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        **extra,
    }


def text_xml(content: str, msg_id: str = "6000000000000000001", user: str = USER) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{ME}]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )


def xml_of(msg_type: str, body: str = "", user: str = USER, created: str = "1700000000") -> str:
    return (
        f"<xml><ToUserName><![CDATA[{ME}]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName>"
        f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>"
        f"{body}</xml>"
    )


def reply_fields(text: str) -> dict[str, str]:
    root = ET.fromstring(text)
    assert root.tag == "xml"
    return {child.tag: child.text or "" for child in root}


class FakeChat:
    """The ChatService interface: remembers answers by external id like the real one."""

    def __init__(self, delay: float = 0.0, limited: bool = False) -> None:
        self.delay = delay
        self.limited = limited
        self.calls: list[tuple[str, str, str, str | None]] = []
        self.turns = 0
        self.answers: dict[str, list[dict[str, Any]]] = {}

    async def handle(
        self, channel: str, user_key: str, text: str, external_id: str | None = None
    ) -> ChatReply:
        self.calls.append((channel, user_key, text, external_id))
        if self.limited:
            return ChatReply("conv-1", [message(TOO_FAST)], limited=True)
        key = f"{user_key}/{external_id}"
        if external_id is not None and key in self.answers:
            return ChatReply("conv-1", list(self.answers[key]), duplicate=True)
        self.answers[key] = []
        self.turns += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = [
            message(
                ANSWER,
                [{"title": "需要带什么材料？", "payload": "需要带什么材料？"}, HUMAN],
                [{"title": "查看办事指南：居住证", "url": "/guides/residence-permit"}],
            )
        ]
        self.answers[key] = answer
        return ChatReply("conv-1", answer)

    def welcome(self) -> list[dict[str, Any]]:
        return [message(GREETING, [{"title": "居住证怎么办？", "payload": "居住证怎么办？"}])]


@pytest.fixture
def wechat_api() -> Iterator[FakeWeChatApi]:
    with running_wechat_api() as api:
        yield api


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """``webhook(chat, **settings)``: a client of a small app with only the WeChat router,
    its lifespan running (so late answers are delivered and drained at the end)."""
    with ExitStack() as stack:

        def make(chat: Any, **overrides: Any) -> TestClient:
            values: dict[str, Any] = {"wechat_token": TOKEN, **overrides}
            app = FastAPI()
            app.state.settings = build_settings(tmp_path / "data", **values)
            app.state.chat = chat
            app.include_router(router)
            return stack.enter_context(TestClient(app))

        yield make


# -- signatures --------------------------------------------------------------------------------
def test_signature_known_vector() -> None:
    good = "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"
    assert make_signature("test", "1410685589", "test") == good
    assert check_signature("test", good, "1410685589", "test")
    assert not check_signature("test", good[:-1] + "e", "1410685589", "test")
    assert not check_signature("", good, "1410685589", "test")
    assert not check_signature("test", "", "1410685589", "test")


def test_get_verification_echoes_echostr(webhook: Callable[..., TestClient]) -> None:
    client = webhook(FakeChat())
    r = client.get("/wechat", params=signed(echostr="echo-1234567890"))
    assert r.status_code == 200
    assert r.text == "echo-1234567890"
    assert r.headers["content-type"].startswith("text/plain")


def test_get_verification_refuses_bad_signature(
    webhook: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = webhook(FakeChat())
    params = signed(echostr="echo-1234567890")
    params["signature"] = params["signature"][:-1] + (
        "0" if params["signature"][-1] != "0" else "1"
    )
    with caplog.at_level(logging.WARNING, logger="assistant.wechat_api"):
        r = client.get("/wechat", params=params)
    assert r.status_code == 403
    assert "签名校验失败" in r.text
    assert "echo-1234567890" not in r.text
    assert any("testclient" in rec.getMessage() for rec in caplog.records)


def test_webhook_off_without_token(webhook: Callable[..., TestClient]) -> None:
    client = webhook(FakeChat(), wechat_token="")
    r = client.get("/wechat", params=signed(echostr="x"))
    assert r.status_code == 404
    assert "微信公众号接入未开启" in r.text and "BANSHI_WECHAT_TOKEN" in r.text
    assert (
        client.post("/wechat", params=signed(), content=text_xml("你好"), headers=XML).status_code
        == 404
    )


# -- parsing -----------------------------------------------------------------------------------
PAYLOAD_FILES = sorted(PAYLOADS.glob("*.xml")) if PAYLOADS.is_dir() else []


@pytest.mark.skipif(not PAYLOAD_FILES, reason=f"{PAYLOADS} is not here")
@pytest.mark.parametrize("path", PAYLOAD_FILES, ids=lambda p: p.stem)
def test_every_sample_payload_parses_and_is_answered(
    path: Path, webhook: Callable[..., TestClient]
) -> None:
    body = path.read_bytes()
    fields = parse_fields(body)
    assert fields, path.name
    msg = parse_message(body)
    if msg.encrypt or not msg.from_user:
        return  # safe-mode envelopes and a payment notice: parsed, not ours to answer
    chat = FakeChat()
    r = webhook(chat).post("/wechat", params=signed(), content=body, headers=XML)
    assert r.status_code == 200, r.text
    if r.text != "success":
        reply = reply_fields(r.text)
        assert reply["ToUserName"] == msg.from_user
        assert reply["FromUserName"] == msg.to_user
        assert reply["Content"].strip()


def test_parse_text_message_fields() -> None:
    msg = parse_message(text_xml("社保卡丢了怎么补办？", msg_id="1234567890123456"))
    assert (msg.to_user, msg.from_user, msg.create_time) == (ME, USER, 1700000000)
    assert (msg.msg_type, msg.content, msg.msg_id) == (
        "text",
        "社保卡丢了怎么补办？",
        "1234567890123456",
    )
    assert msg.dedupe_id == "1234567890123456"


def test_event_dedupe_id_is_sender_and_time() -> None:
    msg = parse_message(
        xml_of("event", "<Event><![CDATA[subscribe]]></Event>", created="123456789")
    )
    assert msg.event == "subscribe"
    assert msg.dedupe_id == f"{USER}-123456789"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml at all",
        b"<xml><ToUserName>unclosed</xml>",
        b"<html><body>hi</body></html>",
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaa">]>'
        b"<xml><Content>&a;</Content></xml>",
        b'<!DOCTYPE xml SYSTEM "http://127.0.0.1/evil.dtd"><xml></xml>',
        b"<xml>" + b"<Content>a</Content>" * 5000 + b"</xml>",
    ],
    ids=["empty", "text", "malformed", "not-xml-root", "entity", "external-dtd", "too-big"],
)
def test_bad_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(BadMessage):
        parse_fields(body)


# -- rendering ---------------------------------------------------------------------------------
def test_text_reply_xml_swaps_users_and_escapes_cdata_end() -> None:
    incoming = parse_message(text_xml("你好"))
    tricky = "答案]]><script>x</script>\x00\x07结束"
    out = text_reply_xml(incoming, tricky, create_time=1700000001)
    assert out.startswith("<xml>\n") and out.endswith("\n</xml>")
    reply = reply_fields(out)
    assert reply == {
        "ToUserName": USER,
        "FromUserName": ME,
        "CreateTime": "1700000001",
        "MsgType": "text",
        "Content": "答案]]><script>x</script>结束",
    }
    assert parse_fields(out)["Content"] == "答案]]><script>x</script>结束"
    assert cdata("a]]>b") == "<![CDATA[a]]]]><![CDATA[>b]]>"


def test_render_text_buttons_links_and_human() -> None:
    messages = [
        message(
            ANSWER,
            [{"title": "需要带什么材料？", "payload": "需要带什么材料？"}, HUMAN],
            [{"title": "查看办事指南：居住证", "url": "/guides/residence-permit"}],
        ),
        message(
            "抱歉，我不太确定您问的是哪件事。您是想问下面哪一项？",
            [
                item_button("residence-permit", "居住证申领"),
                item_button("social-card", "社保卡补办"),
            ],
        ),
    ]
    out = render_text(messages, public_url="https://banshi.example.gov.cn/")
    assert out == (
        f"{ANSWER}\n"
        "您可以接着问：\n· 需要带什么材料？\n"
        '<a href="https://banshi.example.gov.cn/guides/residence-permit">查看办事指南：居住证</a>\n\n'
        "抱歉，我不太确定您问的是哪件事。您是想问下面哪一项？\n"
        "您可以直接回复：\n· 居住证申领\n· 社保卡补办\n\n"
        "回复“转人工”联系工作人员"
    )
    assert "/ask_service" not in out and "/request_human" not in out
    # without a public URL relative links mean nothing inside WeChat: left out
    plain = render_text(messages)
    assert "<a " not in plain and "residence-permit" not in plain
    assert plain.endswith(HUMAN_HINT)
    # absolute links stay, with the URL escaped for the attribute
    linked = render_text(
        [message("见链接", links=[{"title": "A&B", "url": 'https://x.cn/?a=1&b="2"'}])]
    )
    assert linked == '见链接\n<a href="https://x.cn/?a=1&amp;b=&quot;2&quot;">A&amp;B</a>'


def test_render_text_stays_within_2048_bytes() -> None:
    long = "社保卡补办需要本人身份证原件。" * 200
    out = render_text([message(long, [HUMAN])])
    assert len(out.encode()) <= 2048
    assert out.endswith("…")
    assert out.startswith("社保卡补办需要本人身份证原件。")
    # a cut never leaves half a link
    text = (
        "说明" * 330
        + '\n<a href="https://banshi.example.gov.cn/guides/x">查看办事指南：某个很长的事项名称</a>'
    )
    cut = fit(text, limit=2000)
    assert cut.endswith("…") and "<a " not in cut
    assert fit("短文本") == "短文本"


# -- the webhook with a fake chat ----------------------------------------------------------------
def test_text_message_gets_passive_reply(webhook: Callable[..., TestClient]) -> None:
    chat = FakeChat()
    client = webhook(chat)
    r = client.post("/wechat", params=signed(), content=text_xml("居住证怎么办？"), headers=XML)
    assert r.status_code == 200
    reply = reply_fields(r.text)
    assert reply["ToUserName"] == USER and reply["FromUserName"] == ME
    assert reply["MsgType"] == "text"
    assert reply["Content"] == (
        f"{ANSWER}\n您可以接着问：\n· 需要带什么材料？\n\n回复“转人工”联系工作人员"
    )
    assert abs(int(reply["CreateTime"]) - time.time()) < 60
    assert chat.calls == [("wechat", USER, "居住证怎么办？", "6000000000000000001")]


def test_links_are_absolute_with_public_url(webhook: Callable[..., TestClient]) -> None:
    client = webhook(FakeChat(), public_url="https://banshi.example.gov.cn")
    r = client.post("/wechat", params=signed(), content=text_xml("居住证怎么办？"), headers=XML)
    assert (
        '<a href="https://banshi.example.gov.cn/guides/residence-permit">查看办事指南：居住证</a>'
        in reply_fields(r.text)["Content"]
    )


@pytest.mark.skipif(not PAYLOADS.is_dir(), reason=f"{PAYLOADS} is not here")
def test_official_voice_example_asks_the_recognised_text(
    webhook: Callable[..., TestClient],
) -> None:
    chat = FakeChat()
    body = (PAYLOADS / "official_doc__voice_with_recognition.xml").read_bytes()
    r = webhook(chat).post("/wechat", params=signed(), content=body, headers=XML)
    assert r.status_code == 200
    assert chat.calls == [("wechat", "fromUser", "腾讯微信团队", "1234567890123456")]
    reply = reply_fields(r.text)
    assert reply["ToUserName"] == "fromUser" and reply["FromUserName"] == "toUser"
    assert reply["Content"].startswith(ANSWER)


def test_voice_without_recognition_asks_to_type(webhook: Callable[..., TestClient]) -> None:
    chat = FakeChat()
    body = xml_of("voice", "<MediaId>m1</MediaId><Format>amr</Format><MsgId>42</MsgId>")
    r = webhook(chat).post("/wechat", params=signed(), content=body, headers=XML)
    content = reply_fields(r.text)["Content"]
    assert "没听清" in content and "打字" in content
    assert chat.calls == []


def test_subscribe_gets_the_welcome(webhook: Callable[..., TestClient]) -> None:
    chat = FakeChat()
    body = xml_of("event", "<Event><![CDATA[subscribe]]></Event>")
    r = webhook(chat).post("/wechat", params=signed(), content=body, headers=XML)
    assert reply_fields(r.text)["Content"] == f"{GREETING}\n您可以接着问：\n· 居住证怎么办？"
    assert chat.calls == []


@pytest.mark.parametrize("event", ["unsubscribe", "CLICK", "VIEW", "SCAN", "LOCATION"])
def test_other_events_get_success(webhook: Callable[..., TestClient], event: str) -> None:
    chat = FakeChat()
    body = xml_of("event", f"<Event><![CDATA[{event}]]></Event><EventKey>k</EventKey>")
    r = webhook(chat).post("/wechat", params=signed(), content=body, headers=XML)
    assert (r.status_code, r.text) == (200, "success")
    assert chat.calls == []


@pytest.mark.parametrize(
    ("msg_type", "word"),
    [
        ("image", "图片"),
        ("video", "视频"),
        ("shortvideo", "小视频"),
        ("location", "位置"),
        ("link", "链接"),
        ("file", "文件"),
        ("device_text", "这类消息"),
    ],
)
def test_other_messages_get_a_polite_text(
    webhook: Callable[..., TestClient], msg_type: str, word: str
) -> None:
    chat = FakeChat()
    body = xml_of(msg_type, "<PicUrl>http://127.0.0.1/p.jpg</PicUrl><MsgId>77</MsgId>")
    r = webhook(chat).post("/wechat", params=signed(), content=body, headers=XML)
    content = reply_fields(r.text)["Content"]
    assert content.startswith(f"抱歉，我暂时看不了{word}。")
    assert "文字和语音" in content
    assert chat.calls == []


def test_bad_signature_is_refused_and_logged(
    webhook: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    chat = FakeChat()
    params = signed()
    params["timestamp"] = "1700000009"  # signed for another timestamp
    with caplog.at_level(logging.WARNING, logger="assistant.wechat_api"):
        r = webhook(chat).post("/wechat", params=params, content=text_xml("你好"), headers=XML)
    assert r.status_code == 403
    assert chat.calls == []
    assert any(
        rec.levelno == logging.WARNING and "testclient" in rec.getMessage()
        for rec in caplog.records
    )


def test_invalid_xml_is_400(webhook: Callable[..., TestClient]) -> None:
    client = webhook(FakeChat())
    r = client.post("/wechat", params=signed(), content=b"<xml><Content>oops</xml>", headers=XML)
    assert r.status_code == 400
    assert "消息格式不正确" in r.text and "Invalid XML" in r.text
    bomb = b'<!DOCTYPE xml [<!ENTITY a "x"><!ENTITY b "&a;&a;">]><xml><Content>&b;</Content></xml>'
    assert client.post("/wechat", params=signed(), content=bomb, headers=XML).status_code == 400
    missing = b"<xml><Content>hi</Content></xml>"
    r = client.post("/wechat", params=signed(), content=missing, headers=XML)
    assert r.status_code == 400 and "FromUserName" in r.text


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_wrong_content_type_is_415(
    webhook: Callable[..., TestClient], content_type: str | None
) -> None:
    chat = FakeChat()
    headers = {"Content-Type": content_type} if content_type else {}
    r = webhook(chat).post("/wechat", params=signed(), content=text_xml("你好"), headers=headers)
    assert r.status_code == 415
    assert "XML" in r.text
    assert chat.calls == []


def test_application_xml_with_charset_is_accepted(webhook: Callable[..., TestClient]) -> None:
    r = webhook(FakeChat()).post(
        "/wechat",
        params=signed(),
        content=text_xml("你好"),
        headers={"Content-Type": "application/xml; charset=utf-8"},
    )
    assert r.status_code == 200 and reply_fields(r.text)["Content"].startswith(ANSWER)


def test_too_big_body_is_413(webhook: Callable[..., TestClient]) -> None:
    chat = FakeChat()
    body = text_xml("长" * (MAX_BODY_BYTES // 3 + 10))
    r = webhook(chat).post("/wechat", params=signed(), content=body, headers=XML)
    assert r.status_code == 413
    assert "太大" in r.text
    assert chat.calls == []


def test_chat_not_started_gets_a_polite_text(webhook: Callable[..., TestClient]) -> None:
    r = webhook(None).post("/wechat", params=signed(), content=text_xml("你好"), headers=XML)
    assert reply_fields(r.text)["Content"] == "智能助手正在启动，请稍后再试。"


def test_duplicate_msgid_is_one_turn(webhook: Callable[..., TestClient]) -> None:
    chat = FakeChat()
    client = webhook(chat)
    first = client.post("/wechat", params=signed(), content=text_xml("居住证怎么办？"), headers=XML)
    again = client.post("/wechat", params=signed(), content=text_xml("居住证怎么办？"), headers=XML)
    assert chat.turns == 1 and len(chat.calls) == 2
    assert reply_fields(first.text)["Content"] == reply_fields(again.text)["Content"]
    assert reply_fields(again.text)["Content"].startswith(ANSWER)


def test_rate_limited_gets_the_polite_text(webhook: Callable[..., TestClient]) -> None:
    r = webhook(FakeChat(limited=True)).post(
        "/wechat", params=signed(), content=text_xml("你好"), headers=XML
    )
    assert reply_fields(r.text)["Content"] == TOO_FAST


def test_slow_answer_goes_by_customer_service_api(
    webhook: Callable[..., TestClient], wechat_api: FakeWeChatApi
) -> None:
    chat = FakeChat(delay=0.6)
    client = webhook(
        chat,
        wechat_reply_deadline_s=0.1,
        wechat_api_base=wechat_api.base_url,
        wechat_app_id=APP_ID,
        wechat_app_secret="app-secret-1",
    )
    r = client.post("/wechat", params=signed(), content=text_xml("居住证怎么办？"), headers=XML)
    assert (r.status_code, r.text) == (200, "success")  # did not wait for the answer
    # WeChat's retry while the first delivery is still worked on: "success", no second turn
    retry = client.post("/wechat", params=signed(), content=text_xml("居住证怎么办？"), headers=XML)
    assert retry.text == "success"
    assert chat.turns == 1

    deadline = time.monotonic() + 10
    while not wechat_api.sends() and time.monotonic() < deadline:
        time.sleep(0.02)
    (token,) = wechat_api.token_fetches()
    assert token["query"] == {
        "grant_type": "client_credential",
        "appid": APP_ID,
        "secret": "app-secret-1",
    }
    (send,) = wechat_api.sends()
    assert send["query"] == {"access_token": "TOKEN-1"}
    assert send["json"] == {
        "touser": USER,
        "msgtype": "text",
        "text": {
            "content": f"{ANSWER}\n您可以接着问：\n· 需要带什么材料？\n\n回复“转人工”联系工作人员"
        },
    }


def test_slow_answer_without_app_credentials_is_logged(
    webhook: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = webhook(FakeChat(delay=0.3), wechat_reply_deadline_s=0.05)
    with caplog.at_level(logging.ERROR, logger="assistant.wechat"):
        r = client.post("/wechat", params=signed(), content=text_xml("你好"), headers=XML)
        assert r.text == "success"
        deadline = time.monotonic() + 5
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.02)
    (record,) = caplog.records
    assert "not delivered" in record.getMessage()
    assert "BANSHI_WECHAT_APP_ID" in record.getMessage()


# -- the customer-service client ------------------------------------------------------------------
def test_token_is_cached_and_refreshed_once_on_40001(wechat_api: FakeWeChatApi) -> None:
    wechat_api.send_results = [{"errcode": 40001, "errmsg": "invalid credential"}]

    async def run() -> list[bool]:
        client = CustomerServiceClient(wechat_api.base_url, APP_ID, "app-secret-1")
        try:
            return [await client.send_text(USER, "第一条"), await client.send_text(USER, "第二条")]
        finally:
            await client.close()

    assert asyncio.run(run()) == [True, True]
    assert [(r["path"], r["query"].get("access_token")) for r in wechat_api.requests] == [
        ("/cgi-bin/token", None),
        ("/cgi-bin/message/custom/send", "TOKEN-1"),
        ("/cgi-bin/token", None),
        ("/cgi-bin/message/custom/send", "TOKEN-2"),
        ("/cgi-bin/message/custom/send", "TOKEN-2"),  # cached
    ]
    assert [s["json"]["text"]["content"] for s in wechat_api.sends()] == [
        "第一条",
        "第一条",
        "第二条",
    ]


def test_send_failure_is_logged_not_raised(
    wechat_api: FakeWeChatApi, caplog: pytest.LogCaptureFixture
) -> None:
    wechat_api.send_results = [
        {"errcode": 42001, "errmsg": "access_token expired"},
        {"errcode": 42001, "errmsg": "access_token expired"},
        {"errcode": 45015, "errmsg": "response out of time limit"},
    ]

    async def run() -> list[bool]:
        client = CustomerServiceClient(wechat_api.base_url, APP_ID, "app-secret-1")
        try:
            return [await client.send_text(USER, "答复"), await client.send_text(USER, "答复")]
        finally:
            await client.close()

    with caplog.at_level(logging.ERROR, logger="assistant.wechat"):
        assert asyncio.run(run()) == [False, False]
    messages = [r.getMessage() for r in caplog.records]
    assert "errcode=42001" in messages[0] and USER in messages[0]  # refreshed once, not twice
    assert "errcode=45015" in messages[1]
    assert len(wechat_api.token_fetches()) == 2


# -- safe mode -------------------------------------------------------------------------------------
def test_aes_round_trip_and_envelope() -> None:
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    inner = text_xml("社保卡丢了怎么补办？")
    encrypted = crypto.encrypt(inner)
    assert len(base64.b64decode(encrypted)) % 32 == 0
    assert crypto.decrypt(encrypted) == inner.encode()
    assert crypto.encrypt(inner) != encrypted  # a random prefix each time

    envelope = crypto.encrypt_reply(inner, nonce="4711", timestamp="1700000000")
    fields = parse_fields(envelope)
    assert set(fields) == {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}
    assert check_msg_signature(
        TOKEN, fields["MsgSignature"], "1700000000", "4711", fields["Encrypt"]
    )
    assert crypto.decrypt(fields["Encrypt"]) == inner.encode()

    other_app = WeChatCrypto(TOKEN, AES_KEY, "wx-another-app")
    with pytest.raises(CryptoError, match="app id"):
        other_app.decrypt(encrypted)
    with pytest.raises(CryptoError):
        WeChatCrypto(TOKEN, "A" * 43, APP_ID).decrypt(encrypted)
    with pytest.raises(CryptoError):
        crypto.decrypt("not base64!")
    with pytest.raises(ValueError):
        WeChatCrypto(TOKEN, "short", APP_ID)


def _wechatpy_crypto_setup() -> dict[str, str]:
    """token / EncodingAESKey / app id of wechatpy's crypto test class (its setUp or class
    attributes), read from the file so that no one else's values are copied here."""
    if not WECHATPY_CRYPTO_TESTS.is_file():
        pytest.skip(f"{WECHATPY_CRYPTO_TESTS} is not here")
    tree = ast.parse(WECHATPY_CRYPTO_TESTS.read_text(encoding="utf-8"))
    wanted = {
        "token": "token",
        "encoding_aes_key": "aes_key",
        "corp_id": "app_id",
        "app_id": "app_id",
        "appid": "app_id",
    }
    found: dict[str, str] = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        if not any(
            isinstance(f, ast.FunctionDef) and f.name == "test_decrypt_message" for f in cls.body
        ):
            continue
        statements: list[ast.stmt] = list(cls.body)
        for f in cls.body:
            if isinstance(f, ast.FunctionDef) and f.name == "setUp":
                statements += f.body
        for node in statements:
            if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)):
                continue
            for target in node.targets:
                name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
                if name in wanted and isinstance(node.value.value, str):
                    found.setdefault(wanted[name], node.value.value)
    if set(found) != {"token", "aes_key", "app_id"}:
        pytest.skip(f"could not find token/key/app id in {WECHATPY_CRYPTO_TESTS}")
    return found


@pytest.mark.skipif(not PAYLOADS.is_dir(), reason=f"{PAYLOADS} is not here")
def test_aes_known_vectors() -> None:
    setup = _wechatpy_crypto_setup()
    crypto = WeChatCrypto(setup["token"], setup["aes_key"], setup["app_id"])
    body = (PAYLOADS / "test_crypto__test_decrypt_message__024.xml").read_bytes()
    inner = crypto.decrypt_message(
        body, "74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294"
    )
    msg = parse_message(inner)
    assert (msg.content, msg.from_user) == ("test", "messense")
    with pytest.raises(CryptoError):
        crypto.decrypt_message(
            body, "74d92dfeb87ba7c714f89d98870ae5eb62dff26e", "1411525903", "461056294"
        )
    # encryption with wechatpy's fixed "random" prefix gives their expected envelope
    # (the payload files end with a newline that the original string literal has not)
    plain = (PAYLOADS / "test_crypto__test_encrypt_message__022.xml").read_text("utf-8").strip()
    expected = parse_fields((PAYLOADS / "test_crypto__test_encrypt_message__023.xml").read_bytes())
    assert crypto.encrypt(plain, random_prefix=b"1234567890123456") == expected["Encrypt"]
    assert (
        make_signature(setup["token"], "1411525903", "461056294", expected["Encrypt"])
        == (expected["MsgSignature"])
    )


def test_safe_mode_webhook_round_trip(webhook: Callable[..., TestClient]) -> None:
    chat = FakeChat()
    client = webhook(chat, wechat_aes_key=AES_KEY, wechat_app_id=APP_ID)
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    encrypted = crypto.encrypt(text_xml("居住证怎么办？"))
    body = (
        f"<xml><ToUserName><![CDATA[{ME}]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    )
    params = signed(
        encrypt_type="aes",
        msg_signature=make_signature(TOKEN, "1700000000", "4711", encrypted),
    )
    r = client.post("/wechat", params=params, content=body, headers=XML)
    assert r.status_code == 200
    envelope = parse_fields(r.text)
    assert envelope["Nonce"] == "4711"
    assert check_msg_signature(
        TOKEN, envelope["MsgSignature"], envelope["TimeStamp"], "4711", envelope["Encrypt"]
    )
    reply = reply_fields(crypto.decrypt(envelope["Encrypt"]).decode())
    assert reply["ToUserName"] == USER and reply["Content"].startswith(ANSWER)
    assert chat.calls == [("wechat", USER, "居住证怎么办？", "6000000000000000001")]

    params["msg_signature"] = make_signature(TOKEN, "1700000000", "4711", encrypted + "x")
    assert client.post("/wechat", params=params, content=body, headers=XML).status_code == 403
    assert len(chat.calls) == 1


# -- the real app with the real chat service -------------------------------------------------------
@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The webhook switched on; Rasa pointed at a closed port (the direct path answers)."""
    return build_settings(tmp_path / "data", wechat_token=TOKEN, rasa_url="http://127.0.0.1:9")


def test_real_app_answers_and_takes_a_retry_once(hashing_kb: Any) -> None:
    with api_client(hashing_kb.settings, hashing_kb) as client:
        body = text_xml("社保卡丢了怎么补办？", msg_id="7000000000000000001")
        first = client.post("/wechat", params=signed(), content=body, headers=XML)
        assert first.status_code == 200, first.text
        reply = reply_fields(first.text)
        assert reply["ToUserName"] == USER and reply["FromUserName"] == ME
        assert "社保卡" in reply["Content"]
        assert len(reply["Content"].encode()) <= 2048
        again = client.post("/wechat", params=signed(), content=body, headers=XML)
        assert reply_fields(again.text)["Content"] == reply["Content"]
        history = client.app.state.chat.history("wechat", USER)
        assert [m["author"] for m in history].count("resident") == 1

        welcome = client.post(
            "/wechat",
            params=signed(),
            content=xml_of("event", "<Event><![CDATA[subscribe]]></Event>"),
            headers=XML,
        )
        assert reply_fields(welcome.text)["Content"].startswith("您好，我是")


def test_rating_buttons_become_replies_to_type() -> None:
    rate = message("本次服务已结束，受理号12345678。请您对本次服务进行评价：")
    rate["buttons"] = [{"title": r, "payload": r} for r in ("非常满意", "满意", "不满意")]
    assert render_text([rate]) == (
        "本次服务已结束，受理号12345678。请您对本次服务进行评价：\n"
        "您可以直接回复：\n· 非常满意\n· 满意\n· 不满意"
    )
