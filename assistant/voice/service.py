"""The voice hotline as a service: the call engine's backend on the rest of banshi, and the
telephone line (Asterisk AudioSocket) started with the app.

- Answers come from the chat (:class:`assistant.chat.ChatService`, channel ``voice``): the
  same Rasa and knowledge-base path, and the question and answer land in a conversation
  like any chat, so agents see them.
- Messages become tickets in the ticket bridge (channel ``voice``) with the recording and
  the caller's number; the caller hears the 受理号. Progress is looked up with the last four
  digits of the number calling, as the web page asks for them.
- Every call is a row in ``voice_calls`` with its steps (:mod:`assistant.voice.records`);
  recordings are WAV files under ``<data>/voice/recordings/``, written whole before a row
  names them.
- Without a speech model the hotline works with keys only, and says so at start and in
  /healthz; without speech synthesis the prompts are tones and /healthz says why.

Transfers to a person: AudioSocket cannot hand a call on, so the session stores the queue
as the call's ``next_step`` and hangs up; the dialplan asks for it (``GET
/api/voice/pbx/calls/<uuid>/next``) and runs ``Queue()``. README, "Voice hotline", has the
dialplan.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from assistant.voice import pcm
from assistant.voice.call import CallSession, Recognizer, Recording, SpeechAudio
from assistant.voice.menu import IvrConfig
from assistant.voice.records import VoiceCall, VoiceCallEvent, VoiceRecording
from assistant.voice.transport import CallIO
from banshi.db import Database, now_utc
from banshi.workcal import WorkCalendar

log = logging.getLogger(__name__)

PHONE = re.compile(r"^\+?\d{5,20}$")
NOT_FOUND = "没有查到这个受理号，或它不是用本机号码登记的，请核对后重新输入"
NO_CALLER_NUMBER = (
    "无法核对您的来电号码。请在网上的办理进度页面输入受理号和手机号后四位查询，"
    "或用登记的手机拨打本热线"
)
TO_PERSON = "需要人工服务，请在听完后按2"
NO_ANSWER = "抱歉，暂时无法回答您的问题，请转人工服务或留言"
# a message from the hotline's menu, by the step it was recorded in: the kind of ticket
CATEGORY = {"voicemail": "咨询", "record": "投诉"}


class VoiceService:
    """Implements :class:`assistant.voice.call.CallBackend`."""

    def __init__(
        self,
        db: Database,
        config: IvrConfig,
        audio: SpeechAudio,
        calendar: WorkCalendar,
        recordings_dir: Path,
        *,
        recognizer: Recognizer | None = None,
        speech_reason: str = "",
        chat: Any = None,  # assistant.chat.ChatService
        tickets: Any = None,  # ticket_bridge.tickets.TicketDesk
        max_calls: int = 30,
        busy_audio: Callable[[], bytes] | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.audio = audio
        self.calendar = calendar
        self.recordings_dir = recordings_dir
        self.recognizer = recognizer
        self.speech_reason = speech_reason
        self.chat = chat
        self.tickets = tickets
        self.max_calls = max_calls
        self.active: dict[str, CallSession] = {}
        self.calls_taken = 0
        self.calls_refused = 0
        self.last_sessions: list[CallSession] = []  # the latest few, for bench and tests
        self._busy_audio = busy_audio
        self._background: set[asyncio.Task[None]] = set()  # transcriptions after a ticket

    # -- taking calls ---------------------------------------------------------------------
    async def handle(self, io: CallIO) -> None:
        """A transport's handler: runs one call (refused politely when the line is full)."""
        if len(self.active) >= self.max_calls:
            self.calls_refused += 1
            log.warning("voice: %d calls already, refusing %s", len(self.active), io.call_ref)
            if self._busy_audio is not None:
                await io.send_audio(await asyncio.to_thread(self._busy_audio))
            await io.hangup()
            return
        call_id = _call_id(io)
        session = CallSession(io, self, call_id=call_id)
        self.active[call_id] = session
        self.calls_taken += 1
        try:
            await session.run()
        finally:
            self.active.pop(call_id, None)
            self.last_sessions = [*self.last_sessions[-49:], session]

    def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "status": "ok",
            "active_calls": len(self.active),
            "calls_taken": self.calls_taken,
            "calls_refused": self.calls_refused,
            "speech": "on" if self.recognizer is not None else "off",
        }
        if self.recognizer is None:  # a part of the menu is off: degraded, not down
            report["status"] = "degraded"
            report["speech_reason"] = self.speech_reason
            report["effect"] = "callers use keys only; 自助咨询 by voice is off"
        status = getattr(self.audio, "status", None)
        if callable(status):
            report["prompts"] = status()
        return report

    # -- CallBackend ----------------------------------------------------------------------
    def open_now(self) -> bool:
        return self.calendar.is_open(self.calendar.now())

    def values(self) -> dict[str, object]:
        return {"next_open": self.calendar.describe_next(self.calendar.now())}

    async def call_started(self, call: CallSession) -> None:
        def write() -> None:
            with self.db.session() as s:
                row = s.get(VoiceCall, call.id)
                if row is None:  # a PBX call may have been announced with its caller id
                    row = VoiceCall(id=call.id, channel=call.io.channel, call_ref=call.io.call_ref)
                    s.add(row)
                row.channel = call.io.channel
                row.in_hours = call.in_hours
                row.speech = self.recognizer is not None
                row.started_at = now_utc()
                if call.io.caller_id:
                    row.caller_id = call.io.caller_id[:32]
                call.io.caller_id = row.caller_id or ""

        await asyncio.to_thread(write)

    async def call_event(
        self, call: CallSession, kind: str, node: str, detail: dict[str, Any]
    ) -> None:
        at = call.ms

        def write() -> None:
            with self.db.session() as s:
                s.add(
                    VoiceCallEvent(call_id=call.id, at_ms=at, kind=kind, node=node, detail=detail)
                )
                if kind == "enter":
                    s.execute(
                        update(VoiceCall).where(VoiceCall.id == call.id).values(last_node=node)
                    )

        await asyncio.to_thread(write)

    async def call_ended(self, call: CallSession) -> None:
        def write() -> None:
            with self.db.session() as s:
                s.execute(
                    update(VoiceCall)
                    .where(VoiceCall.id == call.id)
                    .values(
                        ended_at=now_utc(),
                        end_reason=call.end_reason[:64],
                        ticket_number=call.state.number if call.state.ticket_for else None,
                        next_step=call.transferred_to,
                    )
                )

        await asyncio.to_thread(write)

    async def save_recording(self, call: CallSession, recording: Recording) -> None:
        def write() -> None:
            day = now_utc().strftime("%Y%m%d")
            n = len([p for p in call.state.path if p == recording.node])
            relative = Path("voice") / "recordings" / day / f"{call.id}-{recording.node}-{n}.wav"
            target = self.recordings_dir / day / relative.name
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".part")
            pcm.write_wav(partial, recording.pcm, 8000)
            partial.replace(target)  # a row never names half a file
            recording.path = relative.as_posix()
            with self.db.session() as s:
                row = VoiceRecording(
                    call_id=call.id,
                    node=recording.node,
                    path=recording.path,
                    seconds=round(recording.seconds, 2),
                    complete=recording.complete,
                )
                s.add(row)
                s.flush()
                recording.id = row.id

        await asyncio.to_thread(write)

    async def create_ticket(self, call: CallSession, recording: Recording) -> str:
        """The ticket at once (the caller is waiting for its number); with speech on, the
        message is transcribed afterwards and added to the ticket as a note."""
        if self.tickets is None:
            raise RuntimeError("the ticket bridge is not running")
        kind = self.config.node(recording.node).kind.value
        category = CATEGORY.get(kind, "咨询")
        caller = call.io.caller_id if PHONE.match(call.io.caller_id or "") else ""
        words = "投诉建议留言" if kind == "record" else "留言"
        content = f"热线电话{words}，录音{recording.seconds:.0f}秒"
        if not recording.complete:
            content += "（来电者未说完即挂机）"
        content += f"，来电号码{caller or '未知'}。请收听录音。"
        desk = self.tickets

        def write() -> str:
            with self.db.session() as s:
                ticket = desk.create(
                    s,
                    channel="voice",
                    category=category,
                    title=f"热线{words}（{caller or '未知号码'}）",
                    content=content,
                    actor="ivr",
                    phone=caller,
                    recording=recording.path,
                )
                number: str = ticket.number
            return number

        number = await asyncio.to_thread(write)
        if self.recognizer is not None and recording.pcm:
            task = asyncio.create_task(self._transcribe_into(number, recording))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return number

    async def _transcribe_into(self, number: str, recording: Recording) -> None:
        heard = await self._transcribe(recording)
        if not heard:
            return
        desk = self.tickets

        def write() -> None:
            with self.db.session() as s:
                desk.act(s, number, "note", None, note=f"语音识别：{heard}", source="ivr")
            if recording.id is not None:
                with self.db.session() as s:
                    s.execute(
                        update(VoiceRecording)
                        .where(VoiceRecording.id == recording.id)
                        .values(transcript=heard)
                    )

        try:
            await asyncio.to_thread(write)
        except Exception:  # the ticket and its recording are there; only the note is missing
            log.exception("could not add the transcript to ticket %s", number)

    async def answer(self, call: CallSession, question: str) -> str:
        if self.chat is None:
            return NO_ANSWER
        try:
            reply = await self.chat.handle("voice", call.io.caller_id or call.id, question)
        except Exception:
            log.exception("voice call %s: the chat could not answer", call.id)
            return NO_ANSWER
        bridge = getattr(self.chat.deps, "bridge", None)
        if bridge is not None and await asyncio.to_thread(
            bridge.cancel_wait, reply.conversation_id
        ):
            # the chat queued the caller for an agent's text chat; a caller needs the
            # PBX's agents instead (key 2 after the answer), so the chat leaves the queue
            await self.call_event(call, "handoff_to_keys", "", {})
            return TO_PERSON
        texts = [m.get("text", "") for m in reply.messages if m.get("text")]
        return "。".join(t.strip("。 \n") for t in texts) or NO_ANSWER

    async def ticket_status(self, call: CallSession, number: str) -> str:
        if self.tickets is None:
            return NOT_FOUND
        last4 = re.sub(r"\D", "", call.io.caller_id or "")[-4:]
        if not last4:  # a web call, or a withheld number: nothing to check the ticket against
            return NO_CALLER_NUMBER
        try:
            found = await asyncio.to_thread(
                self.tickets.lookup, number, last4, f"voice:{call.io.caller_id or call.id}"
            )
        except Exception as exc:  # not found, malformed, throttled: the resident's message
            said = getattr(exc, "message", "") or NOT_FOUND
            return NOT_FOUND if "没有" in said or "未" in said else said.rstrip("。")
        created = found["created_at"][:10].split("-")
        when = f"{int(created[1])}月{int(created[2])}日受理"
        return f"{found['status_label']}，{when}"

    async def transfer(self, call: CallSession, queue: str) -> bool:
        """Only a PBX can hand the call to agents (see the module docs)."""
        if call.io.channel != "phone":
            return False

        def write() -> None:
            with self.db.session() as s:
                s.execute(update(VoiceCall).where(VoiceCall.id == call.id).values(next_step=queue))

        await asyncio.to_thread(write)
        return True

    async def _transcribe(self, recording: Recording) -> str:
        if self.recognizer is None or not recording.pcm:
            return ""
        recognizer = self.recognizer

        def run() -> str:
            utterance = recognizer.utterance(8000)
            for chunk in pcm.frames(recording.pcm, 8000, 200):
                utterance.feed(chunk)
            return str(utterance.finish())

        try:
            return await asyncio.to_thread(run)
        except Exception:
            log.exception("could not transcribe a recording")
            return ""

    # -- the PBX's questions (api.py) -----------------------------------------------------
    def announce(self, call_uuid: str, caller: str) -> None:
        """The dialplan tells who is calling before AudioSocket() connects."""
        call_id = uuid.UUID(call_uuid).hex
        with self.db.session() as s:
            row = s.get(VoiceCall, call_id)
            if row is None:
                s.add(
                    VoiceCall(
                        id=call_id,
                        channel="phone",
                        call_ref=str(uuid.UUID(call_uuid)),
                        caller_id=caller[:32],
                        in_hours=self.open_now(),
                    )
                )
            else:
                row.caller_id = caller[:32]

    def next_step(self, call_uuid: str) -> str:
        with self.db.session() as s:
            step = s.scalar(
                select(VoiceCall.next_step).where(VoiceCall.id == uuid.UUID(call_uuid).hex)
            )
        return step or "hangup"


def _call_id(io: CallIO) -> str:
    if io.channel == "phone":
        try:
            return uuid.UUID(io.call_ref).hex  # the PBX's UUID: the dialplan can ask about it
        except ValueError:
            pass
    return secrets.token_hex(16)
