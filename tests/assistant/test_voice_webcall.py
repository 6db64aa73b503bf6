"""The web call transport (assistant/voice/webcall.py): a browser's call over a WebSocket,
driven here by Starlette's test client in place of the page, with a stub call engine that
plays a tone, records what the caller sends and hangs up on "#"."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import WebSocketTestSession
from support import TestClient

from assistant.voice import webcall
from assistant.voice.pcm import tone
from assistant.voice.transport import CallHandler, CallIO
from assistant.voice.webcall import WebCall, webcall_router

URL = "/api/voice/webcall"
START = {"type": "start", "rate": 8000}
WAIT_S = 5.0  # no test waits longer than this for the engine
GREETING = tone(1000, 8000, ms=200)  # 1 kHz for 200 ms: 3,200 bytes, ten 20 ms frames
NOT_UNDERSTOOD = "收到一条看不懂的消息，已忽略。"
BAD_KEY = "按键无效，请按 0 到 9、* 或 #。"


class StubEngine:
    """A call engine in miniature: plays ``greeting``, then records the caller's audio and
    key presses until "#" (it hangs up) or the caller leaves. ``done`` is set when it
    returns; ``calls`` holds the calls it ran."""

    def __init__(self, greeting: bytes = GREETING) -> None:
        self.greeting = greeting
        self.heard = bytearray()
        self.digits: list[str] = []
        self.calls: list[CallIO] = []
        self.sent: list[int] = []
        self.done = threading.Event()

    async def __call__(self, call: CallIO) -> None:
        self.calls.append(call)
        try:
            if self.greeting:
                self.sent.append(await call.send_audio(self.greeting))
            async for event in call.events():
                if isinstance(event, str):
                    self.digits.append(event)
                    if event == "#":
                        await call.hangup()
                else:
                    self.heard += event
        finally:
            self.done.set()

    def wait(self) -> None:
        assert self.done.wait(WAIT_S), "the engine did not finish"


def make_app(handler: CallHandler | None, **options: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(webcall_router(lambda: handler, **options))
    return app


@pytest.fixture
def engine() -> StubEngine:
    return StubEngine()


@pytest.fixture
def client(engine: StubEngine) -> Iterator[TestClient]:
    with TestClient(make_app(engine)) as c:
        yield c


def started(ws: WebSocketTestSession) -> str:
    """Dial: send start, return the call_ref the server answers with."""
    ws.send_json(START)
    answer = ws.receive_json()
    assert answer["type"] == "started"
    return str(answer["call_ref"])


def receive_audio(ws: WebSocketTestSession, n_bytes: int) -> bytes:
    got = bytearray()
    while len(got) < n_bytes:
        got += ws.receive_bytes()
    return bytes(got)


def until_closed(ws: WebSocketTestSession) -> tuple[bytes, list[dict[str, Any]], int]:
    """Everything the server sends until it closes the socket: the audio, the JSON
    messages and the close code."""
    audio = bytearray()
    texts: list[dict[str, Any]] = []
    while True:
        message = ws.receive()
        if message["type"] == "websocket.close":
            return bytes(audio), texts, int(message["code"])
        if message.get("bytes") is not None:
            audio += message["bytes"]
        else:
            texts.append(json.loads(message["text"]))


def webcall_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == webcall.__name__ and r.levelno >= logging.ERROR]


# -- a whole call ------------------------------------------------------------------------
def test_start_is_answered_with_the_call_ref_and_the_greeting_plays_in_20_ms_frames(
    client: TestClient, engine: StubEngine
) -> None:
    with client.websocket_connect(URL) as ws:
        call_ref = started(ws)
        frames = [ws.receive_bytes() for _ in range(10)]
        ws.send_json({"type": "dtmf", "digit": "#"})
        rest, texts, code = until_closed(ws)
    engine.wait()
    assert len(call_ref) == 16 and int(call_ref, 16) >= 0
    assert [len(f) for f in frames] == [320] * 10
    assert b"".join(frames) == GREETING
    assert rest == b""
    assert texts == [{"type": "hangup"}]
    assert code == 1000
    call = engine.calls[0]
    assert (call.channel, call.caller_id, call.call_ref) == ("web", "", call_ref)
    assert engine.sent == [len(GREETING)]


def test_the_callers_audio_and_keys_reach_the_engine_in_order_and_unchanged(
    client: TestClient, engine: StubEngine, caplog: pytest.LogCaptureFixture
) -> None:
    speech = tone(440, 8000, ms=100)  # 1,600 bytes
    with client.websocket_connect(URL) as ws:
        started(ws)
        for i in range(0, len(speech), 320):
            ws.send_bytes(speech[i : i + 320])
        ws.send_json({"type": "dtmf", "digit": "1"})
        ws.send_json({"type": "dtmf", "digit": "*"})
        ws.send_json({"type": "dtmf", "digit": "#"})
        audio, texts, _ = until_closed(ws)
    engine.wait()
    assert bytes(engine.heard) == speech
    assert engine.digits == ["1", "*", "#"]
    assert audio == GREETING
    assert texts == [{"type": "hangup"}]
    assert isinstance(engine.calls[0], WebCall)
    assert engine.calls[0].end_reason == "local"
    assert webcall_errors(caplog) == []


def test_the_caller_hanging_up_ends_the_engines_events(
    client: TestClient, engine: StubEngine, caplog: pytest.LogCaptureFixture
) -> None:
    with client.websocket_connect(URL) as ws:
        started(ws)
        receive_audio(ws, len(GREETING))
        ws.send_bytes(bytes(320))
        ws.send_json({"type": "hangup"})
        engine.wait()
        _, texts, code = until_closed(ws)  # the server's side closes too
    call = engine.calls[0]
    assert isinstance(call, WebCall)
    assert call.end_reason == "hangup"
    assert bytes(engine.heard) == bytes(320)
    assert texts == [{"type": "hangup"}]
    assert code == 1000
    assert webcall_errors(caplog) == []


def test_a_dropped_socket_ends_the_call_without_errors(
    client: TestClient, engine: StubEngine, caplog: pytest.LogCaptureFixture
) -> None:
    with client.websocket_connect(URL) as ws:
        started(ws)
        ws.send_json({"type": "dtmf", "digit": "7"})
        ws.close(1001)
        engine.wait()
    call = engine.calls[0]
    assert isinstance(call, WebCall)
    assert call.end_reason == "eof"
    assert engine.digits == ["7"]
    assert webcall_errors(caplog) == []


# -- messages that are not understood ------------------------------------------------------
@pytest.mark.parametrize(
    ("send", "message"),
    [
        (lambda ws: ws.send_text("你好"), NOT_UNDERSTOOD),
        (lambda ws: ws.send_text("[1, 2]"), NOT_UNDERSTOOD),
        (lambda ws: ws.send_json({"type": "ring"}), NOT_UNDERSTOOD),
        (
            lambda ws: ws.send_json({"type": "dtmf", "digit": "12"}),
            "按键无效，请按 0 到 9、* 或 #。",
        ),
        (
            lambda ws: ws.send_json({"type": "dtmf", "digit": "A"}),
            "按键无效，请按 0 到 9、* 或 #。",
        ),
        (lambda ws: ws.send_json({"type": "dtmf"}), BAD_KEY),
        (lambda ws: ws.send_bytes(b"\x01\x02\x03"), "收到的声音数据不完整，已忽略。"),
        (lambda ws: ws.send_bytes(bytes(64 * 1024 + 2)), "消息太大，已忽略。"),
        (lambda ws: ws.send_text(" " * (64 * 1024 + 1)), "消息太大，已忽略。"),
        (lambda ws: ws.send_json(START), "通话已经接通，不必再次拨打。"),
    ],
)
def test_a_message_not_understood_gets_a_chinese_error_and_the_call_goes_on(
    send: Any, message: str
) -> None:
    engine = StubEngine(greeting=b"")
    with TestClient(make_app(engine)) as client, client.websocket_connect(URL) as ws:
        started(ws)
        send(ws)
        assert ws.receive_json() == {"type": "error", "message": message}
        ws.send_bytes(bytes(640))
        ws.send_json({"type": "dtmf", "digit": "5"})
        ws.send_json({"type": "dtmf", "digit": "#"})
        _, texts, _ = until_closed(ws)
    engine.wait()
    assert engine.digits == ["5", "#"]
    assert bytes(engine.heard) == bytes(640)
    assert texts == [{"type": "hangup"}]


def test_messages_before_start_are_refused_and_a_wrong_rate_is_named(engine: StubEngine) -> None:
    with TestClient(make_app(engine)) as client, client.websocket_connect(URL) as ws:
        ws.send_bytes(bytes(320))
        assert ws.receive_json() == {"type": "error", "message": "通话还没有接通，这条消息已忽略。"}
        ws.send_json({"type": "start", "rate": 48000})
        assert (
            ws.receive_json()["message"] == "声音格式不对（只支持 8000 Hz），请刷新页面后重新拨打。"
        )
        ws.send_json({"type": "start", "rate": "8000"})
        assert ws.receive_json()["type"] == "error"
        started(ws)
        receive_audio(ws, len(GREETING))
        ws.send_json({"type": "dtmf", "digit": "#"})
        until_closed(ws)
    engine.wait()
    assert engine.digits == ["#"]
    assert engine.heard == b""  # the audio before start was not kept


def test_no_start_in_time_closes_the_socket_with_a_chinese_reason(engine: StubEngine) -> None:
    app = make_app(engine, start_timeout_s=0.2)
    with TestClient(app) as client, client.websocket_connect(URL) as ws:
        _, texts, code = until_closed(ws)
    assert texts == [{"type": "error", "message": "没有收到拨号请求，通话已结束，请重新拨打。"}]
    assert code == 1000
    assert engine.calls == []


# -- calls the service cannot take -------------------------------------------------------
def test_with_no_engine_running_the_caller_is_told_so() -> None:
    with TestClient(make_app(None)) as client, client.websocket_connect(URL) as ws:
        _, texts, code = until_closed(ws)
    assert texts == [{"type": "error", "message": "语音服务暂未运行，请稍后再拨。"}]
    assert code == 1013


def test_beyond_the_lines_the_next_caller_hears_busy_and_a_line_frees_after_a_call() -> None:
    engine = StubEngine(greeting=b"")
    with (
        TestClient(make_app(engine, max_calls=2)) as client,
        client.websocket_connect(URL) as first,
        client.websocket_connect(URL) as second,
    ):
        started(first)
        started(second)
        with client.websocket_connect(URL) as third:
            _, texts, code = until_closed(third)
        assert texts == [{"type": "error", "message": "线路繁忙，请稍后再拨。"}]
        assert code == 1013
        first.send_json({"type": "dtmf", "digit": "#"})
        until_closed(first)
        # the line is given back as the first call's handler finishes: dial until then
        for _ in range(50):
            with client.websocket_connect(URL) as fourth:
                fourth.send_json(START)
                if fourth.receive_json()["type"] == "started":
                    fourth.send_json({"type": "hangup"})
                    break
            threading.Event().wait(0.05)
        else:
            pytest.fail("no line came free after a call ended")
        second.send_json({"type": "hangup"})
        until_closed(second)
    assert engine.digits == ["#"]


# -- the engine's side -------------------------------------------------------------------
class BargeIn:
    """Plays a 2 s prompt and stops it (cancels the task) when the caller presses a key,
    then hangs up."""

    def __init__(self) -> None:
        self.cancelled = False
        self.done = threading.Event()

    async def __call__(self, call: CallIO) -> None:
        prompt = asyncio.create_task(call.send_audio(tone(500, 8000, ms=2000)))
        async for event in call.events():
            if isinstance(event, str):
                prompt.cancel()
                try:
                    await prompt
                except asyncio.CancelledError:
                    self.cancelled = True
                break
        await call.hangup()
        self.done.set()


def test_barge_in_flushes_the_page_and_no_more_of_that_prompt_is_sent() -> None:
    engine = BargeIn()
    prompt = tone(500, 8000, ms=2000)
    with TestClient(make_app(engine)) as client, client.websocket_connect(URL) as ws:
        started(ws)
        heard = bytearray(receive_audio(ws, 640))
        ws.send_json({"type": "dtmf", "digit": "0"})
        while (message := ws.receive()).get("bytes") is not None:
            heard += message["bytes"]  # frames already on their way when the key came
        assert json.loads(message["text"]) == {"type": "flush"}
        _, texts, _ = until_closed(ws)
    assert engine.done.wait(WAIT_S)
    assert engine.cancelled
    assert texts == [{"type": "hangup"}]  # and no audio after the flush
    assert len(heard) < len(prompt)
    assert prompt.startswith(heard)  # whole frames, in order


def test_audio_the_engine_does_not_read_is_kept_up_to_a_limit_and_keys_are_never_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(webcall, "MAX_BUFFERED_BYTES", 3200)
    may_read = threading.Event()
    engine = StubEngine(greeting=b"")

    async def late_reader(call: CallIO) -> None:
        await asyncio.to_thread(may_read.wait, WAIT_S)
        await engine(call)

    speech = tone(440, 8000, ms=300)  # 4,800 bytes: 1,600 over the limit
    with TestClient(make_app(late_reader)) as client, client.websocket_connect(URL) as ws:
        started(ws)
        for i in range(0, len(speech), 320):
            ws.send_bytes(speech[i : i + 320])
        ws.send_json({"type": "dtmf", "digit": "#"})
        ws.send_text("?")  # answered only after everything before it was read
        assert ws.receive_json()["type"] == "error"
        may_read.set()
        _, texts, _ = until_closed(ws)
    engine.wait()
    assert bytes(engine.heard) == speech[:3200]  # the oldest kept, the rest dropped
    assert engine.digits == ["#"]
    call = engine.calls[0]
    assert isinstance(call, WebCall) and call.dropped == 1600
    assert texts == [{"type": "hangup"}]


def test_a_failing_engine_is_logged_and_the_caller_is_hung_up_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing(call: CallIO) -> None:
        raise RuntimeError("the engine broke")

    with TestClient(make_app(failing)) as client, client.websocket_connect(URL) as ws:
        started(ws)
        _, texts, code = until_closed(ws)
    assert texts == [{"type": "hangup"}]
    assert code == 1000
    [record] = webcall_errors(caplog)
    assert record.getMessage().endswith("failed in its handler")
    assert record.exc_info is not None and str(record.exc_info[1]) == "the engine broke"


def test_an_engine_still_busy_after_the_caller_left_is_cancelled_after_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cancelled = threading.Event()

    async def stuck(call: CallIO) -> None:
        try:
            await asyncio.Event().wait()  # never reads events(), never returns
        except asyncio.CancelledError:
            cancelled.set()
            raise

    app = make_app(stuck, hangup_grace_s=0.1)
    with TestClient(app) as client, client.websocket_connect(URL) as ws:
        started(ws)
        ws.send_json({"type": "hangup"})
        assert cancelled.wait(WAIT_S)
        until_closed(ws)
    assert webcall_errors(caplog) == []
    assert any("cancelled" in r.getMessage() for r in caplog.records if r.name == webcall.__name__)


def test_the_page_is_served_at_call(client: TestClient) -> None:
    r = client.get("/call")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "网上拨打热线" in r.text
    assert 'id="dial"' in r.text and "拨打" in r.text
    assert "api/voice/webcall" in r.text
