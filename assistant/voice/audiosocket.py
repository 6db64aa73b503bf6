"""Asterisk's AudioSocket protocol over TCP: the telephone transport of the voice hotline.

Any Asterisk PBX (18 or later) hands a call to this service with one dialplan entry; the
call's audio and key presses come over a plain TCP connection, and the prompts go back the
same way::

    exten => 12345,1,Answer()
     same => n,AudioSocket(${UUID()},banshi.example.org:9092)
     same => n,Hangup()

``AudioSocket(uuid,host:port)`` connects to this server; ``${UUID()}`` is Asterisk's own
function for a fresh random UUID (the application does not answer the call itself, hence
``Answer()`` before it). When this service hangs up, AudioSocket() returns and ``Hangup()``
ends the call.

The protocol (docs.asterisk.org, Configuration/Channel-Drivers/AudioSocket, and the
CyCoreSystems/audiosocket README): every message is a 3-byte header — one byte of kind, a
16-bit big-endian payload length — and the payload. Kinds: 0x00 hang-up (no payload; closing
the socket means the same), 0x01 the call's UUID (16 bytes, Asterisk sends it first), 0x03
one DTMF digit as one ASCII byte (sent by Asterisk; this service sends none), 0x10 audio
(signed 16-bit little-endian mono PCM at 8 kHz, usually 20 ms = 320 bytes a frame), 0xff an
error (Asterisk's one-byte code is a bit set: 0x01 the caller hung up, 0x02 a frame could
not be forwarded, 0x04 out of memory). Key presses come as DTMF frames only from the 2025
releases of Asterisk 20, 21 and 22 on (older ones send audio only: in-band tones then). The
newest Asterisk adds kinds from 0x11 up for higher sample rates; this service speaks 8 kHz
and refuses those by name.

Here: :class:`Frame` and :class:`FrameReader` (bytes in, frames out, however TCP splits
them), :func:`serve` (one :class:`AudioSocketCall` per connection, handed to the call
engine) and :class:`AsteriskClient`, which places a call the way Asterisk does, for tests
and ``banshi voice call``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum

from assistant.voice.pcm import frames as pcm_frames

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2  # bytes: signed 16-bit little-endian
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * SAMPLE_WIDTH * FRAME_MS // 1000  # 320
HEADER_BYTES = 3
MAX_PAYLOAD = 0xFFFF  # the length field has 16 bits
DTMF_DIGITS = "0123456789*#ABCD"
UUID_TIMEOUT_S = 5.0  # Asterisk sends the UUID at once; a silent peer is not Asterisk
READ_CHUNK = 4096

_pause = asyncio.sleep  # the real-time pacing between frames (tests count the pauses)

ASTERISK_ERRORS = {
    0x01: "the caller hung up",
    0x02: "Asterisk could not forward a frame",
    0x04: "Asterisk ran out of memory",
}


class Kind(IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10
    ERROR = 0xFF


class AudioSocketError(Exception):
    """A frame that breaks the protocol, or a peer that does not speak it; the connection
    it came on is closed."""


@dataclass(frozen=True)
class Frame:
    """One AudioSocket message: its kind and its payload (checked for that kind)."""

    kind: Kind
    payload: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _kind(self.kind))
        _check_payload(self.kind, self.payload)

    def encode(self) -> bytes:
        return struct.pack(">BH", self.kind, len(self.payload)) + self.payload

    @property
    def uuid(self) -> uuid.UUID:
        if self.kind is not Kind.UUID:
            raise AudioSocketError(f"a {self.kind.name} frame carries no UUID")
        return uuid.UUID(bytes=self.payload)

    @property
    def digit(self) -> str:
        if self.kind is not Kind.DTMF:
            raise AudioSocketError(f"a {self.kind.name} frame carries no DTMF digit")
        return self.payload.decode("ascii")

    @property
    def error_code(self) -> int | None:
        """Asterisk's error bits, or None for an error frame without a code."""
        return self.payload[0] if self.kind is Kind.ERROR and self.payload else None


