"""The live hand-off under a busy hour: residents on the web widget ask the bot, ask for a
person, chat with an agent and rate the service, while agents work their inboxes over HTTP.

    .venv/bin/python bench/agent_bridge.py [--agents 50] [--residents 500] [--minutes 3]
        [--exchanges 3] [--capacity 3] [--seed 1] [--database-url postgresql+psycopg://…]

Starts one real `banshi serve` (no Rasa: the chat's direct path; BANSHI_AGENT_HOURS=always so
a request for a person is queued, not turned into a ticket) on a throwaway data directory,
SQLite unless --database-url names a PostgreSQL server (a fresh database is made on it for
the run and dropped afterwards; `scripts/pg-test start` prints a URL for a throwaway one).

The busy hour is compressed into --minutes: the residents arrive at uniformly random times
across that window. Each opens the widget's WebSocket, asks a question (a bot answer), says
“转人工”, waits for “工作人员已接入”, then sends --exchanges tagged messages, each after the
agent answered the previous one and a short think time, and answers the closing rating
request with “满意” when the chat was closed as resolved.

The agents (accounts made before the start) log in, go online with --capacity, and poll
about every 0.5–1 s: their chats, then each chat's new messages (?after=); they greet a new
chat, answer every resident message with a tagged text, and once they answered --exchanges
messages close the chat with a ticket (resolved and not resolved in turn).

Measured, all on this process's clock: agent→resident delivery (the agent's POST sent → the
resident's WebSocket has it), queue wait (“转人工” sent → “工作人员已接入” received), resident
message → first agent fetch that contains it (includes the agents' poll interval), the bot's
replies, the HTTP calls per endpoint, WebSocket disconnects. Verified: every message arrives
once and only at its own end, every closed chat made one ticket with its own 8-digit number
(the resident was told the same number), the ratings were recorded. Timings are printed,
not asserted; the exit code is 1 only when a correctness check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import sys
import tempfile
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import fresh_database, percentile, served
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

PASSWORD = "bench-agent-password"
QUESTIONS = ["居住证怎么办？", "社保卡丢了怎么补？", "大厅几点开门？", "身份证过期了怎么换？"]
TOPICS = ["居住证", "社保卡补办", "身份证换领", "营业执照", "医保转移"]
AGENT_TAG = re.compile(r"\[a\d+-c\d+-m\d+\]")
RESIDENT_TAG = re.compile(r"\[r\d+-m\d+\]")
NUMBER_IN_TEXT = re.compile(r"受理号(\d+)")
JOINED = "工作人员已接入"
RATED = "感谢您的评价"
GOAL_MS = 200.0


# -- what the run records ------------------------------------------------------------------
@dataclass
class Closed:
    chat_id: int
    conv: str
    number: str
    resolved: bool
    agent: str


@dataclass
class Record:
    agent_sent: dict[str, tuple[float, str]] = field(default_factory=dict)  # tag → (t, conv)
    agent_failed: set[str] = field(default_factory=set)  # POST refused or errored
    # tag → (t, receiving conversation, message id) for every time a resident got it
    agent_got: dict[str, list[tuple[float, str, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    resident_sent: dict[str, tuple[float, str]] = field(default_factory=dict)
    resident_seen: dict[str, list[tuple[float, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    queue_wait: list[float] = field(default_factory=list)
    bot_reply: list[float] = field(default_factory=list)  # WebSocket message → its reply
    closed: dict[str, Closed] = field(default_factory=dict)  # by conversation
    told: dict[str, tuple[str, bool]] = field(default_factory=dict)  # conv → (number, resolved)
    rated: set[str] = field(default_factory=set)  # conversations thanked for the rating
    http_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    http_errors: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    error_samples: list[str] = field(default_factory=list)
    ws_disconnects: int = 0
    ws_errors: list[str] = field(default_factory=list)
    odd: list[str] = field(default_factory=list)  # unexpected replies
    stage: dict[int, str] = field(default_factory=dict)  # resident → where they are
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core during the run
    loop_lag: list[float] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.odd) < 1000:
            self.odd.append(text)


class Http:
    """The agents' HTTP client: times and counts every call by endpoint."""

    def __init__(self, base: str, rec: Record) -> None:
        self.base, self.rec = base, rec
        # idle connections are dropped before the server's keep-alive timeout (uvicorn: 5 s),
        # else a request sent as the server closes one fails (ReadError), POSTs unretried
        limits = httpx.Limits(
            max_connections=200, max_keepalive_connections=200, keepalive_expiry=2.0
        )
        self.client = httpx.AsyncClient(base_url=base, timeout=30, limits=limits)

    async def call(
        self, endpoint: str, method: str, path: str, token: str = "", **kw: Any
    ) -> Any | None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        t0 = time.perf_counter()
        try:
            r = await self.client.request(method, path, headers=headers, **kw)
        except httpx.HTTPError as exc:
            self.rec.http_errors[endpoint][type(exc).__name__] += 1
            self._sample(f"{endpoint}: {type(exc).__name__} {exc}")
            return None
        finally:
            self.rec.http_ms[endpoint].append((time.perf_counter() - t0) * 1000)
        if r.status_code >= 400:
            self.rec.http_errors[endpoint][str(r.status_code)] += 1
            self._sample(f"{endpoint}: {r.status_code} {r.text[:200]}")
            return None
        return r.json()

    def _sample(self, text: str) -> None:
        if len(self.rec.error_samples) < 20:
            self.rec.error_samples.append(text)


