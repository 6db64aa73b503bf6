"""banshi/limits.py: request body sizes, the rate-limit budgets on every route (429 with
Retry-After, in Chinese), the client behind nginx, and counters shared through Redis."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import uvicorn
from fastapi import FastAPI, Request
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel
from starlette.testclient import WebSocketDenialResponse
from support import TestClient, api_client, build_settings

from banshi import limits
from banshi.app import create_app
from banshi.errors import install_handlers
from banshi.limits import BUDGETS, TOO_LARGE, TOO_MANY, Limits, client_ip, trusted_networks
from banshi.settings import Settings

NOW = 1_800_000_030.0  # 30 s into a one-minute window
SCALE = 0.05  # the budgets at 5%: health 15, login 2, partner 150, staff 30, write 6, read 60
KIB = 1024
JSON = {"content-type": "application/json"}

# Every route and the budget it counts against ("WS": a WebSocket's handshake). A new route
# fails here until it is given its budget (banshi/limits.py, RULES).
ROUTES = {
    "health": ["GET /healthz"],
    "login": ["POST /api/auth/login"],
    "partner": [
        "GET /wechat",
        "POST /wechat",
        "POST /api/rasa/actions",
        "POST /api/bridge/inbound/{source}",
        "POST /api/voice/pbx/calls/{call_uuid}",
        "GET /api/voice/pbx/calls/{call_uuid}/next",
    ],
    "staff": [
        "POST /api/auth/logout",
        "GET /api/auth/me",
        "POST /api/kb/documents",
        "PUT /api/kb/documents/{doc_id}",
        "DELETE /api/kb/documents/{doc_id}",
        "GET /api/agent/state",
        "PUT /api/agent/state",
        "PUT /api/agents/{username}",
        "GET /api/agent/queue",
        "GET /api/agent/chats",
        "POST /api/agent/chats/{chat_id}/claim",
        "GET /api/agent/chats/{chat_id}",
        "POST /api/agent/chats/{chat_id}/messages",
        "POST /api/agent/chats/{chat_id}/release",
        "POST /api/agent/chats/{chat_id}/transfer",
        "POST /api/agent/chats/{chat_id}/close",
        "GET /api/agent/directory",
        "GET /api/agent/canned",
        "POST /api/agent/canned",
        "PUT /api/agent/canned/{reply_id}",
        "DELETE /api/agent/canned/{reply_id}",
        "GET /api/tickets",
        "POST /api/tickets",
        "GET /api/tickets/{number}",
        "POST /api/tickets/{number}/actions",
        "GET /api/supervisor/overview",
        "GET /api/supervisor/audit",
        "WS /api/agent/ws",
        "GET /api/counter/{window}",
        "POST /api/counter/{window}",
        "POST /api/admin/forms",
        "POST /api/admin/forms/validate",
        "GET /api/admin/forms/{form_id}/versions",
        "GET /api/admin/forms/views",
        "GET /api/admin/queue/stats",
        "GET /api/admin/voice/calls",
        "GET /api/voice/recordings/{ticket_number}",
    ],
    "write": [
        "POST /api/kb/ask",
        "POST /api/chat/messages",
        "WS /api/chat/ws",
        "POST /api/progress/lookup",
        "POST /api/progress/rating",
        "POST /api/kiosk/tickets",
        "POST /api/kiosk/check-in",
        "POST /api/kiosk/tickets/{token}/print",
        "POST /api/kiosk/tickets/{token}/requeue",
        "POST /api/kiosk/appointments",
        "DELETE /api/kiosk/appointments/{token}",
        "POST /api/forms/{form_id}/print",
        "WS /api/voice/webcall",
    ],
    "read": [
        "GET /openapi.json",
        "GET /docs",
        "GET /docs/oauth2-redirect",
        "GET /redoc",
        "GET /static/staff.js",
        "GET /api/kb/items",
        "GET /api/kb/documents",
        "GET /api/kb/documents/{doc_id}",
        "GET /",
        "GET /guides/{item_id}",
        "GET /api/chat/history",
        "GET /chat",
        "GET /agent",
        "GET /progress",
        "GET /api/kiosk/services",
        "GET /api/kiosk/tickets/{token}",
        "GET /api/kiosk/slots",
        "GET /api/kiosk/tickets/{token}/qr.svg",
        "GET /api/kiosk/appointments/{token}/qr.svg",
        "GET /api/kiosk/windows",
        "GET /display",
        "GET /api/kiosk/calls/recent",
        "GET /api/kiosk/calls/stream",
        "GET /api/kiosk/calls/{call_id}/audio.wav",
        "GET /api/forms",
        "GET /api/forms/departments",
        "GET /api/forms/{form_id}",
        "GET /api/forms/{form_id}/qr.svg",
        "GET /api/forms/{form_id}/{kind}.{fmt}",
        "GET /kiosk",
        "GET /counter",
        "GET /queue/{token}",
        "GET /forms",
        "GET /forms/{form_id}",
        "GET /call",
    ],
}
# One request of each budget, for the tests that exhaust it
EXAMPLES: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "health": ("GET", "/healthz", None),
    "login": ("POST", "/api/auth/login", {"username": "nobody", "password": "wrong"}),
    "partner": ("GET", "/wechat", None),
    "staff": ("GET", "/api/agent/state", None),
    "write": ("POST", "/api/kiosk/check-in", {}),
    "read": ("GET", "/api/kiosk/services", None),
}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The limits' clock, stopped 30 s into a window (``clock[0] += 60``: the next one)."""
    now = [NOW]
    monkeypatch.setattr(limits, "time", SimpleNamespace(time=lambda: now[0]))
    return now