def _kind(value: int) -> Kind:
    try:
        return Kind(value)
    except ValueError:
        if 0x11 <= value <= 0x18:
            raise AudioSocketError(
                f"frame kind 0x{value:02x} is audio above 8 kHz, which this service does not "
                "take: use AudioSocket's default signed linear 8 kHz"
            ) from None
        raise AudioSocketError(f"unknown frame kind 0x{value:02x}") from None


def _check_payload(kind: Kind, payload: bytes) -> None:
    size = len(payload)
    if size > MAX_PAYLOAD:
        raise AudioSocketError(f"{kind.name} payload of {size} bytes is over {MAX_PAYLOAD}")
    if kind is Kind.HANGUP and size:
        raise AudioSocketError(f"a hang-up frame has no payload, not {size} bytes")
    if kind is Kind.UUID and size != 16:
        raise AudioSocketError(f"a UUID frame carries 16 bytes, not {size}")
    if kind is Kind.DTMF and (size != 1 or chr(payload[0]) not in DTMF_DIGITS):
        raise AudioSocketError(f"a DTMF frame carries one of {DTMF_DIGITS}, not {payload!r}")
    if kind is Kind.AUDIO and size % SAMPLE_WIDTH:
        raise AudioSocketError(f"audio of {size} bytes is not a whole number of 16-bit samples")


def audio(pcm: bytes) -> Frame:
    return Frame(Kind.AUDIO, bytes(pcm))


def hangup() -> Frame:
    return Frame(Kind.HANGUP)


def uuid_frame(call_uuid: uuid.UUID) -> Frame:
    return Frame(Kind.UUID, call_uuid.bytes)


def dtmf(digit: str) -> Frame:
    if len(digit) != 1 or digit not in DTMF_DIGITS:
        raise AudioSocketError(f"a DTMF digit is one of {DTMF_DIGITS}, not {digit!r}")
    return Frame(Kind.DTMF, digit.encode("ascii"))


def error(code: int | None = None) -> Frame:
    return Frame(Kind.ERROR, b"" if code is None else bytes([code]))


def describe_error(code: int | None) -> str:
    """Asterisk's error bits in words, e.g. 0x03 → the caller hung up; … could not forward."""
    if code is None:
        return "an error without a code"
    words = [text for bit, text in ASTERISK_ERRORS.items() if code & bit]
    return "; ".join(words) or f"application error 0x{code:02x}"


class FrameReader:
    """Bytes from the socket in, whole frames out: a frame split over several reads waits
    for the rest, several frames in one read all come out. A broken header is refused as
    soon as its three bytes are in, before any payload is waited for."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still waiting for the rest."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= HEADER_BYTES:
            kind, size = self._header()
            end = HEADER_BYTES + size
            if len(self._buffer) < end:
                break
            frames.append(Frame(kind, bytes(self._buffer[HEADER_BYTES:end])))
            del self._buffer[:end]
        return frames

    def _header(self) -> tuple[Kind, int]:
        raw_kind, size = struct.unpack_from(">BH", self._buffer)
        kind = _kind(raw_kind)
        if size > self.max_payload:
            raise AudioSocketError(
                f"{kind.name} payload of {size} bytes is over {self.max_payload}"
            )
        if kind is Kind.AUDIO and size % SAMPLE_WIDTH:
            raise AudioSocketError(f"audio of {size} bytes is not a whole number of samples")
        return kind, size


class _FrameStream:
    """Frames read one at a time from a TCP stream (None at the end of the stream)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._frames = FrameReader()
        self._ready: deque[Frame] = deque()

    async def next(self) -> Frame | None:
        while not self._ready:
            try:
                data = await self._reader.read(READ_CHUNK)
            except OSError as exc:  # reset by the peer: the same as a closed connection
                log.info("AudioSocket connection lost: %s", exc)
                data = b""
            if not data:
                if self._frames.pending:
                    log.warning("AudioSocket stream ended inside a frame")
                return None
            self._ready.extend(self._frames.feed(data))
        return self._ready.popleft()


