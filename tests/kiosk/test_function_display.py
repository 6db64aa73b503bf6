"""The hall display: its SSE stream (bus pushes, catch-up from the board, resuming), the
announcement audio endpoint and the page, on a small app with an in-memory call board."""

from __future__ import annotations

import io
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from display_support import display_app, serving, stream
from fastapi import FastAPI
from support import TestClient

from kiosk import display
from kiosk.announce import spoken_text
from kiosk.display import MemoryCallBoard, _Cursor
from kiosk.tts import EspeakSynthesizer, ToneSynthesizer


@pytest.fixture
def board() -> MemoryCallBoard:
    return MemoryCallBoard()


@pytest.fixture
def app(tmp_path: Path, board: MemoryCallBoard) -> FastAPI:
    return display_app(tmp_path / "data", board)


@pytest.fixture
def base(app: FastAPI) -> Iterator[str]:
    with serving(app) as url:
        yield url


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


# -- the stream --------------------------------------------------------------------------
def test_a_published_call_arrives_as_an_event_with_its_id(base: str, app: FastAPI) -> None:
    call = {
        "type": "call",
        "id": 41,
        "number": "A012",
        "window": "A03",
        "window_name": "A03号窗口",
        "service": "户籍与身份证",
        "recall": False,
        "at": "2026-03-02T09:15:04+08:00",
    }
    with stream(base, "?after=40") as events:
        events.until_retry()
        sent = time.monotonic()
        app.state.bus.publish("calls", call)  # not in the board: only the bus can bring it
        event = events.next()
    assert time.monotonic() - sent < 1.0
    assert event["id"] == "41"
    assert event["event"] == "call"
    assert event["data"] == {**call, "text": "请A012号到A03号窗口办理"}


def test_a_call_made_in_another_process_arrives_through_the_board(
    base: str, board: MemoryCallBoard
) -> None:
    """GIVEN a display streaming WHEN a call is stored but never published on this
    process's bus THEN it arrives within about a second (the board is read every second)."""
    with stream(base) as events:
        events.until_retry()
        made = time.monotonic()
        board.add("B007", "B02", service="社会保障卡")
        event = events.next()
    assert time.monotonic() - made < 2.0
    assert event["id"] == "1"
    assert event["data"]["text"] == "请B007号到B02号窗口办理"


def test_after_and_last_event_id_resume(base: str, board: MemoryCallBoard) -> None:
    for number in ("A001", "A002", "A003"):
        board.add(number, "A01")
    with stream(base, "?after=1") as events:
        assert [events.next()["data"]["number"] for _ in range(2)] == ["A002", "A003"]
    with stream(base, headers={"Last-Event-ID": "2"}) as events:
        assert events.next()["id"] == "3"
    # the later of the two wins: a browser reconnecting sends both
    with stream(base, "?after=1", headers={"Last-Event-ID": "2"}) as events:
        assert events.next()["id"] == "3"


def test_a_call_committed_out_of_order_is_not_skipped(
    base: str, app: FastAPI, board: MemoryCallBoard
) -> None:
    """Two processes: call 3 is committed and pushed before call 2 is committed."""
    board.add("A001", "A01")
    with stream(base, "?after=1") as events:
        events.until_retry()
        app.state.bus.publish("calls", board.add("A003", "A03", id=3))
        assert events.next()["id"] == "3"
        board.add("A002", "A02", id=2)
        assert events.next()["id"] == "2"


def test_a_malformed_push_is_ignored(base: str, app: FastAPI, board: MemoryCallBoard) -> None:
    with stream(base) as events:
        events.until_retry()
        app.state.bus.publish("calls", {"type": "call", "id": "x"})
        app.state.bus.publish("calls", {"type": "window_paused", "window": "A03"})
        app.state.bus.publish("calls", board.add("A005", "A05"))
        assert events.next()["data"]["number"] == "A005"


def test_heartbeat_and_the_end_of_a_stream(
    base: str, monkeypatch: pytest.MonkeyPatch, app: FastAPI
) -> None:
    monkeypatch.setattr(display, "HEARTBEAT_S", 0.2)
    monkeypatch.setattr(display, "STREAM_MAX_S", 0.8)
    started = time.monotonic()
    with stream(base) as events, pytest.raises(EOFError):
        events.next()  # no call: only comments until the server ends the stream
    assert time.monotonic() - started < 3
    assert ": keep-alive" in events.comments
    _wait_until(lambda: not app.state.bus._subscribers)