@pytest.fixture
def limited(hashing_kb: Any, clock: list[float]) -> Callable[..., Any]:
    """``limited(**settings)``: a client of the app with its rate limits on (at SCALE)."""

    @contextmanager
    def make(**overrides: Any) -> Iterator[TestClient]:
        values = {"rate_limits": str(SCALE), **overrides}
        settings = build_settings(hashing_kb.settings.data_dir, **values)
        with api_client(settings, hashing_kb) as client:
            yield client

    return make


def send(client: TestClient, budget: str, **kwargs: Any) -> Any:
    method, path, body = EXAMPLES[budget]
    return client.request(method, path, json=body, **kwargs)


def limit_of(budget: str) -> int:
    return max(1, round(BUDGETS[budget].limit * SCALE))


def assert_too_many(r: Any, budget: str) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["retry-after"] == "30"  # the window ends 30 s from NOW
    error = r.json()["error"]
    assert error["code"] == "too_many_requests"
    assert error["message"] == TOO_MANY == "请求太频繁，请稍后再试。"
    assert error["fields"] == {"budget": budget, "retry_after_s": 30}


# -- which budget -------------------------------------------------------------------------------
def test_every_route_has_the_budget_meant_for_it(settings: Settings) -> None:
    app = create_app(settings)
    found = {
        f"{method} {route.path}"
        for route in iter_route_contexts(app.routes)
        for method in (route.methods or {"WS"}) - {"HEAD"}
    }
    listed = [entry for entries in ROUTES.values() for entry in entries]
    assert sorted(found) == sorted(listed)
    for budget, entries in ROUTES.items():
        for entry in entries:
            method, path = entry.split()
            concrete = path.replace("{", "").replace("}", "")  # any value will do
            assert limits.budget_for(method, concrete).name == budget, entry


# -- rate limits --------------------------------------------------------------------------------
@pytest.mark.parametrize("budget", list(EXAMPLES))
def test_each_budget_answers_429_with_retry_after_in_chinese(
    limited: Callable[..., Any], clock: list[float], budget: str
) -> None:
    with limited() as client:
        for _ in range(limit_of(budget)):
            assert send(client, budget).status_code != 429
        assert_too_many(send(client, budget), budget)
        others = [b for b in EXAMPLES if b != budget]
        assert all(send(client, b).status_code != 429 for b in others)  # counted apart
        clock[0] += 30  # the next window
        assert send(client, budget).status_code != 429