class _FrameWriter:
    """Frames written to a TCP stream; after the connection is gone, writing is a no-op."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self.closed = False

    async def send(self, frame: Frame) -> bool:
        if self.closed or self._writer.is_closing():
            self.closed = True
            return False
        try:
            self._writer.write(frame.encode())
            await self._writer.drain()
        except OSError:  # ConnectionResetError, BrokenPipeError: the peer is gone
            self.closed = True
            return False
        return True

    async def close(self) -> None:
        self.closed = True
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


async def _send_paced(out: _FrameWriter, pcm: bytes, pace: bool) -> int:
    """Send ``pcm`` as 20 ms frames, one every 20 ms when ``pace`` (the caller's phone plays
    them as they come, so sending faster would only fill Asterisk's buffer). Returns the
    bytes sent; cancelling it (barge-in) stops at a frame boundary."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    sent = 0
    if len(pcm) % SAMPLE_WIDTH:
        raise AudioSocketError(f"audio of {len(pcm)} bytes is not a whole number of samples")
    for chunk in pcm_frames(pcm, SAMPLE_RATE, FRAME_MS):  # the last one padded with silence
        if not await out.send(audio(chunk)):
            break
        sent += len(chunk)
        if pace:
            due += len(chunk) / (SAMPLE_RATE * SAMPLE_WIDTH)
            await _pause(max(0.0, due - loop.time()))
    return sent


class AudioSocketCall:
    """One call from Asterisk: its UUID, what the caller sends (:meth:`events`) and the
    audio sent back (:meth:`send_audio`). ``end_reason`` says how the call ended: "hangup"
    (the caller's side sent a hang-up), "eof" (the connection closed), "error: …" (Asterisk
    reported one), "local" (this side hung up)."""

    def __init__(
        self,
        call_uuid: uuid.UUID,
        frames: _FrameStream,
        out: _FrameWriter,
        peer: str = "",
        pace: bool = True,
    ) -> None:
        self.uuid = call_uuid
        self.peer = peer
        self.pace = pace
        self.end_reason: str | None = None
        # assistant.voice.transport.CallIO: AudioSocket carries no caller id; the dialplan
        # announces it (VoiceService.announce) and the call record supplies it
        self.channel = "phone"
        self.call_ref = str(call_uuid)
        self.caller_id = ""
        self._frames = frames
        self._out = out

    @property
    def ended(self) -> bool:
        return self.end_reason is not None or self._out.closed

    async def events(self) -> AsyncIterator[bytes | str]:
        """Audio (bytes of 8 kHz PCM) and DTMF digits (str), in the order they came, until
        the caller hangs up or the connection ends."""
        while self.end_reason is None:
            frame = await self._frames.next()
            if frame is None:
                self.end_reason = "eof"
            elif frame.kind is Kind.AUDIO:
                yield frame.payload
            elif frame.kind is Kind.DTMF:
                yield frame.digit
            elif frame.kind is Kind.HANGUP:
                self.end_reason = "hangup"
            elif frame.kind is Kind.ERROR:
                self.end_reason = f"error: {describe_error(frame.error_code)}"
                log.info("AudioSocket call %s: %s", self.uuid, self.end_reason)
            else:
                raise AudioSocketError(f"a second {frame.kind.name} frame in call {self.uuid}")

    async def send_audio(self, pcm: bytes, *, pace: bool | None = None) -> int:
        """Play ``pcm`` (8 kHz 16-bit mono) to the caller in 20 ms frames, in real time
        unless ``pace`` (default: the server's) is False. Returns the bytes sent: fewer
        than given when the call ended meanwhile."""
        return await _send_paced(self._out, pcm, self.pace if pace is None else pace)

    async def hangup(self) -> None:
        """End the call: Asterisk leaves AudioSocket() and goes on with the dialplan."""
        if self.end_reason is None:
            self.end_reason = "local"
        await self._out.send(hangup())
        await self._out.close()


CallHandler = Callable[[AudioSocketCall], Awaitable[None]]


async def serve(
    handler: CallHandler,
    host: str = "127.0.0.1",
    port: int = 9092,
    *,
    pace: bool = True,
    uuid_timeout: float = UUID_TIMEOUT_S,
) -> asyncio.Server:
    """Listen for Asterisk: each connection's UUID frame is read first, then ``handler``
    runs the call; the call is hung up when the handler returns. A peer that does not start
    with a UUID, or breaks the protocol later, is logged and dropped; the server goes on."""

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _run_connection(handler, reader, writer, pace, uuid_timeout)

    return await asyncio.start_server(connected, host, port)


async def _run_connection(
    handler: CallHandler,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    pace: bool,
    uuid_timeout: float,
) -> None:
    peer = _peer_name(writer)
    frames, out = _FrameStream(reader), _FrameWriter(writer)
    call: AudioSocketCall | None = None
    try:
        call = AudioSocketCall(await _first_uuid(frames, uuid_timeout), frames, out, peer, pace)
        await handler(call)
    except AudioSocketError as exc:
        what = f"call {call.uuid}" if call else "connection"
        log.warning("AudioSocket %s from %s dropped: %s", what, peer, exc)
    except Exception:
        log.exception("AudioSocket call from %s failed in its handler", peer)
    finally:
        if call is not None and not call.ended:
            await call.hangup()
        await out.close()


async def _first_uuid(frames: _FrameStream, timeout: float) -> uuid.UUID:
    try:
        async with asyncio.timeout(timeout):
            frame = await frames.next()
    except TimeoutError:
        raise AudioSocketError(f"no UUID frame within {timeout:g} s") from None
    if frame is None:
        raise AudioSocketError("closed before sending a UUID frame")
    if frame.kind is not Kind.UUID:
        raise AudioSocketError(f"the first frame is {frame.kind.name}, not the call's UUID")
    return frame.uuid


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "?")


