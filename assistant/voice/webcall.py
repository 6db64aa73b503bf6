"""A call to the voice hotline from a web page: the browser's microphone and speaker over a
WebSocket, the second transport of the call engine beside Asterisk's AudioSocket.

The page is ``GET /call`` (``assistant/pages/call.html``); the line is the WebSocket
``/api/voice/webcall``. All audio on it is signed 16-bit little-endian mono PCM at 8 kHz,
the telephone's own format, so the engine hears a web caller exactly as it hears a phone
(the page downsamples its microphone to 8 kHz itself; this server does no resampling).

From the browser:

- first a text message ``{"type": "start", "rate": 8000}`` (``rate``: the sample rate of the
  audio the page will send; only 8000 is taken);
- binary messages: the caller's audio, any length of whole samples (the page sends 20 ms,
  320 bytes); a page without a microphone sends silence or nothing;
- ``{"type": "dtmf", "digit": "1"}``: a key press, one of ``0123456789*#``;
- ``{"type": "hangup"}``: the caller hangs up (closing the socket means the same).

To the browser:

- ``{"type": "started", "call_ref": "<16 hex digits>"}``: the call is connected;
- binary messages: audio to play, 20 ms (320 bytes) each, sent in real time, so that the
  page plays each as it comes and a prompt interrupted by the caller (barge-in) simply
  stops;
- ``{"type": "flush"}``: drop whatever audio is still queued for playback (sent when the
  engine interrupts a prompt);
- ``{"type": "hangup"}``: the service ended the call; the socket closes after it;
- ``{"type": "error", "message": "<Chinese for the resident>"}``: a message that was not
  understood (the call goes on), or, followed by the socket's closing, the reason the call
  could not be taken: the voice service is not running, all lines are busy
  (``线路繁忙，请稍后再拨。``), or no ``start`` came.

Messages over 64 KB are refused with an error (the call goes on). One socket is one call:
the engine's handler runs until either side hangs up or the socket drops.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, WebSocket
from fastapi.responses import HTMLResponse
from starlette.types import Message
from starlette.websockets import WebSocketDisconnect

from assistant.pages import PAGES
from assistant.voice.pcm import frames as pcm_frames
from assistant.voice.transport import CallHandler
from banshi.pages import html_page

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2  # bytes: signed 16-bit little-endian
FRAME_MS = 20
DIGITS = "0123456789*#"
MAX_MESSAGE = 64 * 1024  # bytes of one WebSocket message; 20 ms of audio is 320
MAX_CALLS = 20
START_TIMEOUT_S = 10.0  # the page sends "start" as soon as the socket is open
# After the caller hangs up the engine may still be finishing (saving a message left for
# staff); a handler still running this long after is cancelled.
HANGUP_GRACE_S = 60.0
# The caller's audio waiting for an engine that does not read it (AudioSocket has TCP's
# back-pressure for this; here the socket is read on regardless, to hear a hang-up at once).
MAX_BUFFERED_BYTES = 60 * SAMPLE_RATE * SAMPLE_WIDTH  # 60 s
CLOSE_NORMAL = 1000
CLOSE_TRY_AGAIN = 1013

NOT_RUNNING = "语音服务暂未运行，请稍后再拨。"
BUSY = "线路繁忙，请稍后再拨。"
NO_START = "没有收到拨号请求，通话已结束，请重新拨打。"
BAD_MESSAGE = "收到一条看不懂的消息，已忽略。"
TOO_LARGE = "消息太大，已忽略。"
BAD_AUDIO = "收到的声音数据不完整，已忽略。"
BAD_RATE = "声音格式不对（只支持 8000 Hz），请刷新页面后重新拨打。"
BAD_DIGIT = "按键无效，请按 0 到 9、* 或 #。"
NOT_STARTED = "通话还没有接通，这条消息已忽略。"
ALREADY_STARTED = "通话已经接通，不必再次拨打。"

_pause = asyncio.sleep  # the real-time pacing between frames (tests may replace it)


@dataclass(frozen=True)
class _Incoming:
    """One message from the browser, read: ``kind`` is "audio", "dtmf", "start", "hangup",
    "gone" (the socket closed) or "bad" (``problem`` says why, in Chinese)."""

    kind: str
    audio: bytes = b""
    digit: str = ""
    problem: str = ""


def _bad(problem: str) -> _Incoming:
    return _Incoming("bad", problem=problem)


def _read(message: Message) -> _Incoming:
    if message["type"] == "websocket.disconnect":
        return _Incoming("gone")
    data, text = message.get("bytes"), message.get("text")
    if data is not None:
        if len(data) > MAX_MESSAGE:
            return _bad(TOO_LARGE)
        if len(data) % SAMPLE_WIDTH:
            return _bad(BAD_AUDIO)
        return _Incoming("audio", audio=bytes(data))
    if not isinstance(text, str):
        return _bad(BAD_MESSAGE)
    if len(text) > MAX_MESSAGE or len(text.encode()) > MAX_MESSAGE:
        return _bad(TOO_LARGE)
    try:
        body = json.loads(text)
    except ValueError:
        return _bad(BAD_MESSAGE)
    kind = body.get("type") if isinstance(body, dict) else None
    if kind == "dtmf":
        digit = body.get("digit")
        if isinstance(digit, str) and len(digit) == 1 and digit in DIGITS:
            return _Incoming("dtmf", digit=digit)
        return _bad(BAD_DIGIT)
    if kind == "start":
        rate = body.get("rate")
        if isinstance(rate, int) and not isinstance(rate, bool) and rate == SAMPLE_RATE:
            return _Incoming("start")
        return _bad(BAD_RATE)
    if kind == "hangup":
        return _Incoming("hangup")
    return _bad(BAD_MESSAGE)


class WebCall:
    """One call from a browser, a :class:`~assistant.voice.transport.CallIO`: what the
    caller sends (:meth:`events`), fed by :meth:`listen`, and the audio played back
    (:meth:`send_audio`). ``end_reason`` says how the call ended: "hangup" (the page hung
    up), "eof" (the socket closed), "local" (this side hung up)."""

    def __init__(self, ws: WebSocket, call_ref: str | None = None, *, pace: bool = True) -> None:
        self.channel = "web"
        self.caller_id = ""  # a browser has no number
        self.call_ref = call_ref or secrets.token_hex(8)
        self.pace = pace
        self.end_reason: str | None = None
        self._ws = ws
        self._lock = asyncio.Lock()  # one message at a time on the socket
        self._out_closed = False
        self._inbox: asyncio.Queue[bytes | str | None] = asyncio.Queue()  # None: the end
        self._end_queued = False
        self._events_over = False
        self._buffered = 0  # bytes of audio in the inbox
        self.dropped = 0  # bytes of audio not buffered because the engine did not read

    @property
    def ended(self) -> bool:
        return self.end_reason is not None or self._out_closed

    # -- the caller's side ---------------------------------------------------------------
    async def events(self) -> AsyncIterator[bytes | str]:
        """Audio (bytes of 8 kHz PCM) and key presses (one-character str), in the order
        they came, until the caller hangs up, the socket closes or :meth:`hangup`."""
        while not (self._events_over and self._inbox.empty()):
            item = await self._inbox.get()
            if item is None:
                self._events_over = True
                continue
            if isinstance(item, bytes):
                self._buffered -= len(item)
            yield item

    async def wait_for_start(self, timeout: float = START_TIMEOUT_S) -> bool:
        """Read until the page's ``start`` and answer ``started``; False (and the socket
        closed) when the page hangs up, goes away or sends no start in ``timeout`` s."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    incoming = _read(await self._ws.receive())
                    if incoming.kind == "start":
                        break
                    if incoming.kind in ("gone", "hangup"):
                        self._caller_left(incoming.kind)
                        await self._close(CLOSE_NORMAL)
                        return False
                    await self._error(incoming.problem or NOT_STARTED)
        except TimeoutError:
            await self.refuse(NO_START, CLOSE_NORMAL)
            return False
        log.info("web call %s started", self.call_ref)
        return await self._send_json({"type": "started", "call_ref": self.call_ref})

    async def listen(self) -> None:
        """Read the caller's messages into :meth:`events` until they hang up or the socket
        closes; a message not understood is answered with an error and skipped."""
        try:
            while self.end_reason is None:
                incoming = _read(await self._ws.receive())
                if incoming.kind == "audio":
                    self._deliver(incoming.audio)
                elif incoming.kind == "dtmf":
                    self._deliver(incoming.digit)
                elif incoming.kind in ("gone", "hangup"):
                    self._caller_left(incoming.kind)
                else:
                    await self._error(incoming.problem or ALREADY_STARTED)
        finally:
            self._end_events()

    def _deliver(self, item: bytes | str) -> None:
        """Queue a key press, or audio unless too much is waiting already; nothing after
        the end of :meth:`events` (this side hung up)."""
        if not item or self._end_queued:
            return
        if isinstance(item, str):
            self._inbox.put_nowait(item)
            return
        if self._buffered + len(item) > MAX_BUFFERED_BYTES:
            if not self.dropped:
                log.info(
                    "web call %s: the engine is not reading; caller audio dropped", self.call_ref
                )
            self.dropped += len(item)
            return
        self._buffered += len(item)
        self._inbox.put_nowait(item)

    def _caller_left(self, kind: str) -> None:
        if self.end_reason is None:
            self.end_reason = "hangup" if kind == "hangup" else "eof"
        if kind == "gone":
            self._out_closed = True  # nothing can be sent on a closed socket
        self._end_events()

    def _end_events(self) -> None:
        if not self._end_queued:
            self._end_queued = True
            self._inbox.put_nowait(None)

    # -- this side -----------------------------------------------------------------------
    async def send_audio(self, pcm: bytes) -> int:
        """Play ``pcm`` (8 kHz 16-bit mono) to the caller in 20 ms frames, in real time
        unless the call was made with ``pace=False``; returns the bytes sent, fewer than
        given when the call ended meanwhile. Cancelled (barge-in), it stops at a frame
        boundary and tells the page to drop what it still has queued."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        sent = 0
        try:
            for chunk in pcm_frames(pcm, SAMPLE_RATE, FRAME_MS):  # the last one padded
                if self.ended or not await self._send({"type": "websocket.send", "bytes": chunk}):
                    break
                sent += len(chunk)
                if self.pace:
                    due += len(chunk) / (SAMPLE_RATE * SAMPLE_WIDTH)
                    await _pause(max(0.0, due - loop.time()))
        except asyncio.CancelledError:
            await self._send_json({"type": "flush"})
            raise
        return sent

    async def hangup(self) -> None:
        """End the call: the page is told, then the socket closes. Harmless when the call
        has already ended."""
        if self.end_reason is None:
            self.end_reason = "local"
        self._end_events()
        if not self._out_closed:
            await self._send_json({"type": "hangup"})
            await self._close(CLOSE_NORMAL)

    async def refuse(self, message: str, code: int = CLOSE_TRY_AGAIN) -> None:
        """Say why the call cannot go on, and close the socket."""
        if self.end_reason is None:
            self.end_reason = "local"
        self._end_events()
        await self._error(message)
        await self._close(code)

    async def _error(self, message: str) -> None:
        await self._send_json({"type": "error", "message": message})

    async def _send_json(self, data: dict[str, Any]) -> bool:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        return await self._send({"type": "websocket.send", "text": text})

    async def _send(self, message: Message) -> bool:
        """Send one ASGI message; False (and nothing sent from then on) once the socket is
        gone. Starlette raises RuntimeError for a socket already closed."""
        if self._out_closed:
            return False
        try:
            async with self._lock:
                await self._ws.send(message)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self._out_closed = True
            return False
        return True

    async def _close(self, code: int) -> None:
        if not self._out_closed:
            await self._send({"type": "websocket.close", "code": code, "reason": ""})
            self._out_closed = True

    def __repr__(self) -> str:
        return f"WebCall({self.call_ref})"


async def run_call(call: WebCall, handler: CallHandler, grace_s: float = HANGUP_GRACE_S) -> None:
    """Run ``handler`` on ``call`` while :meth:`WebCall.listen` reads the socket. When the
    handler returns, the call is hung up; when the caller leaves first, the handler's
    :meth:`~WebCall.events` end and it has ``grace_s`` seconds to finish (a message left
    for staff is still saved) before it is cancelled. Both tasks are cancelled and awaited
    before this returns, also when it is cancelled itself."""
    listener = asyncio.create_task(call.listen(), name=f"web call {call.call_ref}: caller")
    talk = asyncio.create_task(_talk(handler, call), name=f"web call {call.call_ref}: handler")
    listener.add_done_callback(functools.partial(_log_failure, call, "reading the socket"))
    talk.add_done_callback(functools.partial(_log_failure, call, "its handler"))
    try:
        await asyncio.wait({listener, talk}, return_when=asyncio.FIRST_COMPLETED)
        if not talk.done():
            await asyncio.wait({talk}, timeout=grace_s)
            if not talk.done():
                log.warning(
                    "web call %s: handler still busy %g s after the caller left; cancelled",
                    call.call_ref,
                    grace_s,
                )
    finally:
        # both cancelled before anything is awaited, so that neither outlives the call
        # even when this task is cancelled again while it waits
        talk.cancel()
        listener.cancel()
        try:
            await asyncio.wait({listener, talk})
        finally:
            await call.hangup()
    log.info("web call %s ended: %s", call.call_ref, call.end_reason)


async def _talk(handler: CallHandler, call: WebCall) -> None:
    await handler(call)  # a CallHandler returns any awaitable; a task wants a coroutine


def _log_failure(call: WebCall, where: str, task: asyncio.Task[Any]) -> None:
    """A task's exception logged (and so retrieved); a cancelled task is no failure."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("web call %s failed in %s", call.call_ref, where, exc_info=exc)