def test_off_and_a_multiplier(limited: Callable[..., Any]) -> None:
    with limited(rate_limits="off") as client:
        assert all(send(client, "login").status_code == 401 for _ in range(10))
    with limited(rate_limits="0.1") as client:  # 3 log-ins a minute
        assert all(send(client, "login").status_code == 401 for _ in range(3))
        assert send(client, "login").status_code == 429


def test_a_websocket_counts_at_its_handshake_only(limited: Callable[..., Any]) -> None:
    with limited() as client:
        with client.websocket_connect("/api/chat/ws?session=ws-limits-session-1") as ws:
            for i in range(limit_of("write") + 2):  # messages on an open socket: not counted
                ws.send_text(json.dumps({"text": "你好", "client_id": f"c{i}"}))
                while (event := ws.receive_json())["type"] == "typing":
                    pass
                assert event["type"] == "reply", event
        for _ in range(limit_of("write") - 1):
            assert send(client, "write").status_code != 429
        url = "/api/chat/ws?session=ws-limits-session-2"
        with pytest.raises(WebSocketDenialResponse) as denied, client.websocket_connect(url):
            pass
        assert_too_many(denied.value, "write")


# -- the client behind nginx --------------------------------------------------------------------
def test_forwarded_for_is_read_only_from_trusted_proxies() -> None:
    nginx = trusted_networks("127.0.0.1, 10.1.0.0/16, ::1")
    assert client_ip("127.0.0.1", "203.0.113.7", nginx) == "203.0.113.7"
    # the client claims an address; nginx appends the one it saw, which counts
    assert client_ip("127.0.0.1", "198.51.100.1, 203.0.113.7", nginx) == "203.0.113.7"
    # two proxies of ours (a load balancer, then nginx): the last hop that is not ours
    assert client_ip("127.0.0.1", "198.51.100.1, 203.0.113.7, 10.1.2.3", nginx) == "203.0.113.7"
    assert client_ip("::1", "2001:db8::5", nginx) == "2001:db8::5"
    # anyone else's header is ignored
    assert client_ip("203.0.113.7", "198.51.100.1", nginx) == "203.0.113.7"
    assert client_ip("testclient", "198.51.100.1", nginx) == "testclient"
    assert client_ip("127.0.0.1", "", nginx) == "127.0.0.1"  # nginx itself, or a local call
    assert limits.rate_key("2001:db8:1:2:aaaa::1") == limits.rate_key("2001:db8:1:2:bbbb::9")


def test_residents_behind_nginx_each_have_their_own_budget(limited: Callable[..., Any]) -> None:
    with limited() as app_client:
        nginx = TestClient(app_client.app, client=("127.0.0.1", 40000))
        a, b = {"x-forwarded-for": "203.0.113.7"}, {"x-forwarded-for": "203.0.113.8"}
        for _ in range(limit_of("write")):
            assert send(nginx, "write", headers=a).status_code != 429
        assert_too_many(send(nginx, "write", headers=a), "write")
        assert send(nginx, "write", headers=b).status_code != 429
        # what a resident puts in front of nginx's own entry does not make it someone else
        spoofed = {"x-forwarded-for": "198.51.100.99, 203.0.113.7"}
        assert_too_many(send(nginx, "write", headers=spoofed), "write")


def test_a_client_not_behind_a_trusted_proxy_cannot_claim_other_addresses(
    limited: Callable[..., Any],
) -> None:
    with limited() as app_client:
        direct = TestClient(app_client.app, client=("198.51.100.7", 40000))
        for i in range(limit_of("write")):
            r = send(direct, "write", headers={"x-forwarded-for": f"203.0.113.{i}"})
            assert r.status_code != 429
        r = send(direct, "write", headers={"x-forwarded-for": "203.0.113.200"})
        assert_too_many(r, "write")


