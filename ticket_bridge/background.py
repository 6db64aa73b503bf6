"""The bridge's work that nobody asks for: delivering the outbox, at closing time turning
chats still in the queue into tickets, and setting agents whose inbox is gone offline. One
task per API process; every job is safe in several processes at once (leases and guarded
updates decide who does what)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ticket_bridge.live import LiveDesk

log = logging.getLogger(__name__)
SWEEP_EVERY_S = 60.0


class Background:
    def __init__(self, live: LiveDesk, delivery: Any = None) -> None:
        self.live = live
        self.delivery = delivery  # ticket_bridge.delivery.OutboxDelivery, when targets exist
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._sweep_loop()))
        if self.delivery is not None:
            self._tasks.append(asyncio.create_task(self.delivery.run(self._stop)))

    async def _sweep_loop(self) -> None:
        while not self._stop.is_set():
            try:
                done = await asyncio.to_thread(self.live.sweep)
                if done:
                    log.info("closing time: %d waiting chats became tickets", done)
                await asyncio.to_thread(self.live.expire_presence)
            except Exception:
                log.exception("sweeping the chat queue failed; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), SWEEP_EVERY_S)

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, 5)
