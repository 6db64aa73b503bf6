"""What the call engine needs of a call, whatever carries it: the telephone through Asterisk
(:mod:`assistant.voice.audiosocket`), a browser with a microphone
(:mod:`assistant.voice.webcall`) or a WAV file played as the caller (``banshi voice call``).

The engine runs one call over a :class:`CallIO`: it reads what the caller sends from
:meth:`CallIO.events`, plays prompts with :meth:`CallIO.send_audio` and ends the call with
:meth:`CallIO.hangup`. Audio is always signed 16-bit little-endian mono PCM at 8 kHz, the
telephone's own format; a transport that carries something else converts at its edge.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol


class CallIO(Protocol):
    """One call, as the engine sees it.

    ``channel`` says what carries the call: "phone" (Asterisk), "web" (a browser) or "wav"
    (the WAV caller command). ``caller_id`` is the caller's number, or "" when it is not
    known (always so on the web). ``call_ref`` is the transport's own id for the call (the
    AudioSocket UUID, the web call's id), for logs and for tickets made from the call.
    """

    channel: str
    caller_id: str
    call_ref: str

    def events(self) -> AsyncIterator[bytes | str]:
        """What the caller sends, in order: bytes are 8 kHz s16le mono PCM, a str is one
        DTMF digit of "0123456789*#". The iteration ends when the caller hangs up or the
        line drops."""
        ...

    async def send_audio(self, pcm: bytes) -> int:
        """Play ``pcm`` (8 kHz s16le mono) to the caller in real time, 20 ms frames paced as
        they are heard; returns the bytes sent (fewer when the call ended meanwhile). For
        barge-in the engine cancels the task awaiting this: after the cancellation nothing
        more of that audio is heard."""
        ...

    async def hangup(self) -> None:
        """End the call from this side; harmless when it has already ended."""
        ...


CallHandler = Callable[[CallIO], Awaitable[None]]
"""Runs one call from start to end (the call engine); the transport hangs up after it returns."""