def test_the_app_sees_the_resident_not_nginx(limited: Callable[..., Any]) -> None:
    """The PBX's questions are answered to this machine only (no PBX token set): a request
    that came in through nginx is the resident's, not this machine's."""
    path = f"/api/voice/pbx/calls/{uuid.uuid4()}/next"
    with limited() as app_client:
        local = TestClient(app_client.app, client=("127.0.0.1", 40000))
        assert local.get(path).status_code == 200
        r = local.get(path, headers={"x-forwarded-for": "203.0.113.7"})
        assert r.status_code == 403


# -- body sizes ---------------------------------------------------------------------------------
def assert_too_large(r: Any, limit: int) -> None:
    assert r.status_code == 413, r.text[:300]
    error = r.json()["error"]
    assert error["code"] == "payload_too_large"
    assert error["message"] == TOO_LARGE == "提交的内容太大了。"
    assert error["fields"] == {"limit_bytes": limit}


def chunks(total: int, size: int = 8 * KIB) -> Iterator[bytes]:
    while total > 0:
        yield b" " * min(size, total)
        total -= size


def test_a_body_over_the_limit_is_refused(shared_client: TestClient) -> None:
    big = json.dumps({"session": "s", "text": "长" * 20_000}).encode()  # 120 KB as \u escapes
    assert len(big) > 64 * KIB
    headers = JSON
    assert_too_large(
        shared_client.post("/api/chat/messages", content=big, headers=headers), 64 * KIB
    )
    # the same without Content-Length: counted as it streams in
    r = shared_client.post("/api/chat/messages", content=chunks(70 * KIB), headers=headers)
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert_too_large(r, 64 * KIB)
    r = shared_client.post("/api/chat/messages", content=chunks(8 * KIB), headers=headers)
    assert r.status_code == 422  # under the limit: the app reads it (and finds no message)


def test_routes_that_need_more_have_their_own_budget(
    hashing_client: TestClient, token_for: Callable[[str], str]
) -> None:
    question = json.dumps({"question": "怎么办理居住证" * 2_000})  # 14,000 characters
    assert 64 * KIB < len(question) < 128 * KIB  # as \u escapes
    r = hashing_client.post("/api/kb/ask", content=question, headers=JSON)
    assert r.status_code == 200
    admin = {"Authorization": f"Bearer {token_for('admin')}"}
    r = hashing_client.post("/api/admin/forms", content="#" * (200 * KIB), headers=admin)
    assert r.status_code == 400  # the route's own words, naming the file
    assert r.json()["error"]["message"] == "样表定义文件太大。"
    r = hashing_client.post("/api/admin/forms", content="#" * (300 * KIB), headers=admin)
    assert_too_large(r, 256 * KIB)
    r = hashing_client.post("/api/kb/ask", content=chunks(200 * KIB), headers=admin)
    assert_too_large(r, 128 * KIB)


class Body(BaseModel):
    text: str = ""


def small_app(settings: Settings, seen: list[int]) -> Any:
    """An app that reads the body of POST / and says how long it was."""
    app = FastAPI()
    install_handlers(app)

    @app.post("/")
    async def read(request: Request) -> dict[str, int]:
        body = await request.body()
        seen.append(len(body))
        return {"bytes": len(body)}

    @app.post("/model")
    async def model(body: Body) -> dict[str, int]:
        return {"chars": len(body.text)}

    return Limits(app, settings)