# -- agents ---------------------------------------------------------------------------------
@dataclass
class Held:
    conv: str
    after: int = 0
    greeted: bool = False
    answered: set[str] = field(default_factory=set)
    sent: int = 0


async def agent(
    http: Http,
    rec: Record,
    n: int,
    token: str,
    exchanges: int,
    rng: random.Random,
    stop: asyncio.Event,
) -> None:
    name = f"agent{n:03d}"
    held: dict[int, Held] = {}
    closes = 0
    while not stop.is_set():
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rng.uniform(0.5, 1.0))
            break
        mine = await http.call("GET chats (mine)", "GET", "/api/agent/chats", token)
        if mine is None:
            continue
        for chat in mine["chats"]:
            chat_id = int(chat["id"])
            h = held.setdefault(chat_id, Held(chat["conversation_id"]))
            view = await http.call(
                "GET chat ?after=",
                "GET",
                f"/api/agent/chats/{chat_id}",
                token,
                params={"after": h.after},
            )
            if view is None:
                continue
            t_fetch = time.perf_counter()
            fresh: list[str] = []
            for m in view["messages"]:
                h.after = max(h.after, int(m["id"]))
                found = RESIDENT_TAG.search(m["text"]) if m["author"] == "resident" else None
                if found:
                    rec.resident_seen[found.group()].append((t_fetch, h.conv))
                    if found.group() not in h.answered:
                        fresh.append(found.group())
            if not h.greeted:
                h.greeted = await say(http, rec, token, n, chat_id, h, "您好，我是工作人员，请讲。")
            for rtag in fresh:
                await asyncio.sleep(rng.uniform(0.05, 0.3))  # typing the answer
                if await say(http, rec, token, n, chat_id, h, f"关于{rtag}：请带身份证原件。"):
                    h.answered.add(rtag)
            if len(h.answered) >= exchanges:
                resolved = closes % 2 == 0
                body = {
                    "category": "咨询",
                    "resolved": resolved,
                    "result": "已当场答复：携带身份证原件到综合窗口办理。" if resolved else "",
                    "content": "居民在线咨询，需转部门核实。" if not resolved else "",
                    "phone": f"138{rng.randrange(10**8):08d}",
                }
                out = await http.call(
                    "POST close", "POST", f"/api/agent/chats/{chat_id}/close", token, json=body
                )
                if out is not None:
                    closes += 1
                    rec.closed[h.conv] = Closed(chat_id, h.conv, out["number"], resolved, name)
                    del held[chat_id]


