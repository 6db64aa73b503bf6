"""The simulated clients: residents on the chat widget, agents at their inbox, lobby kiosks
and counter clerks. Each has its own loopback source address (127.0.x.y), so a per-client-IP
rate limit (and nginx's X-Forwarded-For) sees one client per address, as in the hall.

Everything the server acknowledged is written to the :class:`Ledger` (the invariants check
it against the database afterwards); every request is timed into :class:`Metrics`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import re
import secrets
import ssl
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from bench.load.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
SAMPLE_FAQ = REPO / "knowledge_base" / "sample" / "faq"

# What the server says (assistant/replies.py, ticket_bridge/live.py)
JOINED = "工作人员已接入"
ENDED_RESOLVED = "本次服务已结束"
ENDED_TICKET = "您的问题已登记为工单"
AGENT_LEFT = "工作人员暂时离开"
QUEUED = ("正在为您转接工作人员", "已为您接通工作人员")
ASK_PERSON = "转人工"
RATING = "满意"


def monotonic() -> float:
    return time.monotonic()


# -- what the server acknowledged ---------------------------------------------------------------
@dataclass
class TicketAck:
    service: str
    number: str
    token: str
    day: dt.date
    kiosk: str
    at: float


@dataclass
class CallAck:
    window: str
    clerk: str
    number: str
    service: str
    day: dt.date
    at: float
    outcome: str = ""  # "done" / "no_show" once that was acknowledged


@dataclass
class ChatAck:
    session: str
    conversation: str
    client_id: str
    text: str
    via: str  # "ws" | "rest"
    duplicate: bool
    bot_messages: int
    sent_at: float
    acked_at: float


@dataclass
class AgentReply:
    marker: str
    agent: str
    chat_id: int
    conversation: str
    sent_at: float
    acked_at: float | None = None  # None: the POST failed; it may still have been stored


@dataclass
class Delivery:
    session: str
    message_id: int
    at: float
    catch_up: bool  # arrived on a connection opened after the reply was sent


@dataclass
class Ledger:
    run_id: str
    t0: float = field(default_factory=monotonic)
    tickets: list[TicketAck] = field(default_factory=list)
    calls: list[CallAck] = field(default_factory=list)
    chat_acks: list[ChatAck] = field(default_factory=list)
    chat_unacked: list[tuple[str, str, str]] = field(default_factory=list)  # session, id, text
    sessions: dict[str, str] = field(default_factory=dict)  # session -> conversation
    residents: set[str] = field(default_factory=set)  # every session of the run
    agent_replies: dict[str, AgentReply] = field(default_factory=dict)  # marker ->
    deliveries: dict[str, list[Delivery]] = field(default_factory=lambda: defaultdict(list))
    unknown_markers: list[tuple[str, str]] = field(default_factory=list)  # (marker, session)
    chats_closed: list[tuple[int, str, str]] = field(default_factory=list)  # id, conv, number
    reconnects: Counter[str] = field(default_factory=Counter)  # session -> count
    close_codes: Counter[str] = field(default_factory=Counter)

    def rel(self, t: float) -> float:
        return t - self.t0

    def acked_replies(self) -> list[AgentReply]:
        return [r for r in self.agent_replies.values() if r.acked_at is not None]


@dataclass
class Config:
    """How the simulated clients behave (seconds; ranges are uniform)."""

    think_s: tuple[float, float] = (4.0, 12.0)  # a resident between two messages
    escalate_share: float = 0.3  # residents who ask for a person (once) during the run
    kiosk_gap_s: tuple[float, float] = (1.0, 3.0)  # between two residents at a kiosk
    print_tickets: bool = True  # kiosks print (on the server's printer, dummy:// in tests)
    serve_s: tuple[float, float] = (0.3, 1.5)  # a clerk serving a called number
    no_show_share: float = 0.05
    # an agent's poll of its chats (then the queue, then each chat's new messages): ~200
    # requests a minute, a third of the API's "staff" budget per address (banshi/limits.py)
    agent_poll_s: tuple[float, float] = (1.0, 2.0)
    agent_capacity: int = 3
    replies_per_chat: int = 3  # an agent closes a chat after this many replies of theirs
    max_chat_s: float = 90.0  # … or when it is this old
    idle_chat_s: float = 30.0  # … or when the resident has said nothing for this long
    http_timeout_s: float = 15.0
    ws_reply_timeout_s: float = 20.0  # no reply on the socket: resend over REST (same id)
    give_up_s: float = 60.0  # a chat message unacknowledged this long counts as failed
    # first delay, cap (doubling, ±25 %); the widget caps at 30 s (chat.html), which would
    # measure its backoff rather than the server's recovery
    reconnect_s: tuple[float, float] = (0.5, 4.0)


class Context:
    def __init__(self, base_url: str, config: Config, metrics: Metrics, ledger: Ledger) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = "ws" + self.base_url[len("http") :]
        self.config = config
        self.metrics = metrics
        self.ledger = ledger
        self.stopping = asyncio.Event()  # no new work: finish what is pending
        # one TLS context for all clients (httpx makes one per transport otherwise: slow)
        self.ssl = ssl.create_default_context()

    async def pause(self, low: float, high: float, rng: random.Random) -> bool:
        """Sleep a random while; False if the run is stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), rng.uniform(low, high))
        except TimeoutError:
            return True
        return False