def test_a_streamed_body_is_cut_off_as_soon_as_it_passes_the_limit(settings: Settings) -> None:
    import asyncio

    seen: list[int] = []
    app = small_app(settings.model_copy(update={"max_body_bytes": 20 * KIB}), seen)
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * (4 * KIB), "more_body": pulled < 100}

    async def capture(message: dict[str, Any]) -> None:
        sent.append(message)

    for path in ("/", "/model"):
        pulled, sent[:] = 0, []
        scope = {
            "type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
            "query_string": b"", "headers": [(b"content-type", b"application/json")],
            "client": ("198.51.100.7", 1), "server": ("testserver", 80), "scheme": "http",
            "root_path": "", "http_version": "1.1",
        }  # fmt: skip
        asyncio.run(app(scope, receive, capture))
        assert pulled == 6  # 24 KiB read, then no more
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        assert sent[0]["status"] == 413
        assert json.loads(sent[1]["body"])["error"]["fields"] == {"limit_bytes": 20 * KIB}
    assert seen == []  # the route never got a body


def test_a_content_length_of_other_digits_is_left_to_the_server(settings: Settings) -> None:
    """ "\xb9" (latin-1 for "¹") passes str.isdigit(); int() would fail on it."""
    import asyncio

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def capture(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": "/", "raw_path": b"/", "query_string": b"",
        "headers": [(b"content-length", b"\xb9")], "client": ("198.51.100.7", 1),
        "server": ("testserver", 80), "scheme": "http", "root_path": "", "http_version": "1.1",
    }  # fmt: skip
    asyncio.run(small_app(settings, [])(scope, receive, capture))
    assert sent[0]["status"] == 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_real_server_refuses_a_chunked_body_over_the_limit(settings: Settings) -> None:
    seen: list[int] = []
    app = small_app(settings, seen)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="error", ws="none", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        for total, status in ((60 * KIB, 200), (80 * KIB, 413)):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/", body=chunks(total), encode_chunked=True)
            r = conn.getresponse()
            assert r.status == status
            body = json.loads(r.read())
            conn.close()
            if status == 413:
                assert body["error"]["message"] == TOO_LARGE
        assert seen == [60 * KIB]
    finally:
        server.should_exit = True
        thread.join(10)


# -- Redis --------------------------------------------------------------------------------------
def staff_calls(client: TestClient, n: int) -> list[int]:
    return [send(client, "staff").status_code for _ in range(n)]


def test_two_processes_share_their_counts_through_redis(
    limited: Callable[..., Any], redis_server: str
) -> None:
    budget = limit_of("staff")
    with limited(redis_url=redis_server) as one, limited(redis_url=redis_server) as two:
        assert staff_calls(one, budget // 2) == [401] * (budget // 2)
        assert staff_calls(two, budget - budget // 2) == [401] * (budget - budget // 2)
        assert_too_many(send(one, "staff"), "staff")
        assert_too_many(send(two, "staff"), "staff")
    with redis.Redis.from_url(redis_server) as r:
        keys = [k.decode() for k in r.keys("banshi:rate:*")]
        assert keys == [f"banshi:rate:staff:testclient:{int(NOW // 60)}"]
        assert 0 < int(r.ttl(keys[0])) <= 61


def test_without_redis_each_process_counts_alone_and_says_so_once(
    limited: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="banshi.limits")
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    budget = limit_of("staff")
    with limited(redis_url=nowhere) as client:
        assert staff_calls(client, budget) == [401] * budget
        assert_too_many(send(client, "staff"), "staff")
    warnings = [r for r in caplog.records if r.name == "banshi.limits"]
    assert len(warnings) == 1 and "Redis does not answer" in warnings[0].getMessage()


def test_when_redis_goes_away_requests_still_pass_and_counting_resumes_there(
    limited: Callable[..., Any], redis_process: Any, clock: list[float]
) -> None:
    with limited(redis_url=redis_process.url) as client:
        assert staff_calls(client, 2) == [401, 401]
        redis_process.kill()
        assert staff_calls(client, 3) == [401] * 3  # counted in this process meanwhile
        redis_process.start()
        clock[0] += limits.REDIS_RETRY_S + 1  # Redis is asked again (in a new window)
        assert staff_calls(client, 1) == [401]
    with redis.Redis.from_url(redis_process.url) as r:
        assert r.get(f"banshi:rate:staff:testclient:{int(clock[0] // 60)}") == b"1"
