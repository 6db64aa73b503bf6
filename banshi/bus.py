"""Event bus for live pushes (an agent's reply to a resident's widget, a new chat to the
inbox, a queue call to the hall display). ``LocalBus`` serves one process; ``RedisBus``
(BANSHI_REDIS_URL, several API processes behind nginx) carries the same two calls between
processes. ``make_bus`` picks one from the settings.

Delivery is best effort by design: what is pushed is already in the database, and every
subscriber also catches up from the database (by message id) after a quiet spell or a
reconnect, so a push missed by another process arrives a moment later instead of never."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

if TYPE_CHECKING:
    from banshi.settings import Settings

log = logging.getLogger(__name__)

QUEUE_LIMIT = 256  # a subscriber this far behind is slow; it catches up from the database


class LocalBus:
    def __init__(self) -> None:
        self._subscribers: dict[
            str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]]
        ] = defaultdict(set)

    def start(self) -> None:
        """Nothing to start in one process (RedisBus starts its listener here)."""

    async def close(self) -> None:
        """Nothing to close in one process."""

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Safe from any thread (the blocking database work runs in threads)."""
        for loop, queue in list(self._subscribers.get(topic, ())):
            loop.call_soon_threadsafe(_put, queue, event)

    @asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        entry = (asyncio.get_running_loop(), queue)
        for topic in topics:
            self._subscribers[topic].add(entry)
        try:
            yield queue
        finally:
            for topic in topics:
                self._subscribers[topic].discard(entry)
                if not self._subscribers[topic]:
                    del self._subscribers[topic]


def _put(queue: asyncio.Queue[dict[str, Any]], event: dict[str, Any]) -> None:
    if not queue.full():
        queue.put_nowait(event)


def make_bus(settings: Settings) -> LocalBus:
    """The bus for this process: in memory, or over Redis when BANSHI_REDIS_URL is set."""
    return RedisBus(settings.redis_url) if settings.redis_url else LocalBus()


PREFIX = "banshi:"  # channel = PREFIX + topic; one Redis may serve other applications too
BACKOFF_S = (0.1, 5.0)  # the listener's reconnect delay: first, and at most (doubling)
PROBE_S = 5.0  # after a failed PUBLISH, publish locally only for this long (or until the
# listener is back): a Redis that is away must not slow down every caller
REDIS_TIMEOUT_S = 1.0  # connect and command timeout of PUBLISH (callers wait this at most)


class RedisBus(LocalBus):
    """Events between API processes over Redis pub/sub, with the same calls as LocalBus.

    ``publish`` hands the event to this process's subscribers at once (the inherited
    LocalBus) and PUBLISHes it, marked with this bus's origin, for the other processes.
    One listener task per process (``start``, from the app's lifespan) holds one pattern
    subscription to every topic and hands what other processes publish to the local
    subscribers; its own events come back from Redis too and are skipped, so nothing is
    delivered twice. Redis away: this process's subscribers still get its own events, the
    listener reconnects with backoff, and subscribers catch up from the database."""

    def __init__(self, url: str, prefix: str = PREFIX) -> None:
        super().__init__()
        self.url, self.prefix = url, prefix
        self._origin = uuid.uuid4().hex
        # thread safe (a connection pool): publish is called from the loop and from threads;
        # no retries (redis-py's default is 10): a failed PUBLISH is not worth a wait
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        self._listener: asyncio.Task[None] | None = None
        self._listening = False
        self._lock = threading.Lock()  # outage bookkeeping, from the loop and from threads
        self._down_since: float | None = None  # monotonic; None: no outage seen
        self._error = ""
        self._publish_after = 0.0  # monotonic; PUBLISH is skipped before this

    # -- the two calls -------------------------------------------------------------------
    def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Safe from any thread; never raises for Redis being away."""
        super().publish(topic, event)  # this process's subscribers, with or without Redis
        if time.monotonic() < self._publish_after:
            return  # Redis failed just now: the other processes catch up from the database
        try:
            payload = json.dumps({"origin": self._origin, "event": event}, ensure_ascii=False)
        except (TypeError, ValueError):  # a bug in the publisher, not a reason to fail it
            log.exception("event bus: %s event is not JSON, not sent to other processes", topic)
            return
        try:
            self._client.publish(self.prefix + topic, payload)
        except (redis.RedisError, OSError) as exc:
            self._publish_after = time.monotonic() + PROBE_S
            self._down(exc)

    @asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        self.start()  # lazily, when used without the app's lifespan
        async with super().subscribe(*topics) as queue:
            yield queue

    # -- the listener --------------------------------------------------------------------
    def start(self) -> None:
        """Start the listener on the running loop (again if that loop's task ended)."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        self._client.close()  # its pool reconnects if the bus is started again

    async def _listen(self) -> None:
        delay = BACKOFF_S[0]
        while True:
            client = aioredis.Redis.from_url(
                self.url, socket_connect_timeout=REDIS_TIMEOUT_S, retry=Retry(NoBackoff(), 0)
            )
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.psubscribe(self.prefix + "*")
                    self._listening = True
                    delay = BACKOFF_S[0]
                    while True:
                        self._up()  # also clears an outage only a PUBLISH had seen
                        message = await pubsub.get_message(timeout=1.0)
                        if message is not None:
                            self._deliver(message)
            except Exception as exc:  # Redis away (or a surprise): listen again after a pause
                self._down(exc)
            finally:
                self._listening = False
                await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_S[1])

    def _deliver(self, message: dict[str, Any]) -> None:
        channel = message["channel"].decode()
        try:
            data = json.loads(message["data"])
            if data["origin"] == self._origin:
                return  # ours: delivered locally when it was published
            super().publish(channel.removeprefix(self.prefix), data["event"])
        except (ValueError, KeyError, TypeError):
            log.warning("event bus: not an event on %s: %.200r", channel, message["data"])

    # -- outages and health --------------------------------------------------------------
    def _down(self, exc: BaseException) -> None:
        with self._lock:
            self._error = f"{type(exc).__name__}: {exc}"
            if self._down_since is None:  # one line per outage, not one per attempt
                self._down_since = time.monotonic()
                log.warning(
                    "event bus: Redis unreachable (%s); events stay in this process, "
                    "retrying in the background",
                    self._error,
                )

    def _up(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is not None:
                log.warning(
                    "event bus: Redis back after %.1f s", time.monotonic() - self._down_since
                )
                self._down_since, self._publish_after = None, 0.0

    def health(self) -> dict[str, Any]:
        kwargs = self._client.connection_pool.connection_kwargs  # the URL without password
        where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
        report: dict[str, Any] = {
            "status": "ok" if self._listening and self._down_since is None else "degraded",
            "redis": f"{where}/{kwargs.get('db')}",
        }
        if report["status"] != "ok":
            report["error"] = self._error or "not connected yet"
            report["effect"] = "live events reach this process only; the others catch up later"
        return report
