"""The call engine: one caller's way through ivr.yml, on any transport.

A :class:`CallSession` is fed by a transport (:class:`assistant.voice.transport.CallIO`:
8 kHz audio and DTMF digits in, paced audio out) and asks a :class:`CallBackend` for the
rest of banshi (the knowledge base's answer, a ticket, a ticket's status, the call record).
It never blocks the event loop: synthesis, recognition and the database run in threads.

How a call behaves:
- Keys come signalled (AudioSocket DTMF frames, the web page's keypad) or as tones in the
  audio, found by Goertzel (:mod:`assistant.voice.dtmf`). Once a signalled key has come, the
  audio's tones are ignored, so a PBX that does both never counts a press twice.
- Barge-in: a key stops the prompt at once and counts as the choice. Keys pressed ahead
  (a caller who knows the menu) are kept in order.
- A menu re-prompts after a timeout or a wrong key; the ``max_attempts``-th in a row goes to
  ``give_up``. A valid key starts the count again.
- A recording ends with the end key, at its limit, or when the caller hangs up; what was
  said before a hang-up is kept (saved, and a voicemail still becomes a ticket).
- Every step, key, timeout and action is logged through the backend as it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from assistant.voice.dtmf import DtmfDetector
from assistant.voice.menu import (
    REPEAT,
    AnyNode,
    AskNode,
    CollectDigitsNode,
    HangupNode,
    IvrConfig,
    MenuNode,
    RecordNode,
    Route,
    TransferNode,
    VoicemailNode,
)
from assistant.voice.numerals import digits_from_speech
from assistant.voice.transport import CallIO

log = logging.getLogger(__name__)

RATE = 8000
BYTES_PER_S = RATE * 2
DIGIT_AFTER_FULL_S = 0.8  # after the last digit of a full number: time for a trailing "#"
DIGIT_WORDS = ("零", "洞", "一", "幺", "二", "两", "三", "四", "五", "六", "七", "八", "九")
DRAIN_S = 10.0  # at most this long to recognise speech still queued when a question ends
MAX_STEPS = 200  # a guard against a menu loop nobody can leave (the caller keeps pressing 0)


class CallerHungUp(Exception):
    """The caller's side ended the call; the session finishes its bookkeeping."""


@dataclass
class Recording:
    """A message the caller recorded: 8 kHz PCM, and where the backend stored it."""

    node: str
    pcm: bytes
    complete: bool  # False: the caller hung up while speaking
    path: str = ""
    id: int | None = None

    @property
    def seconds(self) -> float:
        return len(self.pcm) / BYTES_PER_S


class SpeechAudio(Protocol):
    """What the engine asks of :class:`assistant.voice.prompts.CallAudio` (blocking)."""

    def prompts(self, prompt_ids: Sequence[str], **values: object) -> bytes: ...
    def say(self, text: str) -> bytes: ...
    def beep(self) -> bytes: ...


class Utterance(Protocol):
    def feed(self, pcm: bytes) -> Any: ...  # an AsrEvent (kind "partial"/"final", text) or None
    def finish(self) -> str: ...


class Recognizer(Protocol):
    def utterance(self, call_rate: int = RATE, grammar: Sequence[str] | None = None) -> Any: ...


class CallBackend(Protocol):
    """The rest of banshi, as a call needs it (:class:`assistant.voice.service.VoiceService`)."""

    config: IvrConfig
    audio: SpeechAudio
    recognizer: Recognizer | None

    def open_now(self) -> bool: ...
    def values(self) -> dict[str, object]: ...  # placeholders that change (next_open …)
    async def call_started(self, call: CallSession) -> None: ...
    async def call_event(
        self, call: CallSession, kind: str, node: str, detail: dict[str, Any]
    ) -> None: ...
    async def call_ended(self, call: CallSession) -> None: ...
    async def save_recording(self, call: CallSession, recording: Recording) -> None: ...
    async def create_ticket(self, call: CallSession, recording: Recording) -> str: ...
    async def answer(self, call: CallSession, question: str) -> str: ...
    async def ticket_status(self, call: CallSession, number: str) -> str: ...
    async def transfer(self, call: CallSession, queue: str) -> bool: ...


@dataclass
class CallState:
    """What a call has gathered so far: the values its prompts read back."""

    number: str = ""  # the 受理号 made or keyed in
    status: str = ""
    question: str = ""
    answer: str = ""
    recording: Recording | None = None
    ticket_for: Recording | None = None  # the recording a ticket was made from
    path: list[str] = field(default_factory=list)


