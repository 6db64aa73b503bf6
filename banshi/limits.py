"""Request size limits and per-client rate limits on every route: one pure ASGI middleware
(``install_limits``), so that a chunked body is counted as it streams in and a WebSocket is
only counted at its handshake, its messages untouched.

- Body size: a default (``BANSHI_MAX_BODY_BYTES``, 64 KiB: every JSON API) and larger
  budgets where the product needs them (:data:`BODY_BUDGETS`). Over it: 413, before the
  app runs when Content-Length says so, or as soon as a streamed body grows past it.
- Rate: a few named budgets per client IP (:data:`BUDGETS`, chosen by :func:`budget_for`)
  in fixed windows, counted in Redis when ``BANSHI_REDIS_URL`` is set (shared by every API
  process) and in this process otherwise, or while Redis does not answer. Over it: 429
  with ``Retry-After``. ``BANSHI_RATE_LIMITS``: "on", "off" or a multiplier ("2", "0.5").
- The client is the socket's peer, or, when the peer is a trusted proxy
  (``BANSHI_TRUSTED_PROXIES``, nginx), the last untrusted hop of X-Forwarded-For; it is
  written into the scope, so every part (the progress look-up throttle, the PBX's
  loopback check, logs) sees the resident rather than nginx.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from banshi.errors import BanshiError, TooMany

if TYPE_CHECKING:
    from fastapi import FastAPI

    from banshi.settings import Settings

log = logging.getLogger(__name__)

KIB = 1024
TOO_LARGE = "提交的内容太大了。"
TOO_MANY = "请求太频繁，请稍后再试。"  # the same words as nginx's own 429 (banshi/nginx.py)
REDIS_TIMEOUT_S = 0.25  # a request waits at most this for its count, then memory counts
REDIS_RETRY_S = 30.0  # after a failure, Redis is tried again this much later


@dataclass(frozen=True)
class Budget:
    name: str
    limit: int  # requests per client IP per window
    window_s: int


# Per client IP, per minute. A kiosk, a counter PC or an agent's PC is one IP; so is a
# household router, a mobile carrier's NAT or the hall's guest Wi-Fi, hence the headroom.
BUDGETS = {
    b.name: b
    for b in (
        # monitors and load balancers polling every second or two
        Budget("health", 300, 60),
        # staff log-ins: a shift starting behind one address, not password guessing
        Budget("login", 30, 60),
        # machines that sign or carry a token: WeChat's servers (every follower's message),
        # Rasa's action calls (every chat turn), the 12345 platform, the PBX
        Budget("partner", 3000, 60),
        # a clerk calling numbers with nobody waiting (the page retries every 0.3 s), an
        # agent with ten chats open (polling every 5 s each, plus the inbox and monitor)
        Budget("staff", 600, 60),
        # residents' changes: numbers, check-ins, prints, bookings, chat messages, look-ups,
        # questions. A busy kiosk sees a resident a minute doing three or four of these.
        Budget("write", 120, 60),
        # residents' pages and reads: the forms page loads up to 50 thumbnails at once
        Budget("read", 1200, 60),
    )
}
_CHANGES = {"POST", "PUT", "PATCH", "DELETE", "WS"}
# (budget, methods or None for all, path) in order; what matches none is a "read"
_RULES = [
    ("health", None, r"/healthz"),
    ("login", None, r"/api/auth/login"),
    ("partner", None, r"/wechat|/api/rasa/actions|/api/bridge/inbound/[^/]+|/api/voice/pbx/.+"),
    (
        "staff",
        None,
        r"/api/(agent|agents|counter|admin|supervisor|tickets)(/.*)?"
        r"|/api/voice/recordings/.+|/api/auth/(me|logout)",
    ),
    ("staff", _CHANGES, r"/api/kb/documents(/.*)?"),  # administrators edit the guides
    ("write", _CHANGES, r"/.*"),  # every other change is a resident's (and chat sockets)
]
RULES = [(name, methods, re.compile(path)) for name, methods, path in _RULES]

# Bodies larger than the default, where the product sends them
BODY_BUDGETS = [
    # a guide or policy of up to 200,000 characters (as JSON \u escapes: 6 bytes each)
    (re.compile(r"/api/kb/documents(/.*)?"), 2048 * KIB),
    # a question of up to 20,000 characters: cut by the knowledge base, with a notice
    (re.compile(r"/api/kb/ask"), 128 * KIB),
    # Rasa posts the conversation's whole tracker with each action call
    (re.compile(r"/api/rasa/actions"), 1024 * KIB),
    # form-sample definitions: the route refuses more than 128 KiB itself, naming the file
    (re.compile(r"/api/admin/forms(/validate)?"), 256 * KIB),
]


def budget_for(method: str, path: str) -> Budget:
    """``method`` is "WS" for a WebSocket handshake."""
    for name, methods, pattern in RULES:
        if (methods is None or method in methods) and pattern.fullmatch(path):
            return BUDGETS[name]
    return BUDGETS["read"]


def body_limit(path: str, default: int) -> int:
    for pattern, limit in BODY_BUDGETS:
        if pattern.fullmatch(path):
            return max(limit, default)
    return default


def rate_scale(value: str) -> float | None:
    """BANSHI_RATE_LIMITS: None when off, else the multiplier of every budget."""
    value = value.strip().lower()
    if value == "off":
        return None
    if value == "on":
        return 1.0
    try:
        scale = float(value)
    except ValueError:
        scale = 0.0
    if not 0 < scale < 1e6:
        raise ValueError(f"BANSHI_RATE_LIMITS must be on, off or a multiplier, not {value!r}")
    return scale


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(value: str) -> list[Network]:
    """BANSHI_TRUSTED_PROXIES: addresses or networks (10.0.0.0/8), comma-separated."""
    return [ipaddress.ip_network(p.strip(), strict=False) for p in value.split(",") if p.strip()]


def _trusted(host: str, networks: list[Network]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def client_ip(peer: str, forwarded_for: str, trusted: list[Network]) -> str:
    """The peer, unless it is a trusted proxy: then the last hop of X-Forwarded-For that is
    not one (the hops left of it are whatever the client claimed)."""
    if not _trusted(peer, trusted):
        return peer
    for hop in reversed(forwarded_for.split(",")):
        hop = hop.strip()
        if hop:
            peer = hop
            if not _trusted(hop, trusted):
                break
    return peer


def rate_key(ip: str) -> str:
    """One key per IPv4 address and per IPv6 /64 (what one household or phone is given)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6 and not address.is_loopback:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class Counters:
    """Hits per (key, window): INCR+EXPIRE in Redis when configured and answering, a dict in
    this process otherwise."""

    def __init__(self, redis_url: str = "") -> None:
        self.redis_url = redis_url
        self._memory: dict[str, tuple[int, int]] = {}  # key -> (window number, hits)
        self._redis: tuple[asyncio.AbstractEventLoop, aioredis.Redis] | None = None
        self._redis_down_until = 0.0

    async def hit(self, key: str, window_s: int) -> tuple[int, float]:
        """(hits in the current window including this one, seconds until it ends)"""
        now = time.time()
        window = int(now // window_s)
        left = (window + 1) * window_s - now
        if self.redis_url and now >= self._redis_down_until:
            try:
                return await self._redis_hit(f"banshi:rate:{key}:{window}", window_s), left
            except (RedisError, OSError) as exc:
                if not self._redis_down_until:  # once per outage
                    log.warning(
                        "rate limits: Redis does not answer (%s); counting in this process "
                        "until it does",
                        exc,
                    )
                self._redis_down_until = now + REDIS_RETRY_S
        return self._memory_hit(key, window), left

    async def _redis_hit(self, key: str, window_s: int) -> int:
        loop = asyncio.get_running_loop()
        if self._redis is None or self._redis[0] is not loop:  # a client per event loop
            client = aioredis.Redis.from_url(
                self.redis_url,
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
                retry=Retry(NoBackoff(), 0),
            )
            self._redis = (loop, client)
        async with self._redis[1].pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, window_s + 1)
            hits, _ = await pipe.execute()
        if self._redis_down_until:
            log.info("rate limits: Redis answers again; counting there")
            self._redis_down_until = 0.0
        return int(hits)

    async def close(self) -> None:
        if self._redis is not None and self._redis[0] is asyncio.get_running_loop():
            await self._redis[1].aclose()
        self._redis = None

    def _memory_hit(self, key: str, window: int) -> int:
        seen, hits = self._memory.get(key, (window, 0))
        hits = hits + 1 if seen == window else 1
        self._memory[key] = (window, hits)
        if len(self._memory) > 100_000:  # many clients: forget the ones of past windows
            self._memory = {k: v for k, v in self._memory.items() if v[0] == window}
        return hits


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: an HTTPException, so FastAPI's body parsing lets it through
    instead of turning it into a 400; the middleware answers the 413 itself."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