def webcall_router(
    handler_provider: Callable[[], CallHandler | None],
    *,
    max_calls: int = MAX_CALLS,
    pace: bool = True,
    start_timeout_s: float = START_TIMEOUT_S,
    hangup_grace_s: float = HANGUP_GRACE_S,
) -> APIRouter:
    """The page ``GET /call`` and its line ``/api/voice/webcall``. ``handler_provider`` is
    asked for the call engine at each call; None means the voice service is not running,
    and the caller is told so. At most ``max_calls`` web calls at once; the next caller
    hears that the lines are busy."""
    router = APIRouter(tags=["voice"])
    calls: set[WebCall] = set()

    @router.get("/call", response_class=HTMLResponse, include_in_schema=False)
    def call_page() -> HTMLResponse:
        page = (PAGES / "call.html").read_text(encoding="utf-8")
        return html_page(page, microphone=True, blob_scripts=True)  # its audio worklet

    @router.websocket("/api/voice/webcall")
    async def webcall_socket(ws: WebSocket) -> None:
        await ws.accept()
        call = WebCall(ws, pace=pace)
        handler = handler_provider()
        if handler is None:
            await call.refuse(NOT_RUNNING)
            return
        if len(calls) >= max_calls:
            log.info("web call refused: all %d lines busy", max_calls)
            await call.refuse(BUSY)
            return
        calls.add(call)
        try:
            if await call.wait_for_start(start_timeout_s):
                await run_call(call, handler, hangup_grace_s)
        finally:
            calls.discard(call)

    return router