async def say(
    http: Http, rec: Record, token: str, n: int, chat_id: int, h: Held, text: str
) -> bool:
    tag = f"[a{n}-c{chat_id}-m{h.sent}]"
    h.sent += 1
    # recorded before sending: the push may reach the resident before the POST returns
    rec.agent_sent[tag] = (time.perf_counter(), h.conv)
    out = await http.call(
        "POST reply",
        "POST",
        f"/api/agent/chats/{chat_id}/messages",
        token,
        json={"text": f"{tag} {text}"},
    )
    if out is None:
        rec.agent_failed.add(tag)
    elif not out.get("delivered", False):
        rec.note(f"reply {tag} not delivered: {out}")
    return out is not None


# -- residents ------------------------------------------------------------------------------
class Widget:
    """One resident's widget: a WebSocket that reconnects (catching up from the history, as
    the page would) and the events the resident waits for."""

    def __init__(self, base: str, session: str, rec: Record) -> None:
        self.base, self.session, self.rec = base, session, rec
        self.url = base.replace("http://", "ws://") + f"/api/chat/ws?session={session}"
        self.ws: ClientConnection | None = None
        self.conv = ""
        self.replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.answered: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.joined = asyncio.Event()
        self.joined_at = 0.0
        self.closing: asyncio.Future[tuple[str, bool]] = asyncio.get_running_loop().create_future()
        self.last_id = 0
        self.connected = asyncio.Event()
        self.done = False
        self.reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await connect(self.url, max_size=2**20, open_timeout=30)
        self.connected.set()
        self.reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        self.done = True
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with suppress(asyncio.CancelledError):
                await self.reader

    async def _read(self) -> None:
        while not self.done:
            assert self.ws is not None
            try:
                async for raw in self.ws:
                    self._frame(json.loads(raw))
            except ConnectionClosed as exc:
                if self.done:
                    return
                self.rec.ws_errors.append(f"{self.session}: {exc}")
            if self.done:
                return
            self.rec.ws_disconnects += 1
            self.connected.clear()
            while not self.done:
                try:
                    self.ws = await connect(self.url, max_size=2**20, open_timeout=30)
                    break
                except (OSError, WebSocketException, TimeoutError) as exc:
                    self.rec.ws_errors.append(f"{self.session} reconnect: {exc}")
                    await asyncio.sleep(1)
            await self._catch_up()
            self.connected.set()

    async def _catch_up(self) -> None:
        """What was pushed while the line was down: from the history, as the page does."""
        async with httpx.AsyncClient(base_url=self.base, timeout=30) as c:
            r = await c.get("/api/chat/history", params={"session": self.session})
        rows = [m for m in r.json()["messages"] if m["id"] > self.last_id]
        pushed = [m for m in rows if m["author"] in ("agent", "system")]
        if pushed:
            self._frame({"type": "push", "messages": pushed})

    def _frame(self, data: dict[str, Any]) -> None:
        now = time.perf_counter()
        kind = data.get("type")
        if kind == "reply":
            self.conv = self.conv or data.get("conversation", "")
            waiting = self.replies.get(data.get("client_id") or "")
            if waiting is not None and not waiting.done():
                waiting.set_result(data)
        elif kind == "push":
            for m in data["messages"]:
                self.last_id = max(self.last_id, int(m["id"]))
                self._pushed(m, now)
        elif kind == "error":
            self.rec.note(f"{self.session}: error frame {data}")

    def _pushed(self, m: dict[str, Any], now: float) -> None:
        text = m["text"]
        if m["author"] == "agent":
            tag = AGENT_TAG.search(text)
            if tag is None:
                self.rec.note(f"{self.session}: untagged agent message {text!r}")
                return
            self.rec.agent_got[tag.group()].append((now, self.conv, int(m["id"])))
            answered = RESIDENT_TAG.search(text)
            if answered:
                self.answered[answered.group()].set()
        elif text.startswith(JOINED):
            if not self.joined.is_set():
                self.joined_at = now
                self.joined.set()
        elif (found := NUMBER_IN_TEXT.search(text)) and not self.closing.done():
            self.closing.set_result((found.group(1), text.startswith("本次服务已结束")))

    async def say(self, text: str) -> dict[str, Any]:
        """Send a message and wait for the server's reply frame to it (retried with the same
        client id across a reconnect, so the server takes it once)."""
        client_id = secrets.token_hex(8)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[client_id] = future
        t0 = time.perf_counter()
        payload = json.dumps({"text": text, "client_id": client_id}, ensure_ascii=False)
        while True:
            await self.connected.wait()
            assert self.ws is not None
            try:
                await self.ws.send(payload)
                reply = await asyncio.wait_for(asyncio.shield(future), 30)
                break
            except (ConnectionClosed, TimeoutError):
                await asyncio.sleep(0.5)  # the reader reconnects; send again
        del self.replies[client_id]
        reply["elapsed_ms"] = (time.perf_counter() - t0) * 1000
        return reply


