"""The hall call display (叫号屏): the page, its live stream of calls and their announcements.

- ``GET /display``: the page for a landscape screen (``kiosk/pages/display.html``).
- ``GET /api/kiosk/calls/recent?after=``: calls as JSON, for the page's first load.
- ``GET /api/kiosk/calls/stream``: Server-Sent Events, one ``event: call`` per call with
  ``id:`` = the call's id, so ``Last-Event-ID`` (or ``?after=``) resumes after a reconnect.
- ``GET /api/kiosk/calls/{id}/audio.wav``: the spoken announcement of that call (only of a
  call: nothing here speaks a text it is sent).

Calls reach the stream two ways: pushed on the bus (topic ``calls``, published by the queue
engine after its commit) and read from the ``CallBoard`` (the database) once a second, which
brings calls that another API process made within about a second. The app provides
``app.state.bus`` (optional), ``app.state.call_board`` and, optionally,
``app.state.synthesizer`` (default: espeak-ng through pyttsx3, kiosk/tts.py).

A display PC runs Chromium in kiosk mode with sound allowed to start by itself:
``chromium --kiosk --autoplay-policy=no-user-gesture-required http://SERVER:8000/display``.
Without that flag the page shows "点击开启语音" until someone taps the screen once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from html import escape
from pathlib import Path
from threading import Lock
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from fastapi import APIRouter, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from banshi.deps import SettingsDep
from banshi.errors import NotFound, Unavailable
from banshi.pages import html_page
from banshi.settings import Settings
from kiosk.announce import display_text, spoken_text

if TYPE_CHECKING:
    from kiosk.tts import SpeechCache

log = logging.getLogger(__name__)

TOPIC = "calls"
PAGE_SIZE = 30
MAX_CALL_ID = 2**63 - 1  # past a 64-bit integer the database would fail (a 500, not a 4xx)
POLL_S = 1.0  # the board is read this often: calls made in another process arrive in ~1 s
HEARTBEAT_S = 15.0  # a comment line keeps proxies and the browser from timing out
# uvicorn waits for open responses when it shuts down, and no ASGI message tells a stream
# that it does: each stream ends after this long (the page reconnects at once and resumes
# from its last id), so a restart waits for the displays this long at most.
STREAM_MAX_S = 30.0
RETRY_MS = 1000  # EventSource's reconnect delay
GAP_WAIT_S = 5.0  # how long a skipped id may still arrive (see _Cursor)
PAGES = Path(__file__).resolve().parent / "pages"

router = APIRouter()


class CallBoard(Protocol):
    """Calls as the queue engine stored them, each the dict it publishes on the bus:
    ``{"type": "call", "id": 12, "number": "A012", "window": "A03", "window_name":
    "A03号窗口", "service": "户籍与身份证", "recall": False, "at": "2026-03-02T09:15:04+08:00"}``.
    Blocking (database); the display calls it in a thread."""

    def recent_calls(self, after_id: int = 0, limit: int = 30) -> list[dict[str, Any]]:
        """Calls with an id above ``after_id``, oldest first, at most ``limit``; from 0, the
        last ``limit`` calls of today."""
        ...

    def call(self, call_id: int) -> dict[str, Any] | None:
        """One call by its id, or None."""
        ...


class MemoryCallBoard:
    """A ``CallBoard`` in memory: the fake for tests, and a display demo without a queue."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}
        self._lock = Lock()

    def add(self, number: str, window: str, **fields: Any) -> dict[str, Any]:
        """Store a call (the next id unless ``id=`` is given) and return it."""
        with self._lock:
            call_id = int(fields.pop("id", max(self._calls, default=0) + 1))
            call = {
                "type": "call",
                "id": call_id,
                "number": number,
                "window": window,
                "window_name": f"{window}号窗口",
                "service": "",
                "recall": False,
                "at": datetime.now().astimezone().isoformat(timespec="seconds"),
                **fields,
            }
            self._calls[call_id] = call
            return dict(call)

    def recent_calls(self, after_id: int = 0, limit: int = 30) -> list[dict[str, Any]]:
        with self._lock:
            ids = sorted(self._calls)
            ids = [i for i in ids if i > after_id][:limit] if after_id else ids[-limit:]
            return [dict(self._calls[i]) for i in ids]

    def call(self, call_id: int) -> dict[str, Any] | None:
        with self._lock:
            found = self._calls.get(call_id)
            return dict(found) if found else None