def addresses(base: str, count: int) -> list[str]:
    """``count`` loopback addresses from ``base`` on (127.a.b.c, c in 1..250)."""
    parts = [int(p) for p in base.split(".")]
    if parts[0] != 127:
        raise ValueError(f"source addresses must be loopback (127.x.y.z), not {base}")
    start = (parts[1] << 16) + (parts[2] << 8) + parts[3]
    out: list[str] = []
    n = start
    while len(out) < count:
        a, b, c = (n >> 16) & 255, (n >> 8) & 255, n & 255
        if 1 <= c <= 250:
            out.append(f"127.{a}.{b}.{c}")
        n += 1
    return out


def questions(faq_dir: Path = SAMPLE_FAQ) -> list[str]:
    """Residents' questions: the sample knowledge base's FAQ questions and their variants,
    without those the bot takes as a request for a person, a complaint or a suggestion."""
    from assistant import direct, skills

    out: list[str] = []
    for path in sorted(faq_dir.glob("*.yml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            out += [entry["question"], *(entry.get("variants") or [])]
    special = (direct.HUMAN, direct.COMPLAINT, direct.SUGGESTION, direct.PROGRESS)
    return [
        q
        for q in out
        if not any(p.search(q) for p in special) and not skills.TICKET_NUMBER.search(q)
    ]


def error_body(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {}
    err = body.get("error") if isinstance(body, dict) else None
    return err if isinstance(err, dict) else {}


def _kind(exc: BaseException) -> str:
    if isinstance(exc, InvalidStatus):
        return str(exc.response.status_code)
    return type(exc).__name__


@dataclass
class Reply:
    outcome: str  # "ok", "refused", "error"
    response: httpx.Response | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def status(self) -> int:
        return self.response.status_code if self.response is not None else 0

    def json(self) -> Any:
        assert self.response is not None
        return self.response.json()


class Http:
    """One client's HTTP: its own source address and connection pool; every call timed."""

    def __init__(self, ctx: Context, address: str) -> None:
        self.ctx, self.address = ctx, address
        # idle connections dropped before the server's keep-alive timeout (uvicorn: 5 s),
        # else a request sent as the server closes one fails (ReadError), and POSTs are
        # not retried
        transport = httpx.AsyncHTTPTransport(
            verify=ctx.ssl,
            local_address=address,
            retries=0,
            limits=httpx.Limits(
                max_connections=8, max_keepalive_connections=4, keepalive_expiry=2.0
            ),
        )
        self.client = httpx.AsyncClient(
            base_url=ctx.base_url,
            transport=transport,
            timeout=ctx.config.http_timeout_s,
            trust_env=False,
        )
        self.token = ""

    async def call(
        self,
        op: str,
        method: str,
        path: str,
        refuse: Callable[[httpx.Response], str | None] | None = None,
        **kw: Any,
    ) -> Reply:
        """``refuse`` names the expected refusals (a 409 that is an answer, not a failure)."""
        metrics = self.ctx.metrics
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        start = monotonic()
        try:
            r = await self.client.request(method, path, headers=headers, **kw)
        except httpx.HTTPError as exc:
            metrics.error(op, start, type(exc).__name__)
            return Reply("error")
        if r.status_code < 400:
            metrics.ok(op, start)
            return Reply("ok", r)
        reason = refuse(r) if refuse else None
        if reason:
            metrics.refused(op, start, reason)
            return Reply("refused", r)
        metrics.error(op, start, str(r.status_code))
        if r.status_code == 429:  # rate-limited: wait as told (a few seconds at most)
            try:
                wait = float(r.headers.get("retry-after", "1"))
            except ValueError:
                wait = 1.0
            await asyncio.sleep(min(max(wait, 0.2), 5.0))
        return Reply("error", r)

    async def aclose(self) -> None:
        await self.client.aclose()


def conflict_reason(r: httpx.Response) -> str | None:
    """A 409's reason (cannot_issue's ``reason`` field, else the error code)."""
    if r.status_code != 409:
        return None
    err = error_body(r)
    fields = err.get("fields") or {}
    return str(fields.get("reason") or ("empty" if fields.get("empty") else err.get("code")))


# -- residents on the chat widget ---------------------------------------------------------------
@dataclass
class Pending:
    client_id: str
    text: str
    sent_at: float
    future: asyncio.Future[tuple[dict[str, Any], str]]
    via_ws: bool = False
    ws_sent_at: float = 0.0
    rest: asyncio.Task[None] | None = None


class ChatUser:
    """A resident with the widget open: a WebSocket (reconnected with backoff, catching up
    with ``?after=``), a question every few seconds from the sample FAQ, once perhaps
    “转人工”, then tagged messages for the agent; a message unanswered on the socket goes
    over REST with the same client id, as the widget does (assistant/pages/chat.html)."""

    def __init__(
        self,
        ctx: Context,
        n: int,
        address: str,
        pool: list[str],
        escalate_at: float | None,
        rng: random.Random,
    ) -> None:
        self.ctx, self.n, self.address, self.pool, self.rng = ctx, n, address, pool, rng
        self.escalate_at = escalate_at  # monotonic time to ask for a person, or None
        self.session = f"load-{ctx.ledger.run_id}-u{n:04d}-{secrets.token_hex(3)}"
        ctx.ledger.residents.add(self.session)
        self.http = Http(ctx, address)
        self.ws: ClientConnection | None = None
        self.connected = asyncio.Event()
        self.opened_at = 0.0
        self.last_push = 0
        self.seen: set[int] = set()
        self.state = "bot"  # bot | waiting | agent
        self.want_rating = False
        self.pending: dict[str, Pending] = {}
        self.sent = 0
        self.closing = False
        self.line: asyncio.Task[None] | None = None

    # -- the conversation ------------------------------------------------------------------
    async def run(self) -> None:
        self.line = asyncio.create_task(self._line())
        while await self.ctx.pause(*self.ctx.config.think_s, self.rng):
            await self.say(self._next_text())

    def _next_text(self) -> str:
        if self.want_rating:
            self.want_rating = False
            return RATING
        if self.state == "bot":
            if self.escalate_at is not None and monotonic() >= self.escalate_at:
                self.escalate_at = None
                return ASK_PERSON
            return self.rng.choice(self.pool)
        self.sent += 1
        return f"[R{self.ctx.ledger.run_id}-{self.n}-{self.sent}] {self.rng.choice(self.pool)}"

    async def say(self, text: str) -> None:
        cfg, metrics, ledger = self.ctx.config, self.ctx.metrics, self.ctx.ledger
        loop = asyncio.get_running_loop()
        p = Pending(secrets.token_hex(8), text, monotonic(), loop.create_future())
        self.pending[p.client_id] = p
        await self._send_ws(p)
        try:
            if p.via_ws:
                try:
                    await asyncio.wait_for(asyncio.shield(p.future), cfg.ws_reply_timeout_s)
                except TimeoutError:
                    if p.via_ws and not p.future.done():
                        metrics.error("chat.ws_reply", p.ws_sent_at, "Timeout")
                        self._to_rest(p)
            left = p.sent_at + cfg.give_up_s - monotonic()
            try:
                data, via = await asyncio.wait_for(asyncio.shield(p.future), max(left, 0.01))
            except TimeoutError:
                metrics.error("chat.send", p.sent_at, "unacknowledged")
                ledger.chat_unacked.append((self.session, p.client_id, text))
                return
        finally:
            del self.pending[p.client_id]
            if p.rest is not None and not p.rest.done():
                p.rest.cancel()
        now = monotonic()
        metrics.ok("chat.send", p.sent_at, now)
        conv = str(data.get("conversation") or "")
        if conv:
            ledger.sessions.setdefault(self.session, conv)
        messages = data.get("messages") or []
        ledger.chat_acks.append(
            ChatAck(
                self.session,
                conv,
                p.client_id,
                text,
                via,
                bool(data.get("duplicate")),
                len(messages),
                p.sent_at,
                now,
            )
        )
        said = " ".join(str(m.get("text", "")) for m in messages)
        if text == ASK_PERSON:
            if any(q in said for q in QUEUED):
                if self.state == "bot":  # the "joined" push may have come first
                    self.state = "waiting"
                metrics.event("chat.escalated")
            else:
                metrics.event("chat.escalation_not_queued")

    async def _send_ws(self, p: Pending) -> None:
        ws = self.ws
        if ws is None or not self.connected.is_set():
            self._to_rest(p)
            return
        payload = json.dumps({"text": p.text, "client_id": p.client_id}, ensure_ascii=False)
        p.via_ws, p.ws_sent_at = True, monotonic()
        try:
            await ws.send(payload)
        except ConnectionClosed:
            self.ctx.metrics.error("chat.ws_reply", p.ws_sent_at, "ConnectionClosed")
            self._to_rest(p)

    def _to_rest(self, p: Pending) -> None:
        p.via_ws = False
        if p.rest is None or p.rest.done():
            p.rest = asyncio.create_task(self._rest(p))

    async def _rest(self, p: Pending) -> None:
        """The REST fallback, retried (same client id: the server takes it once) until it is
        answered or the message is given up."""
        delay = 0.5
        body = {"session": self.session, "text": p.text, "client_id": p.client_id}
        while not p.future.done() and monotonic() < p.sent_at + self.ctx.config.give_up_s:
            r = await self.http.call("chat.rest", "POST", "/api/chat/messages", json=body)
            if r.ok:
                if not p.future.done():
                    p.future.set_result((r.json(), "rest"))
                return
            if r.status in (400, 422):
                return  # refused as malformed: retrying cannot help
            if r.status != 429:  # (429 already waited)
                await asyncio.sleep(delay * self.rng.uniform(0.75, 1.25))
                delay = min(delay * 2, 4.0)

    # -- the line --------------------------------------------------------------------------
    async def _line(self) -> None:
        metrics, ledger = self.ctx.metrics, self.ctx.ledger
        first, cap = self.ctx.config.reconnect_s
        attempt, dropped = 0, False
        while not self.closing:
            url = f"{self.ctx.ws_url}/api/chat/ws?session={self.session}"
            if dropped:  # catch up with what was pushed while the line was down
                url += f"&after={self.last_push}"
            start = monotonic()
            try:
                ws = await connect(
                    url,
                    local_addr=(self.address, 0),
                    open_timeout=10,
                    proxy=None,
                    compression=None,
                    max_size=2**20,
                )
            except (OSError, WebSocketException, TimeoutError) as exc:
                metrics.error("chat.connect", start, _kind(exc))
                await asyncio.sleep(min(cap, first * 2**attempt) * self.rng.uniform(0.75, 1.25))
                attempt += 1
                continue
            metrics.ok("chat.connect", start)
            if dropped:
                metrics.event("chat.reconnect")
                ledger.reconnects[self.session] += 1
            attempt = 0
            self.ws, self.opened_at = ws, monotonic()
            self.connected.set()
            try:
                async for raw in ws:
                    self._frame(json.loads(raw))
            except ConnectionClosed:
                pass
            finally:
                self.connected.clear()
                self.ws = None
            if self.closing:
                return
            dropped = True
            metrics.event("chat.disconnect")
            ledger.close_codes[str(ws.close_code)] += 1
            # what the socket still owed an answer goes over REST, as the widget does
            for p in list(self.pending.values()):
                if p.via_ws and not p.future.done():
                    metrics.error("chat.ws_reply", p.ws_sent_at, "ConnectionClosed")
                    self._to_rest(p)
            await asyncio.sleep(first * self.rng.uniform(0.5, 1.0))

    def _frame(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "reply":
            p = self.pending.get(str(data.get("client_id") or ""))
            if p is not None and not p.future.done():
                if p.via_ws:
                    self.ctx.metrics.ok("chat.ws_reply", p.ws_sent_at)
                p.future.set_result((data, "ws"))
        elif kind == "push":
            for m in data.get("messages") or []:
                mid = int(m["id"])
                if mid in self.seen:
                    self.ctx.metrics.event("chat.push_duplicate")
                    continue
                self.seen.add(mid)
                self.last_push = max(self.last_push, mid)
                self._pushed(m)
        elif kind == "error":
            self.ctx.metrics.event("chat.error_frame")
            # errors carry no client id; the socket answers in order: the oldest one
            waiting = [p for p in self.pending.values() if p.via_ws and not p.future.done()]
            if waiting:
                p = min(waiting, key=lambda p: p.ws_sent_at)
                self.ctx.metrics.error("chat.ws_reply", p.ws_sent_at, "error_frame")
                self._to_rest(p)

    def _pushed(self, m: dict[str, Any]) -> None:
        text, now = str(m.get("text", "")), monotonic()
        ledger = self.ctx.ledger
        if m.get("author") == "agent":
            for marker in AGENT_MARK.findall(text):
                sent = ledger.agent_replies.get(marker)
                if sent is None:
                    ledger.unknown_markers.append((marker, self.session))
                    continue
                first = not ledger.deliveries.get(marker)
                ledger.deliveries[marker].append(
                    Delivery(self.session, int(m["id"]), now, self.opened_at > sent.sent_at)
                )
                if first:
                    self.ctx.metrics.ok("agent.delivered", sent.sent_at, now)
            return
        if JOINED in text:
            self.state = "agent"
        elif ENDED_RESOLVED in text:
            self.state, self.want_rating = "bot", True
        elif ENDED_TICKET in text:
            self.state = "bot"
        elif AGENT_LEFT in text:
            self.state = "waiting"

    async def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            await self.ws.close()
        if self.line is not None:
            self.line.cancel()
            await asyncio.gather(self.line, return_exceptions=True)
        await self.http.aclose()


AGENT_MARK = re.compile(r"\[A[0-9a-f]+-\d+-\d+\]")
RESIDENT_MARK = re.compile(r"\[R[0-9a-f]+-\d+-\d+\]")


# -- staff: log-in shared by agents and clerks ---------------------------------------------------
class LoginRefused(Exception):
    """A staff account the server does not accept (missing, wrong password)."""


class Staff:
    def __init__(self, ctx: Context, address: str, username: str, password: str) -> None:
        self.ctx, self.username, self.password = ctx, username, password
        self.http = Http(ctx, address)

    async def login(self, op: str) -> bool:
        """Log in (retried while the server is away); False if the run stopped first or the
        account is refused."""
        rng = random.Random(self.username + self.ctx.ledger.run_id)
        body = {"username": self.username, "password": self.password}
        while not self.ctx.stopping.is_set():
            self.http.token = ""
            r = await self.http.call(op, "POST", "/api/auth/login", json=body)
            if r.ok:
                self.http.token = r.json()["token"]
                return True
            if r.status in (401, 403) and r.response is not None:
                raise LoginRefused(f"{self.username}: {r.status} {error_body(r.response)}")
            await self.ctx.pause(0.5, 1.5, rng)
        return False

    async def call(self, op: str, method: str, path: str, **kw: Any) -> Reply:
        """A call that logs in again when the token is refused (401)."""
        r = await self.http.call(op, method, path, **kw)
        if r.status == 401 and await self.login(op.split(".")[0] + ".login"):
            r = await self.http.call(op, method, path, **kw)
        return r


# -- agents at their inbox ------------------------------------------------------------------------
@dataclass
class Held:
    chat_id: int
    conversation: str
    since: float
    after: int = 0
    greeted: bool = False
    todo: list[int] = field(default_factory=list)  # resident messages to answer
    answered: set[int] = field(default_factory=set)
    replies: int = 0
    heard: float = 0.0  # when the resident last wrote (or the chat came)


def _chat_refusal(r: httpx.Response) -> str | None:
    """A chat that was taken, closed or given to someone else meanwhile: an answer."""
    if r.status_code in (403, 404, 409):
        return error_body(r).get("code") or str(r.status_code)
    return None


class Agent(Staff):
    """Logs in, goes online (chats are given round-robin), polls its chats and the queue
    (claiming a waiting chat when it has room), greets, answers each tagged resident message
    with a reply carrying a unique marker, and closes the chat with a ticket."""

    def __init__(self, ctx: Context, n: int, address: str, username: str, password: str) -> None:
        super().__init__(ctx, address, username, password)
        self.n = n
        self.rng = random.Random(f"{ctx.ledger.run_id}agent{n}")
        self.held: dict[int, Held] = {}
        self.sent = 0
        self.closes = 0

    async def run(self) -> None:
        cfg = self.ctx.config
        if not await self.login("agent.login"):
            return
        state = {"status": "online", "capacity": cfg.agent_capacity}
        while not (await self.call("agent.state", "PUT", "/api/agent/state", json=state)).ok:
            if not await self.ctx.pause(0.5, 1.5, self.rng):
                return
        while await self.ctx.pause(*cfg.agent_poll_s, self.rng):
            mine = await self.call("agent.poll", "GET", "/api/agent/chats")
            if not mine.ok:
                continue
            chats = mine.json()["chats"]
            ids = {int(c["id"]) for c in chats}
            for gone in set(self.held) - ids:
                del self.held[gone]  # closed, or back in the queue
            for c in chats:
                if int(c["id"]) not in self.held:
                    self.held[int(c["id"])] = Held(int(c["id"]), c["conversation_id"], monotonic())
            if len(self.held) < cfg.agent_capacity:
                await self._claim()
            for h in list(self.held.values()):
                if self.ctx.stopping.is_set():
                    break
                await self._work(h)

    async def _claim(self) -> None:
        queue = await self.call("agent.queue", "GET", "/api/agent/queue")
        if not queue.ok or not queue.json()["waiting"]:
            return
        chat = queue.json()["waiting"][0]
        r = await self.call(
            "agent.claim", "POST", f"/api/agent/chats/{chat['id']}/claim", refuse=_chat_refusal
        )
        if r.ok:
            cid = int(chat["id"])
            self.held[cid] = Held(cid, chat["conversation_id"], monotonic())

    async def _work(self, h: Held) -> None:
        cfg = self.ctx.config
        r = await self.call(
            "agent.fetch",
            "GET",
            f"/api/agent/chats/{h.chat_id}",
            params={"after": h.after},
            refuse=_chat_refusal,
        )
        if r.outcome == "refused":
            self.held.pop(h.chat_id, None)
            return
        if not r.ok:
            return
        for m in r.json()["messages"]:
            mid = int(m["id"])
            h.after = max(h.after, mid)
            tagged = m["author"] == "resident" and RESIDENT_MARK.search(m["text"])
            if tagged and mid not in h.answered and mid not in h.todo:
                h.todo.append(mid)
                h.heard = monotonic()
        if not h.greeted:
            h.greeted = await self._reply(h, "您好，我是工作人员，请讲。")
        while h.todo and h.chat_id in self.held:
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))  # typing
            if not await self._reply(h, "请带身份证原件到对应窗口办理，材料清单以办事指南为准。"):
                break
            h.answered.add(h.todo.pop(0))
        now = monotonic()
        old = now - h.since > cfg.max_chat_s or now - max(h.heard, h.since) > cfg.idle_chat_s
        if h.chat_id in self.held and (h.replies >= cfg.replies_per_chat or old) and not h.todo:
            await self._close(h)

    async def _reply(self, h: Held, text: str) -> bool:
        self.sent += 1
        marker = f"[A{self.ctx.ledger.run_id}-{self.n}-{self.sent}]"
        # noted before sending: the push may reach the resident before the POST returns
        sent = AgentReply(marker, self.username, h.chat_id, h.conversation, monotonic())
        self.ctx.ledger.agent_replies[marker] = sent
        r = await self.call(
            "agent.reply",
            "POST",
            f"/api/agent/chats/{h.chat_id}/messages",
            json={"text": f"{marker} {text}"},
            refuse=_chat_refusal,
        )
        if r.ok:
            sent.acked_at = monotonic()
            h.replies += 1
            return True
        if r.outcome == "refused":
            self.held.pop(h.chat_id, None)
        return False

    async def _close(self, h: Held) -> None:
        resolved = self.closes % 2 == 0
        body = {
            "category": "咨询",
            "resolved": resolved,
            "result": "已当场答复：携带身份证原件到对应窗口办理。" if resolved else "",
            "content": "" if resolved else "居民在线咨询，需转部门核实。",
        }
        r = await self.call(
            "agent.close",
            "POST",
            f"/api/agent/chats/{h.chat_id}/close",
            json=body,
            refuse=_chat_refusal,
        )
        if r.ok:
            self.closes += 1
            self.ctx.ledger.chats_closed.append((h.chat_id, h.conversation, r.json()["number"]))
        if r.ok or r.outcome == "refused":
            self.held.pop(h.chat_id, None)

    async def finish(self) -> None:
        """Offline (held chats go back to the queue), and the connections closed."""
        if self.http.token:
            await self.call("agent.state", "PUT", "/api/agent/state", json={"status": "offline"})
        await self.http.aclose()


# -- lobby kiosks ---------------------------------------------------------------------------------
def valid_id(rng: random.Random) -> str:
    """A fresh, valid resident ID number (GB 11643 check digit), some of them 70+."""
    from kiosk.queue.idcard import check_digit

    born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(365 * 65))
    body = f"110105{born:%Y%m%d}{rng.randrange(1000):03d}"
    return body + check_digit(body)


class Kiosk:
    """Fetches the services, then one resident after another takes a number for a random
    service (with an ID number where it is needed), printed on the server's printer."""

    def __init__(self, ctx: Context, n: int, address: str) -> None:
        self.ctx, self.n = ctx, n
        self.name = f"load-k{n:02d}"
        self.http = Http(ctx, address)
        self.rng = random.Random(f"{ctx.ledger.run_id}kiosk{n}")

    async def run(self) -> None:
        cfg = self.ctx.config
        services: list[dict[str, Any]] = []
        fetched = 0.0
        while await self.ctx.pause(*cfg.kiosk_gap_s, self.rng):
            if not services or monotonic() - fetched > 30:  # the screen refreshes
                r = await self.http.call("kiosk.services", "GET", "/api/kiosk/services")
                if r.ok:
                    services, fetched = r.json()["services"], monotonic()
                if not services:
                    continue
            service = self.rng.choice(services)
            body: dict[str, Any] = {
                "service": service["code"],
                "kiosk": self.name,
                "print": cfg.print_tickets,
            }
            if service.get("id_required"):
                body["id_number"] = valid_id(self.rng)
            # as the kiosk page does: one request id per press, sent again (up to 3 times)
            # when no answer came or the server failed, so a retry never takes a second number
            body["request_id"] = f"{self.name}-{self.rng.getrandbits(64):016x}"
            for attempt in range(3):
                r = await self.http.call(
                    "kiosk.take", "POST", "/api/kiosk/tickets", refuse=conflict_reason, json=body
                )
                if r.ok or r.outcome == "refused" or (0 < r.status < 500 and r.status != 429):
                    break
                await asyncio.sleep(0.5 * (attempt + 1))
            if r.ok:
                t = r.json()
                self.ctx.ledger.tickets.append(
                    TicketAck(
                        t["service"],
                        t["number"],
                        t["token"],
                        dt.date.fromisoformat(t["issued_at"][:10]),
                        self.name,
                        monotonic(),
                    )
                )

    async def finish(self) -> None:
        await self.http.aclose()


# -- counters -------------------------------------------------------------------------------------
def _counter_refusal(r: httpx.Response) -> str | None:
    if r.status_code != 409:
        return None
    err = error_body(r)
    return "empty" if (err.get("fields") or {}).get("empty") else "conflict"


class Clerk(Staff):
    """At one window: logs in, opens it, calls the next number, serves it a moment, finishes
    it (or 过号); with nobody waiting presses 叫号 again shortly. After a failed call (the
    server may have called a number and died before answering) it reads the window's state
    and deals with whatever number is at it."""

    def __init__(
        self, ctx: Context, window: str, address: str, username: str, password: str
    ) -> None:
        super().__init__(ctx, address, username, password)
        self.window = window
        self.rng = random.Random(f"{ctx.ledger.run_id}counter{window}")
        self.at_window: CallAck | None = None
        self.opened = False

    async def run(self) -> None:
        cfg = self.ctx.config
        if not await self.login("counter.login"):
            return
        path = f"/api/counter/{self.window}"
        while not self.opened:
            r = await self.call("counter.open", "POST", path, json={"action": "open"})
            if r.ok:
                self.opened = True
                self._note_ticket(r.json().get("ticket"))
            elif not await self.ctx.pause(0.5, 1.5, self.rng):
                return
        while not self.ctx.stopping.is_set():
            if self.at_window is None:
                r = await self.call(
                    "counter.call_next",
                    "POST",
                    path,
                    json={"action": "call"},
                    refuse=_counter_refusal,
                )
                if r.ok:
                    self._note_ticket(r.json().get("ticket"), called=True)
                elif r.outcome == "refused" and conflict_kind(r) == "empty":
                    await self.ctx.pause(0.3, 1.0, self.rng)
                    continue
                else:  # not answered, or the window is not as we think: look at it
                    await self._resync()
                    continue
            if self.at_window is None:
                continue
            await self.ctx.pause(*cfg.serve_s, self.rng)
            await self._complete()
        await self._complete()

    def _note_ticket(self, ticket: dict[str, Any] | None, called: bool = False) -> None:
        if not ticket:
            self.at_window = None
            return
        call = CallAck(
            self.window,
            self.username,
            ticket["number"],
            ticket["service"],
            dt.date.fromisoformat(ticket["issued_at"][:10]),
            monotonic(),
        )
        if called:
            self.ctx.ledger.calls.append(call)
        self.at_window = call

    async def _resync(self) -> None:
        r = await self.call("counter.state", "GET", f"/api/counter/{self.window}")
        if not r.ok:
            await self.ctx.pause(0.3, 1.0, self.rng)
            return
        state = r.json()
        ticket = state.get("ticket")
        if ticket and (self.at_window is None or self.at_window.number != ticket["number"]):
            # called by a request whose answer we never got: it is ours now
            self.ctx.metrics.event("counter.resync")
            self._note_ticket(ticket)
        elif not ticket:
            self.at_window = None
        if state.get("status") != "open" or state.get("clerk") != self.username:
            r = await self.call(
                "counter.open", "POST", f"/api/counter/{self.window}", json={"action": "open"}
            )
            if not r.ok:
                await self.ctx.pause(0.3, 1.0, self.rng)

    async def _complete(self) -> None:
        call = self.at_window
        if call is None:
            return
        no_show = self.rng.random() < self.ctx.config.no_show_share
        action, op = ("no_show", "counter.no_show") if no_show else ("finish", "counter.complete")
        for _ in range(20):
            r = await self.call(
                op,
                "POST",
                f"/api/counter/{self.window}",
                json={"action": action},
                refuse=_counter_refusal,
            )
            if r.ok:
                call.outcome = "no_show" if no_show else "done"
                self.at_window = None
                return
            if r.outcome == "refused":  # nothing at the window any more (done already?)
                self.at_window = None
                return
            await asyncio.sleep(self.rng.uniform(0.3, 1.0))

    async def finish(self) -> None:
        if self.opened and self.http.token:
            await self.call(
                "counter.close", "POST", f"/api/counter/{self.window}", json={"action": "close"}
            )
        await self.http.aclose()


def conflict_kind(r: Reply) -> str | None:
    return _counter_refusal(r.response) if r.response is not None else None