async def resident(
    base: str,
    rec: Record,
    n: int,
    start_s: float,
    exchanges: int,
    rng: random.Random,
    run_id: str,
) -> None:
    rec.stage[n] = "not arrived"
    await asyncio.sleep(start_s)
    rec.stage[n] = "connecting"
    w = Widget(base, f"agentbench-{run_id}-r{n:04d}", rec)
    await w.open()
    try:
        rec.stage[n] = "asking the bot"
        reply = await w.say(rng.choice(QUESTIONS))
        rec.bot_reply.append(reply["elapsed_ms"])
        if not reply["messages"]:
            rec.note(f"r{n}: no bot answer to the question")
        rec.stage[n] = "asking for a person"
        t_escalate = time.perf_counter()
        reply = await w.say("转人工")
        rec.bot_reply.append(reply["elapsed_ms"])
        said = " ".join(m["text"] for m in reply["messages"])
        if "转接工作人员" not in said and "已为您接通工作人员" not in said:
            rec.note(f"r{n}: unexpected escalation reply {said[:80]!r}")
        rec.stage[n] = "in the queue"
        await w.joined.wait()
        rec.queue_wait.append((w.joined_at - t_escalate) * 1000)
        for k in range(1, exchanges + 1):
            await asyncio.sleep(rng.uniform(0.5, 2.0))  # reading, typing
            rtag = f"[r{n}-m{k}]"
            rec.stage[n] = f"waiting for the answer to message {k}"
            rec.resident_sent[rtag] = (time.perf_counter(), w.conv)
            reply = await w.say(f"{rtag} 请问{rng.choice(TOPICS)}还要带什么材料？")
            if reply["messages"]:
                rec.note(f"r{n}: the bot answered while a person held the chat")
            await w.answered[rtag].wait()
        rec.stage[n] = "waiting for the chat to be closed"
        number, resolved = await w.closing
        rec.told[w.conv] = (number, resolved)
        if resolved:
            rec.stage[n] = "rating"
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            reply = await w.say("满意")
            said = " ".join(m["text"] for m in reply["messages"])
            if said.startswith(RATED):
                rec.rated.add(w.conv)
            else:
                rec.note(f"r{n}: rating reply {said[:80]!r}")
        rec.stage[n] = "done"
    finally:
        await w.close()