class AsteriskClient:
    """Places a call on an AudioSocket server as Asterisk does: the UUID first, then the
    caller's audio and DTMF; receives the audio the server plays. For tests, demos and
    ``banshi voice call``."""

    def __init__(
        self, call_uuid: uuid.UUID, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.uuid = call_uuid
        self.hung_up_by_server = False
        self._frames = _FrameStream(reader)
        self._out = _FrameWriter(writer)

    @classmethod
    async def connect(
        cls, host: str, port: int, call_uuid: uuid.UUID | None = None, timeout: float = 5.0
    ) -> AsteriskClient:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
        client = cls(call_uuid or uuid.uuid4(), reader, writer)
        await client.send(uuid_frame(client.uuid))
        return client

    async def __aenter__(self) -> AsteriskClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def send(self, frame: Frame) -> bool:
        return await self._out.send(frame)

    async def send_audio(self, pcm: bytes, *, pace: bool = False) -> int:
        """The caller speaking: ``pcm`` in 20 ms frames (in real time when ``pace``)."""
        return await _send_paced(self._out, pcm, pace)

    async def send_dtmf(self, digits: str) -> None:
        """Key presses, one DTMF frame a digit, as Asterisk forwards them."""
        for digit in digits:
            await self.send(dtmf(digit))

    async def next_frame(self, timeout: float = 5.0) -> Frame | None:
        """The next frame from the server (None once the connection is closed)."""
        async with asyncio.timeout(timeout):
            return await self._frames.next()

    async def receive_audio(self, n_bytes: int, timeout: float = 5.0) -> bytes:
        """At least ``n_bytes`` of the audio the server plays, or less if it hangs up."""
        got = bytearray()
        async with asyncio.timeout(timeout):
            while len(got) < n_bytes:
                frame = await self._frames.next()
                if frame is None or frame.kind is Kind.HANGUP:
                    self.hung_up_by_server = True
                    break
                if frame.kind is Kind.AUDIO:
                    got += frame.payload
        return bytes(got)

    async def hangup(self) -> None:
        """The caller puts the phone down: a hang-up frame, then the connection closes."""
        await self.send(hangup())
        await self.close()

    async def close(self) -> None:
        await self._out.close()