class PayloadTooLarge(BanshiError):
    status_code = 413
    code = "payload_too_large"


class Limits:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.default_body = settings.max_body_bytes
        self.scale = rate_scale(settings.rate_limits)
        self.trusted = trusted_networks(settings.trusted_proxies)
        self.counters = Counters(settings.redis_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._closing(receive), send)
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        peer = scope["client"][0] if scope.get("client") else ""
        headers = _headers(scope)
        ip = client_ip(peer, headers.get("x-forwarded-for", ""), self.trusted)
        if ip != peer:
            scope["client"] = (ip, 0)
        if self.scale is not None:
            method = "WS" if scope["type"] == "websocket" else scope["method"]
            budget = budget_for(method, scope["path"])
            limit = max(1, round(budget.limit * self.scale))
            hits, left = await self.counters.hit(f"{budget.name}:{rate_key(ip)}", budget.window_s)
            if hits > limit:
                retry = max(1, math.ceil(left))
                error = TooMany(
                    TOO_MANY,
                    f"over {limit} requests per {budget.window_s} s ({budget.name})",
                    budget=budget.name,
                    retry_after_s=retry,
                )
                await _refuse(scope, receive, send, error, {"retry-after": str(retry)})
                return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        await self._sized(scope, receive, send, headers)

    def _closing(self, receive: Receive) -> Receive:
        async def closing_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":  # before the event loop goes
                await self.counters.close()
            return message

        return closing_receive

    async def _sized(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]
    ) -> None:
        limit = body_limit(scope["path"], self.default_body)
        error = PayloadTooLarge(TOO_LARGE, f"request body over {limit} bytes", limit_bytes=limit)
        declared = headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            await _refuse(scope, receive, send, error)  # the body is never read
            return
        received = 0
        over = responded = replaced = False

        async def counted_receive() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise BodyTooLarge(limit)
            return message

        async def guarded_send(message: Message) -> None:
            # once the body was too large, the app's answer (its 413, or whatever its code
            # made of the exception) gives way to ours, unless it had already begun
            nonlocal responded, replaced
            if over and not responded:
                await _refuse(scope, receive, send, error)
                responded = replaced = True
            if replaced:
                return
            responded = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if responded:
                return  # a response that had begun cannot be taken back: it ends here
        if over and not responded:
            await _refuse(scope, receive, send, error)


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        # repeated X-Forwarded-For headers are one list, in order
        found[key] = f"{found[key]},{text}" if key in found else text
    return found


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    error: BanshiError,
    extra: dict[str, str] | None = None,
) -> None:
    body = json.dumps({"error": error.to_dict()}, ensure_ascii=False).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in (extra or {}).items()),
    ]
    start = {"status": error.status_code, "headers": headers}
    if scope["type"] == "http":
        await send({"type": "http.response.start", **start})
        await send({"type": "http.response.body", "body": body})
        return
    message = await receive()  # websocket.connect
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):  # the handshake's 429
        await send({"type": "websocket.http.response.start", **start})
        await send({"type": "websocket.http.response.body", "body": body})
    else:  # a server without the denial response: "try again later"
        await send({"type": "websocket.close", "code": 1013, "reason": "rate limited"})


def install_limits(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(Limits, settings=settings)