def test_a_closed_stream_unsubscribes(base: str, app: FastAPI) -> None:
    with stream(base) as events:
        events.until_retry()
        assert app.state.bus._subscribers
    _wait_until(lambda: not app.state.bus._subscribers)


def test_the_cursor_waits_a_while_for_skipped_ids() -> None:
    cursor = _Cursor(after=10)
    assert cursor.take(11, now=0.0)
    assert cursor.read_from(0.0) == 11
    assert cursor.take(14, now=1.0)  # 12 and 13 skipped
    assert cursor.read_from(1.0) == 11
    assert not cursor.take(14, now=1.5)  # sent already
    assert cursor.take(12, now=2.0)
    assert not cursor.take(12, now=2.1)
    assert cursor.read_from(2.0) == 12  # 13 still awaited
    assert cursor.read_from(1.0 + display.GAP_WAIT_S + 0.1) == 14  # 13 never came
    assert not cursor.take(13, now=9.0)


def test_a_cursor_from_zero_awaits_nothing_below_the_first_call() -> None:
    cursor = _Cursor(after=0)
    assert cursor.take(71, now=0.0)  # the oldest of today's last calls
    assert cursor.read_from(0.0) == 71


# -- JSON, audio and the page ------------------------------------------------------------
def test_recent_calls(client: TestClient, board: MemoryCallBoard) -> None:
    for number in ("A001", "A002", "A003"):
        board.add(number, "A01")
    r = client.get("/api/kiosk/calls/recent")
    assert r.status_code == 200
    assert [c["number"] for c in r.json()] == ["A001", "A002", "A003"]
    assert r.json()[0]["text"] == "请A001号到A01号窗口办理"
    assert [c["id"] for c in client.get("/api/kiosk/calls/recent?after=2").json()] == [3]


def test_audio_of_a_call_is_rendered_once(client: TestClient, app: FastAPI) -> None:
    call = app.state.call_board.add("A012", "A03", recall=True)
    for _ in range(2):
        r = client.get(f"/api/kiosk/calls/{call['id']}/audio.wav")
        assert r.status_code == 200
        assert r.headers["content-type"] == "audio/wav"
        with wave.open(io.BytesIO(r.content)) as w:
            assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
    fake: ToneSynthesizer = app.state.synthesizer
    assert fake.texts == [spoken_text(call)]
    assert fake.texts[0].startswith("重复呼叫，请A零一二号，到A三号窗口办理。")


def test_audio_of_an_unknown_call_is_404(client: TestClient) -> None:
    r = client.get("/api/kiosk/calls/999/audio.wav")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert r.json()["error"]["message"] == "没有找到这次叫号。"


def test_audio_without_espeak_is_503(tmp_path: Path) -> None:
    app = display_app(tmp_path / "data", synthesizer=EspeakSynthesizer(program="no-espeak-here"))
    call = app.state.call_board.add("A012", "A03")
    with TestClient(app) as client:
        r = client.get(f"/api/kiosk/calls/{call['id']}/audio.wav")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "speech_unavailable"
    assert r.json()["error"]["message"] == "语音播报暂不可用，请留意屏幕。"
    assert "scripts/voice-setup" in r.json()["error"]["detail"]


def test_without_a_call_board_the_api_says_so(tmp_path: Path) -> None:
    app = display_app(tmp_path / "data")
    del app.state.call_board
    with TestClient(app) as client:
        r = client.get("/api/kiosk/calls/recent")
    assert r.status_code == 503
    assert r.json()["error"]["message"] == "叫号信息暂不可用，请稍后再试。"


def test_the_display_page(client: TestClient) -> None:
    r = client.get("/display")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "<title>叫号信息 · 青禾区政务服务中心</title>" in page
    assert "点击开启语音" in page
    assert "/api/kiosk/calls/stream" in page and "audio.wav" in page
    assert "http://" not in page.replace("http://SERVER", "")  # nothing from the network
    assert "https://" not in page


def _wait_until(condition, timeout_s: float = 3.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