class CallSession:
    def __init__(self, io: CallIO, backend: CallBackend, *, call_id: str = "") -> None:
        self.io = io
        self.backend = backend
        self.config = backend.config
        self.id = call_id
        self.state = CallState()
        self.in_hours = backend.open_now()
        self.end_reason = ""
        self.transferred_to = ""
        self._t0 = time.monotonic()
        self._keys: deque[str] = deque()
        self._key_ready = asyncio.Event()
        self._hung_up = asyncio.Event()
        self._detector = DtmfDetector(RATE)
        self._signalled = False  # the transport sends DTMF events: ignore in-band tones
        self._sink: Callable[[bytes], None] | None = None
        # first-audio latency of each prompt after a key (bench/voice_calls.py reads these)
        self.key_to_audio_ms: list[float] = []
        self._last_key_at: float | None = None

    # -- the whole call -------------------------------------------------------------------
    @property
    def ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000)

    async def run(self) -> None:
        pump = asyncio.create_task(self._pump(), name=f"call-{self.id}-input")
        try:
            await self.backend.call_started(self)
            await self._play_ids(self.config.welcome(self.in_hours), barge_in=True)
            await self._walk(self.config.start)
            self.end_reason = self.end_reason or "goodbye"
        except CallerHungUp:
            self.end_reason = self.end_reason or "hangup"
            await self._keep_unfinished()
        except Exception:
            self.end_reason = "error"
            log.exception("voice call %s failed", self.id)
            with contextlib.suppress(Exception):
                await self._keep_unfinished()
            raise
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            if not self._hung_up.is_set():
                with contextlib.suppress(Exception):
                    await self.io.hangup()
            await self._event("end", "", reason=self.end_reason)
            await self.backend.call_ended(self)

    async def _walk(self, node_id: str) -> None:
        attempts = 0
        for _ in range(MAX_STEPS):
            node = self.config.node(node_id)
            self.state.path.append(node_id)
            await self._event("enter", node_id)
            outcome = await self._step(node, attempts)
            if outcome is None:  # a hang-up step: done
                return
            target, counted = outcome
            attempts = attempts + 1 if counted else 0
            if attempts >= self.config.defaults.max_attempts:
                await self._event("give_up", node_id, attempts=attempts)
                target, attempts = self.config.defaults.give_up, 0
            if target == REPEAT:
                target = node_id
            node_id = target
        self.end_reason = "loop"
        log.warning("voice call %s: %d steps without an end", self.id, MAX_STEPS)

    async def _step(self, node: AnyNode, attempts: int) -> tuple[str, bool] | None:
        """Plays and runs one step; returns (the next step, whether this was a failed
        attempt), or None when the call is over."""
        if isinstance(node, HangupNode):
            await self._play_ids(node.prompt, barge_in=False)
            return None
        if isinstance(node, MenuNode):
            return await self._menu(node)
        if isinstance(node, RecordNode | VoicemailNode):
            return await self._record_step(node)
        if isinstance(node, CollectDigitsNode):
            return await self._collect(node)
        if isinstance(node, AskNode):
            return await self._ask(node)
        if isinstance(node, TransferNode):
            return await self._transfer(node)
        raise AssertionError(f"unknown step kind {node!r}")

    # -- steps ----------------------------------------------------------------------------
    async def _menu(self, node: MenuNode) -> tuple[str, bool]:
        await self._play_ids(node.prompt, barge_in=True)
        async with self._spoken_keys(node.id, list(node.words), lambda t: _word_key(node, t)):
            key = await self._next_key(node.timeout_s)
        if key is None:
            await self._event("timeout", node.id)
            await self._play_ids((self.config.defaults.no_input,), barge_in=True)
            return REPEAT, True
        route = node.keys.get(key)
        if route is None:
            await self._event("invalid", node.id, key=key)
            await self._play_ids((self.config.defaults.invalid,), barge_in=True)
            return REPEAT, True
        await self._event("key", node.id, key=key)
        return await self._follow(node, route), False

    async def _record_step(self, node: RecordNode | VoicemailNode) -> tuple[str, bool]:
        await self._play_ids(node.prompt, barge_in=True, seconds=node.max_record_s)
        self._clear_keys()  # a key pressed during the prompt does not end the message
        await self._play(self.backend.audio.beep, barge_in=False)
        recording = await self._record(node.id, node.max_record_s, node.end_key)
        self.state.recording = recording
        await self.backend.save_recording(self, recording)
        await self._event(
            "recorded", node.id, seconds=round(recording.seconds, 2), path=recording.path
        )
        if isinstance(node, VoicemailNode):
            await self._action(node.action, node.id)
        return await self._follow(node, node.next), False

    async def _collect(self, node: CollectDigitsNode) -> tuple[str, bool]:
        await self._play_ids(node.prompt, barge_in=True)
        async with self._spoken_keys(node.id, list(DIGIT_WORDS), digits_from_speech):
            return await self._collect_keys(node)

    async def _collect_keys(self, node: CollectDigitsNode) -> tuple[str, bool]:
        digits = ""
        while len(digits) < node.length:
            key = await self._next_key(node.timeout_s if digits else self.config.defaults.timeout_s)
            if key is None:
                await self._event("timeout", node.id, digits=digits)
                await self._play_ids((self.config.defaults.no_input,), barge_in=True)
                return REPEAT, True
            if key == node.end_key:
                break
            if key.isdigit():
                digits += key
        if len(digits) != node.length:
            await self._event("invalid", node.id, digits=digits)
            await self._play_ids((self.config.defaults.invalid,), barge_in=True)
            return REPEAT, True
        # the end key after a full number belongs to this step, not to the next menu
        if await self._next_key(DIGIT_AFTER_FULL_S, peek=True) == node.end_key:
            self._keys.popleft()
            if not self._keys:  # else the next prompt would take it for a barge-in
                self._key_ready.clear()
        self.state.number = digits
        await self._event("digits", node.id, digits=digits)
        return await self._follow(node, node.next), False

    async def _ask(self, node: AskNode) -> tuple[str, bool]:
        recognizer = self.backend.recognizer
        if recognizer is None:
            await self._event("speech_off", node.id)
            return await self._follow(node, node.unavailable), False
        # the decoder is built while the prompt plays: a caller starts speaking at the beep
        turn = asyncio.create_task(asyncio.to_thread(recognizer.utterance, RATE))
        try:
            await self._play_ids(node.prompt, barge_in=True)
            self._clear_keys()
            await self._play(self.backend.audio.beep, barge_in=False)
        except BaseException:
            turn.cancel()
            raise
        text = await self._listen(turn, node)
        await self._event("heard", node.id, text=text)
        if not text:
            await self._play_ids((self.config.defaults.no_input,), barge_in=True)
            return REPEAT, True
        self.state.question = text
        await self._action(node.action, node.id)
        return await self._follow(node, node.next), False

    async def _transfer(self, node: TransferNode) -> tuple[str, bool]:
        await self._play_ids(node.prompt, barge_in=False)
        if await self.backend.transfer(self, node.queue):
            self.transferred_to = node.queue
            self.end_reason = f"transfer:{node.queue}"
            await self._event("transfer", node.id, queue=node.queue)
            raise _Transferred
        await self._event("transfer_failed", node.id, queue=node.queue)
        return await self._follow(node, node.fallback), False

    async def _follow(self, node: AnyNode, route: Route) -> str:
        if route.action:
            await self._action(route.action, node.id)
        if route.prompt:
            await self._play_ids(route.prompt, barge_in=True)
        return route.goto(self.in_hours)

    # -- actions --------------------------------------------------------------------------
    async def _action(self, action: str, node_id: str) -> None:
        s = self.state
        if action == "create_ticket":
            recording = s.recording
            if recording is None:
                raise AssertionError(f"{node_id}: create_ticket without a recording")
            if s.ticket_for is not recording:  # pressing 1 twice makes one ticket
                s.number = await self.backend.create_ticket(self, recording)
                s.ticket_for = recording
            await self._event("action", node_id, action=action, number=s.number)
        elif action == "play_recording":
            if s.recording is not None:
                pcm = s.recording.pcm
                await self._play(lambda: pcm, barge_in=True)
            await self._event("action", node_id, action=action)
        elif action == "lookup_ticket":
            s.status = await self.backend.ticket_status(self, s.number)
            await self._event("action", node_id, action=action, number=s.number, status=s.status)
        elif action == "answer_question":
            s.answer = await self.backend.answer(self, s.question)
            await self._event("action", node_id, action=action, answer=s.answer[:200])
        else:
            raise AssertionError(f"unknown action {action!r}")  # menu.py checked the names

    async def _keep_unfinished(self) -> None:
        """The caller hung up: a message being recorded or recorded but not confirmed is
        saved and, unless it has one, becomes a ticket, so no complaint is lost."""
        recording = self.state.recording
        if recording is None or self.state.ticket_for is recording or not recording.pcm:
            return
        if not recording.path:
            await self.backend.save_recording(self, recording)
        if recording.seconds >= 1.0:
            self.state.number = await self.backend.create_ticket(self, recording)
            self.state.ticket_for = recording
            await self._event("action", recording.node, action="create_ticket", kept=True)

    # -- audio out ------------------------------------------------------------------------
    async def _play_ids(self, ids: Sequence[str], *, barge_in: bool, **extra: object) -> bool:
        if not ids:
            return False
        values = self._values(**extra)
        return await self._play(
            lambda: self.backend.audio.prompts(ids, **values), barge_in=barge_in, what=ids
        )

    def _values(self, **extra: object) -> dict[str, object]:
        s = self.state
        values: dict[str, object] = dict(self.backend.values())
        values.update(number=s.number, status=s.status, answer=s.answer, question=s.question)
        values.update(extra)
        values.setdefault("seconds", "")
        return values

    async def _play(
        self, render: Callable[[], bytes], *, barge_in: bool, what: object = ""
    ) -> bool:
        """Renders (in a thread) and plays; returns True when a key cut it short."""
        if barge_in and self._keys:
            return True  # typed ahead: the caller does not need to hear it
        self._check_line()
        pcm = await asyncio.to_thread(render)
        if self._last_key_at is not None:
            self.key_to_audio_ms.append((time.monotonic() - self._last_key_at) * 1000)
            self._last_key_at = None
        if not pcm:
            return False
        playing = asyncio.create_task(self.io.send_audio(pcm))
        hang = asyncio.create_task(self._hung_up.wait())
        waits: set[asyncio.Task[Any]] = {playing, hang}
        key = asyncio.create_task(self._key_ready.wait()) if barge_in else None
        if key is not None:
            waits.add(key)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            cut = key is not None and key.done() and not playing.done()
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        self._check_line()
        if cut:
            await self._event("barge_in", "", prompt=str(what))
        return cut

    # -- audio and keys in ----------------------------------------------------------------
    async def _pump(self) -> None:
        try:
            async for item in self.io.events():
                if isinstance(item, str):
                    self._signalled = True
                    self._key(item)
                    continue
                if not self._signalled:
                    for digit in self._detector.feed(item):
                        self._key(digit)
                sink = self._sink
                if sink is not None:
                    sink(item)
        finally:
            self._hung_up.set()
            self._key_ready.set()  # wakes anyone waiting for a key

    def _key(self, digit: str) -> None:
        self._keys.append(digit)
        self._last_key_at = time.monotonic()
        self._key_ready.set()

    def _clear_keys(self) -> None:
        self._keys.clear()
        if not self._hung_up.is_set():
            self._key_ready.clear()

    def _check_line(self) -> None:
        if self._hung_up.is_set():
            raise CallerHungUp

    async def _next_key(self, timeout: float, *, peek: bool = False) -> str | None:
        """The next key within ``timeout`` seconds (None if none came)."""
        deadline = time.monotonic() + timeout
        while not self._keys:
            self._check_line()
            self._key_ready.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._key_ready.wait(), left)
        if peek:
            return self._keys[0]
        key = self._keys.popleft()
        if not self._keys:
            self._key_ready.clear()
        return key

    @contextlib.asynccontextmanager
    async def _spoken_keys(
        self, node_id: str, grammar: list[str], to_keys: Callable[[str], str]
    ) -> AsyncIterator[None]:
        """While a step waits for keys, what the caller says counts as keys: the recogniser
        listens for ``grammar`` only (the menu's words, the digits), and each utterance it
        ends is turned into keys by ``to_keys`` ("人工" → "1", "二三七二" → "2372").
        Nothing happens without a speech model."""
        recognizer = self.backend.recognizer
        if recognizer is None or not grammar:
            yield
            return
        chunks: asyncio.Queue[bytes] = asyncio.Queue()

        async def listen() -> None:
            while True:
                turn = await asyncio.to_thread(recognizer.utterance, RATE, grammar)
                while True:
                    batch = await _queued(chunks)
                    event = await asyncio.to_thread(turn.feed, b"".join(batch))
                    if event is not None and event.kind == "final":
                        break
                keys = to_keys(event.text) if event.text else ""
                await self._event("heard", node_id, text=event.text, keys=keys)
                for key in keys:
                    self._key(key)

        self._sink = chunks.put_nowait
        task = asyncio.create_task(listen())
        try:
            yield
        finally:
            self._sink = None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _record(self, node_id: str, max_s: float, end_key: str) -> Recording:
        buffer = bytearray()
        limit = int(max_s * BYTES_PER_S)
        full = asyncio.Event()

        def take(pcm: bytes) -> None:
            buffer.extend(pcm[: max(0, limit - len(buffer))])
            if len(buffer) >= limit:
                full.set()

        self._sink = take
        complete = True
        try:
            ended = asyncio.create_task(self._wait_for_key(end_key))
            filled = asyncio.create_task(full.wait())
            done, pending = await asyncio.wait(
                {ended, filled}, timeout=max_s + 1.0, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            if ended in done and ended.exception() is not None:
                complete = False  # the caller hung up while speaking
        finally:
            self._sink = None
        self.state.recording = Recording(node_id, bytes(buffer), complete)
        if not complete:
            raise CallerHungUp
        return self.state.recording

    async def _wait_for_key(self, wanted: str) -> None:
        while True:
            key = await self._next_key(3600)
            if key == wanted:
                return

    async def _listen(self, turn: asyncio.Task[Any], node: AskNode) -> str:
        """Streams the caller's speech to the recognizer's ``turn`` until it hears an end of
        speech, the end key, the step's limit, or ``timeout_s`` of nothing recognised."""
        chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._sink = chunks.put_nowait  # first: what is said while the decoder is built counts
        utterance = await turn
        heard = asyncio.Event()
        partial = ""

        async def recognise() -> None:
            """Feeds what came, in batches; ends at the recogniser's end of speech or at the
            empty chunk put in when listening stops (after the audio before it is fed)."""
            nonlocal partial
            while True:
                batch = await _queued(chunks)
                audio = b"".join(batch)
                event = await asyncio.to_thread(utterance.feed, audio) if audio else None
                if event is not None and event.text:
                    partial = event.text
                    if event.kind == "final":
                        heard.set()
                        return
                if not batch[-1]:
                    return

        async def silence() -> None:
            await asyncio.sleep(node.timeout_s)
            if not partial:
                heard.set()

        feeding = asyncio.create_task(recognise())
        waits = [
            asyncio.create_task(self._wait_for_key(node.end_key)),
            asyncio.create_task(heard.wait()),
            asyncio.create_task(silence()),
        ]
        try:
            await asyncio.wait(
                [feeding, *waits], timeout=node.max_speech_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self._sink = None
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        # the end key or the limit: what was said before it is still recognised
        chunks.put_nowait(b"")
        try:
            await asyncio.wait_for(feeding, DRAIN_S)
        except TimeoutError:  # a feed may still run in its thread: do not touch the decoder
            log.warning("voice call %s: the recogniser fell %g s behind", self.id, DRAIN_S)
            self._check_line()
            return partial.strip()
        self._check_line()
        text: str = await asyncio.to_thread(utterance.finish)
        return (text or partial).strip()

    # -- the record -----------------------------------------------------------------------
    async def _event(self, kind: str, node: str, **detail: Any) -> None:
        try:
            await self.backend.call_event(self, kind, node, detail)
        except Exception:  # the call goes on; the log has the reason
            log.exception("voice call %s: could not record %s", self.id, kind)


class _Transferred(CallerHungUp):
    """The PBX takes the call on (to the agents' queue): the session ends without a hang-up
    prompt; the transport leaves the call to the PBX."""


def _word_key(node: MenuNode, text: str) -> str:
    """The key of the longest menu word in what was heard ("转人工" → the key of 转人工)."""
    heard = text.replace(" ", "")
    found = [w for w in node.words if w in heard]
    return node.words[max(found, key=len)] if found else ""


async def _queued(chunks: asyncio.Queue[bytes]) -> list[bytes]:
    """The audio waiting for the recogniser, at least one chunk: fed as one batch, so a
    recogniser that fell behind catches up in fewer thread hops."""
    batch = [await chunks.get()]
    while not chunks.empty():
        batch.append(chunks.get_nowait())
    return batch
