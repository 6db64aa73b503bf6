"""HTTP side of the voice hotline: the PBX's two questions, the web call, call records for
supervisors and recordings for the agents handling a ticket.

The PBX endpoints answer Asterisk's ``CURL()`` (plain text, no login): they need the
``BANSHI_VOICE_PBX_TOKEN`` when one is set, and otherwise a request from this machine.
"""

from __future__ import annotations

import asyncio
import hmac
import uuid
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse
from sqlalchemy import select

from assistant.voice.records import VoiceCall, VoiceRecording, call_events
from assistant.voice.service import VoiceService
from assistant.voice.webcall import webcall_router
from banshi.deps import AgentDep, SupervisorDep
from banshi.errors import BanshiError, Forbidden, NotFound, Unavailable
from ticket_bridge.privacy import mask_phone

router = APIRouter(tags=["voice"])


def _voice(request: Request) -> VoiceService:
    voice: VoiceService | None = getattr(request.app.state, "voice", None)
    if voice is None:
        raise Unavailable("语音热线暂未启动。", "the voice service did not start (see /healthz)")
    return voice


def _handler(request_app: Any) -> Any:
    voice = getattr(request_app.state, "voice", None)
    return voice.handle if voice is not None else None


def mount_webcall(app: Any) -> None:
    """The browser's web call (``/call`` and its WebSocket) on the app's voice service."""
    app.include_router(webcall_router(lambda: _handler(app)))


def _check_pbx(request: Request, token: str) -> None:
    expected = request.app.state.settings.voice_pbx_token
    if expected:
        if not hmac.compare_digest(token.encode(), expected.encode()):
            raise Forbidden("无权访问。", "bad or missing PBX token")
        return
    client = request.client.host if request.client else ""
    if client not in ("127.0.0.1", "::1"):
        raise Forbidden("无权访问。", "set BANSHI_VOICE_PBX_TOKEN to accept a PBX elsewhere")


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BanshiError("通话编号无效。", f"not a UUID: {value!r}") from None


@router.post("/api/voice/pbx/calls/{call_uuid}", response_class=PlainTextResponse)
async def pbx_announce(
    call_uuid: str, request: Request, token: Annotated[str, Query(max_length=200)] = ""
) -> str:
    """``Set(R=${CURL(http://banshi/api/voice/pbx/calls/${CALL},caller=${CALLERID(num)})})``:
    CURL() posts ``caller=…`` form-encoded (or give ``?caller=`` in the address)."""
    _check_pbx(request, token)
    body = (await request.body())[:1024].decode("utf-8", "replace")
    caller = parse_qs(body).get("caller", [request.query_params.get("caller", "")])[0]
    voice = _voice(request)
    await asyncio.to_thread(voice.announce, _uuid(call_uuid), caller.strip()[:32])
    return "ok"


@router.get("/api/voice/pbx/calls/{call_uuid}/next", response_class=PlainTextResponse)
def pbx_next(
    call_uuid: str, request: Request, token: Annotated[str, Query(max_length=200)] = ""
) -> str:
    """After AudioSocket(): "hangup", or the agents' queue to ``Queue()`` the call into."""
    _check_pbx(request, token)
    return _voice(request).next_step(_uuid(call_uuid))


@router.get("/api/admin/voice/calls")
def list_calls(
    request: Request,
    who: SupervisorDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The latest calls with their path through the menu (phone numbers masked)."""
    voice = _voice(request)
    with voice.db.session() as s:
        calls = s.scalars(select(VoiceCall).order_by(VoiceCall.started_at.desc()).limit(limit))
        rows = []
        for call in calls:
            events = call_events(s, call.id, times=True)
            rows.append(
                {
                    "id": call.id,
                    "channel": call.channel,
                    "caller": mask_phone(call.caller_id),
                    "in_hours": call.in_hours,
                    "started_at": call.started_at.isoformat(),
                    "ended_at": call.ended_at.isoformat() if call.ended_at else None,
                    "end_reason": call.end_reason,
                    "ticket_number": call.ticket_number,
                    "path": [node for kind, node, _ in events if kind == "enter"],
                    "events": [
                        {"kind": kind, "node": node, **detail} for kind, node, detail in events
                    ],
                }
            )
    return {"calls": rows, "active": len(voice.active)}


@router.get("/api/voice/recordings/{ticket_number}")
def ticket_recording(ticket_number: str, request: Request, who: AgentDep) -> FileResponse:
    """The caller's message of a voice ticket, for the agent handling it."""
    voice = _voice(request)
    with voice.db.session() as s:
        path = s.scalar(
            select(VoiceRecording.path)
            .join(VoiceCall, VoiceCall.id == VoiceRecording.call_id)
            .where(VoiceCall.ticket_number == ticket_number)
            .order_by(VoiceRecording.id.desc())
        )
    if path is None:
        raise NotFound("这个工单没有录音。", f"no recording for ticket {ticket_number}")
    data_dir: Path = request.app.state.settings.data_dir
    file = (data_dir / path).resolve()
    if not file.is_relative_to(data_dir.resolve()) or not file.is_file():
        raise NotFound("录音文件不存在。", f"{path} is missing under the data directory")
    return FileResponse(file, media_type="audio/wav", filename=f"{ticket_number}.wav")
