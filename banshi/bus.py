"""Event bus for live pushes (an agent's reply to a resident's widget, a new chat to the
inbox). In-process here; issue 8's Redis/PostgreSQL bus takes the same two calls.

Delivery is best effort by design: what is pushed is already in the database, and every
subscriber also catches up from the database (by message id) after a quiet spell or a
reconnect, so a push missed by another process arrives a moment later instead of never."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

QUEUE_LIMIT = 256  # a subscriber this far behind is slow; it catches up from the database


class LocalBus:
    def __init__(self) -> None:
        self._subscribers: dict[
            str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]]
        ] = defaultdict(set)

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