# -- routes ----------------------------------------------------------------------------
@router.get("/display", include_in_schema=False)
def display_page(settings: SettingsDep) -> HTMLResponse:
    page = (PAGES / "display.html").read_text(encoding="utf-8")
    return html_page(page.replace("{{centre_name}}", escape(centre_name(settings))))


@router.get("/api/kiosk/calls/recent", tags=["kiosk"])
async def recent_calls(
    request: Request,
    after: Annotated[int, Query(ge=0, le=MAX_CALL_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = PAGE_SIZE,
) -> JSONResponse:
    """Calls after ``after`` (oldest first); from 0, today's last ``limit``."""
    calls = await asyncio.to_thread(_board(request).recent_calls, after, limit)
    shown = [view for view in map(_view, calls) if view]
    return JSONResponse(shown, headers={"Cache-Control": "no-store"})


@router.get("/api/kiosk/calls/stream", tags=["kiosk"])
async def call_stream(
    request: Request,
    after: Annotated[int, Query(ge=0, le=MAX_CALL_ID)] = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-Sent Events: ``event: call`` with ``id:`` and the call as JSON ``data:``,
    starting after ``?after=`` or the ``Last-Event-ID`` header, whichever is later."""
    resume = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    return StreamingResponse(
        _events(request, _board(request), max(after, resume)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/api/kiosk/calls/{call_id}/audio.wav",
    tags=["kiosk"],
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}}},
)
async def call_audio(
    call_id: Annotated[int, PathParam(ge=1, le=MAX_CALL_ID)],
    request: Request,
    settings: SettingsDep,
) -> Response:
    """The announcement of one call, twice, as a WAV (rendered once, then cached)."""
    call = await asyncio.to_thread(_board(request).call, call_id)
    if call is None:
        raise NotFound("没有找到这次叫号。", f"no call {call_id}")
    audio = await asyncio.to_thread(_speech(request, settings).wav, spoken_text(call))
    # a call's announcement never changes: the browser may keep it
    return Response(audio, media_type="audio/wav", headers={"Cache-Control": "max-age=86400"})


# -- the stream ------------------------------------------------------------------------
class _Cursor:
    """Which calls a stream has sent. Ids grow, but two API processes can commit out of
    order (15 is committed and pushed, 14 a moment later): an id skipped over stays awaited
    for ``GAP_WAIT_S`` and the board is read from below it. (A skipped id that never comes
    is a rolled-back call.)"""

    def __init__(self, after: int) -> None:
        self.last = after
        self.awaited: dict[int, float] = {}  # skipped id -> until when it may still come

    def take(self, call_id: int, now: float) -> bool:
        """True the first time a call is seen: send it."""
        if call_id > self.last:
            # from 0 the board gives today's last calls: the ids below them are not awaited
            start = max(self.last + 1, call_id - PAGE_SIZE) if self.last else call_id
            for skipped in range(start, call_id):
                self.awaited[skipped] = now + GAP_WAIT_S
            self.last = call_id
            return True
        return self.awaited.pop(call_id, None) is not None

    def read_from(self, now: float) -> int:
        """The ``after_id`` for the next board read."""
        self.awaited = {i: until for i, until in self.awaited.items() if until > now}
        return min(self.awaited, default=self.last + 1) - 1


async def _events(request: Request, board: CallBoard, after: int) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    cursor = _Cursor(after)
    started = wrote = loop.time()
    next_read = 0.0  # read the board at once: catch up with what was missed
    async with _subscription(getattr(request.app.state, "bus", None)) as pushed:
        # subscribed before the first read: a call is either read or pushed, never lost
        yield f"retry: {RETRY_MS}\n\n"
        while True:
            now = loop.time()
            if now >= next_read:
                for call in await _read_board(board, cursor, now):
                    yield _sse(call)
                    wrote = now
                next_read = loop.time() + POLL_S
            if now - wrote >= HEARTBEAT_S:
                yield ": keep-alive\n\n"
                wrote = now
            if now - started >= STREAM_MAX_S or await request.is_disconnected():
                return
            try:
                event = await asyncio.wait_for(pushed.get(), max(0.05, next_read - loop.time()))
            except TimeoutError:
                continue
            view = _view(event)
            if view is None:
                continue
            if view["id"] > cursor.last + 1:  # a gap: the calls below may be in the board
                for call in await _read_board(board, cursor, loop.time()):
                    yield _sse(call)
            if cursor.take(view["id"], loop.time()):
                yield _sse(view)
            wrote = loop.time()


async def _read_board(board: CallBoard, cursor: _Cursor, now: float) -> list[dict[str, Any]]:
    """Calls in the board that this stream has not sent yet (a few pages at most)."""
    found: list[dict[str, Any]] = []
    after = cursor.read_from(now)
    for _ in range(10):  # a display back after a long outage needs today's last calls only
        try:
            page = await asyncio.to_thread(board.recent_calls, after, PAGE_SIZE)
        except Exception:  # the database is away: the bus still brings this process's calls
            log.warning("call board read failed", exc_info=True)
            break
        views = [v for v in map(_view, page) if v]
        found += [v for v in views if cursor.take(v["id"], now)]
        if len(page) < PAGE_SIZE or not views:
            break
        after = max(v["id"] for v in views)
    return found


@asynccontextmanager
async def _subscription(bus: Any) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    if bus is None:  # no bus in this app: the board alone, read every second
        yield asyncio.Queue()
        return
    async with bus.subscribe(TOPIC) as queue:
        yield queue


def _sse(call: dict[str, Any]) -> str:
    return f"id: {call['id']}\nevent: call\ndata: {json.dumps(call, ensure_ascii=False)}\n\n"


def _view(call: Any) -> dict[str, Any] | None:
    """The call as the page gets it (the published dict plus ``text``), or None when it is
    not a well-formed call."""
    try:
        if call.get("type", "call") != "call":
            return None
        return {**call, "id": int(call["id"]), "text": display_text(call)}
    except (AttributeError, KeyError, TypeError, ValueError):
        log.warning("not a call: %r", call)
        return None


# -- app state -------------------------------------------------------------------------
def _board(request: Request) -> CallBoard:
    board: CallBoard | None = getattr(request.app.state, "call_board", None)
    if board is None:
        raise Unavailable("叫号信息暂不可用，请稍后再试。", "app.state.call_board is not set")
    return board


def _speech(request: Request, settings: Settings) -> SpeechCache:
    """The app's SpeechCache, made on first use (nothing of TTS loads at import)."""
    state = request.app.state
    cache: SpeechCache | None = getattr(state, "kiosk_speech", None)
    if cache is None:
        from kiosk.tts import EspeakSynthesizer, SpeechCache

        synthesizer = getattr(state, "synthesizer", None) or EspeakSynthesizer()
        cache = state.kiosk_speech = SpeechCache(settings.data_dir / "kiosk" / "tts", synthesizer)
    return cache


def centre_name(settings: Settings) -> str:
    """The centre's name from centre.yml (also printed on the sample ticket)."""
    import yaml

    try:
        centre = yaml.safe_load((settings.kb_source_dir / "centre.yml").read_text("utf-8"))
        return str(centre["name"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return "政务服务中心"