# -- the run --------------------------------------------------------------------------------
async def lag_monitor(rec: Record, stop: asyncio.Event) -> None:
    """How late this process's event loop wakes up: the client's own share of the times."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(0.1)
        rec.loop_lag.append((time.perf_counter() - t0 - 0.1) * 1000)


def cpu_seconds() -> dict[str, float]:
    """CPU time used so far by this process and by the server (its child; Linux /proc)."""
    out = {"bench": time.process_time(), "server": 0.0}
    tick = os.sysconf("SC_CLK_TCK")
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            with suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                out["server"] += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return out


async def run(base: str, args: argparse.Namespace) -> int:
    rec = Record()
    http = Http(base, rec)
    rng = random.Random(args.seed)
    run_id = secrets.token_hex(4)
    stop = asyncio.Event()
    tokens: list[str] = []
    for i in range(args.agents):
        out = await http.call(
            "POST login",
            "POST",
            "/api/auth/login",
            json={"username": f"agent{i:03d}", "password": PASSWORD},
        )
        if out is None:
            raise SystemExit(f"agent{i:03d} cannot log in: {rec.error_samples[-1:]}")
        tokens.append(out["token"])
    for token in tokens:
        state = {"status": "online", "capacity": args.capacity}
        if await http.call("PUT state", "PUT", "/api/agent/state", token, json=state) is None:
            raise SystemExit(f"cannot go online: {rec.error_samples[-1:]}")

    window = args.minutes * 60
    limit_s = args.hard_limit or window + 180
    arrivals = sorted(rng.uniform(0, window) for _ in range(args.residents))
    print(
        f"busy hour compressed into {args.minutes:g} min: {args.residents} residents arriving "
        f"at uniformly random times ({args.residents / args.minutes:.0f}/min), "
        f"{args.agents} agents × capacity {args.capacity}, {args.exchanges} exchanges a chat; "
        f"hard limit {limit_s / 60:g} min",
        flush=True,
    )
    monitor = asyncio.create_task(lag_monitor(rec, stop))
    agents = [
        asyncio.create_task(
            agent(http, rec, i, tokens[i], args.exchanges, random.Random(rng.random()), stop)
        )
        for i in range(args.agents)
    ]
    residents = [
        asyncio.create_task(
            resident(base, rec, i, t, args.exchanges, random.Random(rng.random()), run_id)
        )
        for i, t in enumerate(arrivals)
    ]
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    done, pending = await asyncio.wait(residents, timeout=limit_s)
    wall = time.perf_counter() - t0
    rec.cpu = {k: (v - cpu0.get(k, 0.0)) / wall * 100 for k, v in cpu_seconds().items()}
    rec.cpu["load"] = os.getloadavg()[0]
    for task in pending:
        task.cancel()
    crashed = [t.exception() for t in done if not t.cancelled() and t.exception()]
    stop.set()
    await asyncio.gather(*agents, monitor, *pending, return_exceptions=True)
    offline = {"status": "offline"}
    await asyncio.gather(
        *(http.call("PUT state", "PUT", "/api/agent/state", t, json=offline) for t in tokens)
    )
    failures = await report(http, rec, tokens[0], args, wall, crashed, bool(pending))
    await http.client.aclose()
    return 1 if failures else 0


def pad(label: str, width: int) -> str:
    """Left-justified by display width: a Chinese character takes two columns."""
    shown = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in label)
    return label + " " * max(0, width - shown)


def stats(values: list[float]) -> str:
    if not values:
        return f"{0:>6} {'-':>8} {'-':>8} {'-':>8} {'-':>8}"
    return (
        f"{len(values):>6} {percentile(values, 50):>8.0f} {percentile(values, 95):>8.0f} "
        f"{percentile(values, 99):>8.0f} {max(values):>8.0f}"
    )


async def report(
    http: Http,
    rec: Record,
    token: str,
    args: argparse.Namespace,
    wall: float,
    crashed: list[BaseException | None],
    timed_out: bool,
) -> list[str]:
    failures: list[str] = []

    def check(ok: bool, label: str) -> None:
        print(f"  [{'ok' if ok else 'FAIL'}] {label}")
        if not ok:
            failures.append(label)

    # agent → resident
    delivery: list[float] = []
    lost = duplicated = repushed = misrouted = 0
    for tag, (t_sent, conv) in rec.agent_sent.items():
        got = rec.agent_got.get(tag, [])
        if tag in rec.agent_failed and not got:
            continue
        if not got:
            lost += 1
            continue
        ids = {i for _, _, i in got}
        duplicated += len(ids) > 1  # stored twice: the resident sees it twice
        repushed += len(got) > len(ids)  # the same stored message sent again
        misrouted += any(c != conv for _, c, _ in got)
        delivery.append((got[0][0] - t_sent) * 1000)
    unknown = sum(1 for tag in rec.agent_got if tag not in rec.agent_sent)
    # resident → agent
    visible: list[float] = []
    unseen = seen_twice = seen_elsewhere = 0
    for tag, (t_sent, conv) in rec.resident_sent.items():
        seen = rec.resident_seen.get(tag, [])
        if not seen:
            unseen += 1
            continue
        seen_twice += len(seen) > 1
        seen_elsewhere += any(c != conv for _, c in seen)
        visible.append((seen[0][0] - t_sent) * 1000)
    stray = sum(1 for tag in rec.resident_seen if tag not in rec.resident_sent)

    finished = sum(1 for s in rec.stage.values() if s == "done")
    http_calls = sum(len(v) for v in rec.http_ms.values())  # during the run

    # tickets (looked up before the table so that their calls are in it)
    numbers = [c.number for c in rec.closed.values()]
    totals = await http.call("GET tickets", "GET", "/api/tickets", token, params={"limit": 1})
    made = int(totals["total"]) if totals else -1
    told_same = sum(
        1
        for conv, c in rec.closed.items()
        if rec.told.get(conv) == (c.number, c.resolved)  # the resident heard this number
    )
    resolved = [c for c in rec.closed.values() if c.resolved]
    unresolved = [c for c in rec.closed.values() if not c.resolved]
    sample_rng = random.Random(args.seed)
    sample = sample_rng.sample(resolved, min(args.sample, len(resolved)))
    sample += sample_rng.sample(unresolved, min(args.sample // 4, len(unresolved)))
    bad_tickets: list[str] = []
    for c in sample:
        if len(bad_tickets) >= 10:
            break  # the server is in trouble; enough said
        t = await http.call("GET ticket", "GET", f"/api/tickets/{c.number}", token)
        want = ("closed", "满意") if c.resolved else ("pending", None)
        if t is None or (t["status"], t["satisfaction"]) != want or t["conversation_id"] != c.conv:
            seen_as = t and (t["status"], t["satisfaction"], t["conversation_id"] == c.conv)
            bad_tickets.append(f"{c.number}: want {want}, got {seen_as}")

    print(f"\n{'measure (ms)':<44} {'n':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
    rows = [
        ("agent→resident delivery (POST sent → WS)", delivery),
        ("queue wait (转人工 sent → 工作人员已接入)", rec.queue_wait),
        ("resident msg → in an agent fetch (polling)", visible),
        ("bot reply over WS (question, 转人工, 满意)", rec.bot_reply),
    ]
    rows += [(f"HTTP {name}", ms) for name, ms in sorted(rec.http_ms.items())]
    rows.append(("bench client loop lag (its own share)", rec.loop_lag))
    for label, values in rows:
        print(f"{pad(label, 44)} {stats(values)}")
    errors = {name: sum(c.values()) for name, c in rec.http_errors.items()}
    print(
        f"\nwall {wall:.0f} s; residents finished {finished}/{args.residents}; "
        f"chats closed {len(rec.closed)} ({len(rec.closed) / wall * 60:.0f}/min); "
        f"agent messages {len(rec.agent_sent)} ({len(delivery) / wall:.1f}/s delivered); "
        f"resident messages {len(rec.resident_sent)}; HTTP calls {http_calls} "
        f"({http_calls / wall:.0f}/s); WebSocket disconnects {rec.ws_disconnects}"
    )
    if rec.cpu:
        print(
            f"CPU during the run (% of one core): server {rec.cpu['server']:.0f}, "
            f"this bench {rec.cpu['bench']:.0f}; machine load average {rec.cpu['load']:.1f} "
            f"on {os.cpu_count()} CPUs (other work on the machine slows both)"
        )
    print(
        "HTTP errors per endpoint: "
        + (", ".join(f"{k} {dict(rec.http_errors[k])}" for k in errors) if errors else "none")
    )
    for text in rec.error_samples[:5]:
        print(f"  e.g. {text}")
    for text in rec.odd[:5]:
        print(f"  odd: {text}")
    for text in rec.ws_errors[:3]:
        print(f"  ws: {text}")
    if timed_out or finished < args.residents:
        where = Counter(s for s in rec.stage.values() if s != "done")
        print(f"UNFINISHED at the hard limit: {dict(where)}")
    for exc in crashed[:3]:
        print(f"  resident crashed: {exc!r}")

    print("\ncorrectness")
    check(
        lost == duplicated == repushed == misrouted == unknown == 0,
        f"agent messages received by their resident exactly once: {len(delivery)} of "
        f"{len(rec.agent_sent) - len(rec.agent_failed)} "
        f"(lost {lost}, duplicated {duplicated}, pushed twice {repushed}, misrouted {misrouted}, "
        f"unknown {unknown})",
    )
    check(
        unseen == 0 and seen_twice == 0 and seen_elsewhere == 0 and stray == 0,
        f"resident messages seen by their agent exactly once: {len(visible)} of "
        f"{len(rec.resident_sent)} (unseen {unseen}, twice {seen_twice}, "
        f"in another chat {seen_elsewhere}, stray {stray})",
    )
    check(
        len(numbers) == len(set(numbers)) and all(re.fullmatch(r"\d{8}", x) for x in numbers),
        f"closed chats have distinct 8-digit ticket numbers: {len(set(numbers))} of {len(numbers)}",
    )
    check(made == len(rec.closed), f"tickets made = chats closed: {made} = {len(rec.closed)}")
    check(
        told_same == len(rec.closed),
        f"residents told their own number and outcome: {told_same} of {len(rec.closed)}",
    )
    rated = sum(1 for c in resolved if c.conv in rec.rated)
    check(
        rated == len(resolved),
        f"resolved chats rated 满意 and thanked: {rated} of {len(resolved)}",
    )
    check(
        not bad_tickets,
        f"ticket sample via GET /api/tickets/{{number}} (status, satisfaction, conversation): "
        f"{len(sample) - len(bad_tickets)} of {len(sample)} right"
        + (f"; e.g. {bad_tickets[:3]}" if bad_tickets else ""),
    )
    check(not rec.odd, f"no unexpected replies or frames: {len(rec.odd)}")
    check(not errors, f"no HTTP errors: {sum(errors.values())}")
    check(
        finished == args.residents and not crashed,
        f"every resident finished: {finished} of {args.residents}",
    )
    if delivery:
        p95 = percentile(delivery, 95)
        print(
            f"\nagent→resident delivery p95 goal < {GOAL_MS:.0f} ms: "
            f"{'met' if p95 < GOAL_MS else 'NOT met'} ({p95:.0f} ms)"
        )
    return failures


# -- set-up ---------------------------------------------------------------------------------
def make_agents(data: Path, database_url: str, count: int) -> None:
    """The accounts, before the server starts (this migrates the database). In-process with
    the code `banshi users add` runs: fifty CLI start-ups would take minutes."""
    from banshi.auth import create_user
    from banshi.db import Database
    from banshi.settings import Settings

    settings = Settings(data_dir=data, database_url=database_url)
    db = Database(settings.resolved_database_url)
    db.upgrade()
    with db.session() as s:
        for i in range(count):
            create_user(s, f"agent{i:03d}", PASSWORD, "agent")
    db.dispose()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it comes with uvicorn): less of the client in the times."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--residents", type=int, default=500)
    ap.add_argument("--minutes", type=float, default=3.0, help="the busy hour compressed")
    ap.add_argument("--exchanges", type=int, default=3, help="resident messages per chat")
    ap.add_argument("--capacity", type=int, default=3, help="chats an agent holds at once")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sample", type=int, default=100, help="resolved tickets to look up")
    ap.add_argument("--database-url", default="", help="postgresql+psycopg://… (else SQLite)")
    ap.add_argument(
        "--hard-limit", type=float, default=0, help="seconds (default: --minutes + 3 min)"
    )
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="bench-agents")) / "data"
    with fresh_database(args.database_url) if args.database_url else nullcontext("") as url:
        t0 = time.perf_counter()
        make_agents(data, url, args.agents)
        env = {"BANSHI_AGENT_HOURS": "always", "BANSHI_CHAT_RATE_PER_MINUTE": "1000"}
        if url:
            env["BANSHI_DATABASE_URL"] = url
        with served(with_rasa=False, extra_env=env, data=data) as base:
            db = "PostgreSQL" if url else "SQLite"
            print(
                f"server {base} ({db}, no Rasa: the direct path), {args.agents} agents made "
                f"and server ready in {time.perf_counter() - t0:.0f} s; log {data.parent}",
                flush=True,
            )
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                code = runner.run(run(base, args))
    sys.exit(code)


if __name__ == "__main__":
    main()
