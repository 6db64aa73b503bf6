"""The AudioSocket transport (assistant/voice/audiosocket.py): frames byte for byte as
Asterisk writes them, a reader that copes with however TCP cuts them, and whole calls over
loopback TCP between the server and the Asterisk-like test client."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from assistant.voice import audiosocket as asock
from assistant.voice.audiosocket import (
    AsteriskClient,
    AudioSocketCall,
    AudioSocketError,
    Frame,
    FrameReader,
    Kind,
)
from assistant.voice.pcm import frames

CALL_UUID = uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13")
UUID_BYTES = bytes.fromhex("40325ec25efd4bd3805f53576e581d13")
BOUND_S = 5.0  # no test waits longer than this for anything


def run(coro: Awaitable[Any]) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(BOUND_S * 2):
            return await coro

    return asyncio.run(bounded())


def tone(n_frames: int) -> bytes:
    """Distinct 20 ms frames: frame i is 160 samples of the value i+1 (little-endian)."""
    return b"".join((i + 1).to_bytes(2, "little", signed=True) * 160 for i in range(n_frames))


# -- frames ------------------------------------------------------------------------------
def test_each_kind_encodes_to_the_exact_bytes_asterisk_uses() -> None:
    assert asock.hangup().encode() == b"\x00\x00\x00"
    assert asock.uuid_frame(CALL_UUID).encode() == b"\x01\x00\x10" + UUID_BYTES
    assert asock.dtmf("5").encode() == b"\x03\x00\x015"
    assert asock.dtmf("#").encode() == b"\x03\x00\x01#"
    assert asock.audio(b"\x01\x00\xff\xff").encode() == b"\x10\x00\x04\x01\x00\xff\xff"
    assert asock.audio(bytes(320)).encode() == b"\x10\x01\x40" + bytes(320)
    assert asock.error(0x01).encode() == b"\xff\x00\x01\x01"
    assert asock.error().encode() == b"\xff\x00\x00"


def test_each_kind_decodes_back_to_the_same_frame() -> None:
    frames = [
        asock.uuid_frame(CALL_UUID),
        asock.audio(tone(1)),
        asock.dtmf("1"),
        asock.dtmf("*"),
        asock.error(0x02),
        asock.hangup(),
    ]
    decoded = FrameReader().feed(b"".join(f.encode() for f in frames))
    assert decoded == frames
    assert decoded[0].kind is Kind.UUID and decoded[0].uuid == CALL_UUID
    assert decoded[1].payload == tone(1)
    assert (decoded[2].digit, decoded[3].digit) == ("1", "*")
    assert decoded[4].error_code == 0x02
    assert asock.describe_error(0x03) == "the caller hung up; Asterisk could not forward a frame"


def test_a_frame_split_over_reads_comes_out_once_whole() -> None:
    wire = asock.audio(tone(1)).encode() + asock.dtmf("7").encode()
    reader = FrameReader()
    assert reader.feed(wire[:1]) == []
    assert reader.feed(wire[1:3]) == []  # header complete, payload not
    assert reader.feed(wire[3:200]) == []
    assert reader.pending == 200
    assert reader.feed(wire[200:325]) == [asock.audio(tone(1))]
    assert reader.feed(wire[325:]) == [asock.dtmf("7")]
    assert reader.pending == 0


def test_byte_by_byte_reads_give_the_same_frames() -> None:
    frames = [asock.uuid_frame(CALL_UUID), asock.audio(tone(2)), asock.hangup()]
    reader = FrameReader()
    out: list[Frame] = []
    for byte in b"".join(f.encode() for f in frames):
        out += reader.feed(bytes([byte]))
    assert out == frames


def test_unknown_kinds_and_broken_payloads_are_refused() -> None:
    with pytest.raises(AudioSocketError, match="unknown frame kind 0x02"):
        FrameReader().feed(b"\x02\x00\x00")
    with pytest.raises(AudioSocketError, match="0x12 is audio above 8 kHz"):
        FrameReader().feed(b"\x12\x00\x02\x00\x00")
    # refused from the header alone: the 3 odd bytes of audio are never waited for
    with pytest.raises(AudioSocketError, match="3 bytes is not a whole number of samples"):
        FrameReader().feed(b"\x10\x00\x03")
    with pytest.raises(AudioSocketError, match="over 640"):
        FrameReader(max_payload=640).feed(b"\x10\x02\x82")
    with pytest.raises(AudioSocketError, match="16 bytes, not 4"):
        FrameReader().feed(b"\x01\x00\x04abcd")
    with pytest.raises(AudioSocketError, match="not b'x'"):
        FrameReader().feed(b"\x03\x00\x01x")
    with pytest.raises(AudioSocketError, match="hang-up frame has no payload"):
        FrameReader().feed(b"\x00\x00\x01\x00")
    with pytest.raises(AudioSocketError, match="over 65535"):
        asock.audio(bytes(65536))
    with pytest.raises(AudioSocketError, match="not a whole number"):
        asock.audio(b"\x00\x00\x00")
    with pytest.raises(AudioSocketError, match="not '12'"):
        asock.dtmf("12")


def test_audio_is_cut_into_20_ms_frames() -> None:
    assert [len(c) for c in frames(bytes(800), asock.SAMPLE_RATE, asock.FRAME_MS)] == [320] * 3
    assert asock.FRAME_BYTES == 320


# -- calls over loopback TCP ---------------------------------------------------------------
class EchoHandler:
    """Plays back every audio frame it hears and notes the digits."""

    def __init__(self) -> None:
        self.uuids: list[uuid.UUID] = []
        self.audio = bytearray()
        self.digits: list[str] = []
        self.end_reason: str | None = None
        self.done = asyncio.Event()

    async def __call__(self, call: AudioSocketCall) -> None:
        self.uuids.append(call.uuid)
        async for event in call.events():
            if isinstance(event, bytes):
                self.audio += event
                await call.send_audio(event, pace=False)
            else:
                self.digits.append(event)
        self.end_reason = call.end_reason
        self.done.set()


async def started(handler: Callable[[AudioSocketCall], Awaitable[None]]) -> asyncio.Server:
    return await asock.serve(handler, "127.0.0.1", 0, pace=False, uuid_timeout=BOUND_S)


def port_of(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def echo_call(server: asyncio.Server, handler: EchoHandler) -> bytes:
    client = await AsteriskClient.connect("127.0.0.1", port_of(server), CALL_UUID)
    for i in range(5):
        await client.send(asock.audio(tone(5)[i * 320 : (i + 1) * 320]))
    await client.send_dtmf("1#")
    echoed = await client.receive_audio(5 * 320, timeout=BOUND_S)
    await client.hangup()
    async with asyncio.timeout(BOUND_S):
        await handler.done.wait()
    return echoed


def test_a_call_end_to_end_over_loopback_tcp() -> None:
    async def scenario() -> bytes:
        handler = EchoHandler()
        server = await started(handler)
        async with server:
            echoed = await echo_call(server, handler)
        assert handler.uuids == [CALL_UUID]
        assert bytes(handler.audio) == tone(5)
        assert handler.digits == ["1", "#"]
        assert handler.end_reason == "hangup"
        return echoed

    assert run(scenario()) == tone(5)


def test_a_peer_without_a_uuid_is_refused_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[bytes, EchoHandler]:
        handler = EchoHandler()
        server = await started(handler)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            writer.write(asock.audio(tone(1)).encode())
            await writer.drain()
            async with asyncio.timeout(BOUND_S):
                after = await reader.read()  # the server closes: end of stream
            writer.close()
            await writer.wait_closed()
            await echo_call(server, handler)
        return after, handler

    with caplog.at_level(logging.WARNING, logger="assistant.voice.audiosocket"):
        after, handler = run(scenario())
    assert after == b""
    assert handler.uuids == [CALL_UUID]  # the refused peer never reached the handler
    assert handler.digits == ["1", "#"]
    refused = [r.getMessage() for r in caplog.records]
    assert any("the first frame is AUDIO, not the call's UUID" in m for m in refused)


def test_the_server_hangs_up_when_the_handler_returns() -> None:
    async def greet(call: AudioSocketCall) -> None:
        await call.send_audio(tone(2))

    async def scenario() -> tuple[bytes, Frame | None, Frame | None]:
        server = await started(greet)
        async with server:
            client = await AsteriskClient.connect("127.0.0.1", port_of(server))
            async with client:
                heard = await client.receive_audio(640, timeout=BOUND_S)
                last = await client.next_frame(timeout=BOUND_S)
                after = await client.next_frame(timeout=BOUND_S)
        return heard, last, after

    heard, last, after = run(scenario())
    assert heard == tone(2)
    assert last == asock.hangup()
    assert after is None


def test_an_asterisk_error_frame_ends_the_call() -> None:
    seen: list[str | None] = []

    async def note(call: AudioSocketCall) -> None:
        async for _ in call.events():
            pass
        seen.append(call.end_reason)

    async def scenario() -> Frame | None:
        server = await started(note)
        async with server:
            client = await AsteriskClient.connect("127.0.0.1", port_of(server))
            async with client:
                await client.send(asock.error(0x01))
                return await client.next_frame(timeout=BOUND_S)

    assert run(scenario()) is None  # the call is over on Asterisk's side: just closed
    assert seen == ["error: the caller hung up"]


def test_a_silent_peer_is_dropped_after_the_uuid_timeout(caplog: pytest.LogCaptureFixture) -> None:
    reached: list[AudioSocketCall] = []

    async def never(call: AudioSocketCall) -> None:
        reached.append(call)

    async def scenario() -> bytes:
        server = await asock.serve(never, "127.0.0.1", 0, uuid_timeout=0.05)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            async with asyncio.timeout(BOUND_S):
                after = await reader.read()
            writer.close()
            await writer.wait_closed()
        return after

    with caplog.at_level(logging.WARNING, logger="assistant.voice.audiosocket"):
        assert run(scenario()) == b""
    assert reached == []
    assert any("no UUID frame within 0.05 s" in r.getMessage() for r in caplog.records)


def test_paced_audio_pauses_once_a_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(asock, "_pause", pause)

    async def play(call: AudioSocketCall) -> None:
        await call.send_audio(bytes(800))  # the server's default: paced

    async def scenario() -> bytes:
        server = await asock.serve(play, "127.0.0.1", 0)
        async with server:
            client = await AsteriskClient.connect("127.0.0.1", port_of(server))
            async with client:
                return await client.receive_audio(960, timeout=BOUND_S)

    assert run(scenario()) == bytes(960)  # 320 + 320 + 160, padded with silence to 320
    assert len(pauses) == 3
