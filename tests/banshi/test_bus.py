"""The event bus: LocalBus in one process, RedisBus between processes over a real Redis
(two RedisBus instances stand for two API processes)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from support import api_client, build_settings

from banshi.bus import QUEUE_LIMIT, LocalBus, RedisBus, make_bus
from banshi.settings import Settings

Queue = asyncio.Queue[dict[str, Any]]
WAIT_S = 10.0  # a deadline, not a delay: every wait below ends as soon as it can


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def next_event(queue: Queue) -> dict[str, Any]:
    return await asyncio.wait_for(queue.get(), WAIT_S)


async def listening(*buses: RedisBus) -> None:
    for bus in buses:
        bus.start()
        await until(lambda b=bus: b.health()["status"] == "ok", "the listener")


def run(main: Callable[[RedisBus, RedisBus], Awaitable[None]], url: str) -> None:
    """``main(a, b)`` on two buses, as two processes would have, closed afterwards."""

    async def wrapper() -> None:
        a, b = RedisBus(url), RedisBus(url)
        try:
            await main(a, b)
        finally:
            await a.close()
            await b.close()

    asyncio.run(wrapper())


# -- RedisBus --------------------------------------------------------------------------------
def test_an_event_published_in_one_process_reaches_a_subscriber_in_the_other(
    redis_server: str,
) -> None:
    event = {"type": "push", "messages": [{"id": 7, "author": "agent", "text": "请带身份证"}]}

    async def main(a: RedisBus, b: RedisBus) -> None:
        async with b.subscribe("conversation:c1") as queue:
            await listening(a, b)
            a.publish("conversation:c1", event)
            assert await next_event(queue) == event

    run(main, redis_server)


def test_topics_are_kept_apart(redis_server: str) -> None:
    async def main(a: RedisBus, b: RedisBus) -> None:
        async with (
            b.subscribe("inbox") as inbox,
            b.subscribe("calls") as calls,
            b.subscribe("conversation:c1", "conversation:c2") as chats,
            b.subscribe("conversation:other") as other,
        ):
            await listening(a, b)
            a.publish("calls", {"type": "call", "id": 1, "number": "A001"})
            a.publish("inbox", {"type": "queue"})
            a.publish("conversation:c2", {"type": "position", "position": 2})
            a.publish("conversation:c1", {"type": "position", "position": 1})
            assert await next_event(calls) == {"type": "call", "id": 1, "number": "A001"}
            assert await next_event(inbox) == {"type": "queue"}
            # one subscription to two topics gets both, in the order they were published
            assert await next_event(chats) == {"type": "position", "position": 2}
            assert await next_event(chats) == {"type": "position", "position": 1}
            # one listener delivers in order: what was meant for these would be here by now
            assert inbox.empty() and calls.empty() and chats.empty() and other.empty()

    run(main, redis_server)


def test_the_publishing_process_gets_its_own_events_once(redis_server: str) -> None:
    """Locally at once, and not a second time when Redis echoes them back."""

    async def main(a: RedisBus, b: RedisBus) -> None:
        async with a.subscribe("inbox") as mine:
            await listening(a, b)
            a.publish("inbox", {"type": "assigned", "chat_id": 1})
            assert await next_event(mine) == {"type": "assigned", "chat_id": 1}
            # b publishes after a's echo reached Redis: a sees b's event, and no echo before it
            b.publish("inbox", {"type": "closed", "chat_id": 1})
            assert await next_event(mine) == {"type": "closed", "chat_id": 1}
            assert mine.empty()

    run(main, redis_server)


def test_publish_from_a_worker_thread(redis_server: str) -> None:
    async def main(a: RedisBus, b: RedisBus) -> None:
        async with b.subscribe("calls") as calls, a.subscribe("calls") as local:
            await listening(a, b)
            publishers = [
                threading.Thread(target=a.publish, args=("calls", {"type": "call", "id": i}))
                for i in range(1, 6)
            ]
            for t in publishers:
                t.start()
            for t in publishers:
                t.join()
            remote = {(await next_event(calls))["id"] for _ in range(5)}
            here = {(await next_event(local))["id"] for _ in range(5)}
            assert remote == here == {1, 2, 3, 4, 5}

    run(main, redis_server)


def test_events_flow_again_after_redis_restarts(
    redis_process: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """GIVEN two processes with a subscriber on the second
    WHEN Redis is killed and started again mid-stream
    THEN publishing during the outage does not raise and still reaches the publisher's own
    subscribers, health() says degraded, each bus logs the outage once, and after the restart
    events flow to the other process again without the subscriber doing anything."""
    caplog.set_level(logging.WARNING, logger="banshi.bus")

    async def main(a: RedisBus, b: RedisBus) -> None:
        async with b.subscribe("calls") as theirs, a.subscribe("calls") as mine:
            await listening(a, b)
            a.publish("calls", {"type": "call", "id": 1})
            assert await next_event(theirs) == {"type": "call", "id": 1}
            assert await next_event(mine) == {"type": "call", "id": 1}

            redis_process.kill()
            await until(lambda: b.health()["status"] == "degraded", "b to notice")
            a.publish("calls", {"type": "call", "id": 2})  # does not raise
            a.publish("calls", {"type": "call", "id": 3})
            assert await next_event(mine) == {"type": "call", "id": 2}
            assert await next_event(mine) == {"type": "call", "id": 3}
            report = a.health()
            assert report["status"] == "degraded"
            assert "ConnectionError" in report["error"]
            assert "reach this process only" in report["effect"]
            # the listener has tried again ("connecting to" fails, not "closed"): no new line
            await until(lambda: "connecting to" in b.health()["error"], "a reconnect attempt")

            redis_process.start()
            await listening(a, b)
            a.publish("calls", {"type": "call", "id": 4})
            assert await next_event(theirs) == {"type": "call", "id": 4}
            assert await next_event(mine) == {"type": "call", "id": 4}
            b.publish("calls", {"type": "call", "id": 5})  # and the other way round
            assert await next_event(mine) == {"type": "call", "id": 5}
            assert await next_event(theirs) == {"type": "call", "id": 5}
            assert theirs.empty() and mine.empty()  # calls 2 and 3 stayed in a (the board has them)

    run(main, redis_process.url)
    lost = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    back = [r for r in caplog.records if "Redis back" in r.getMessage()]
    assert len(lost) == 2 and len(back) == 2  # one each per bus, not one per attempt


def test_a_bus_whose_redis_never_answers_still_serves_its_own_process() -> None:
    async def main() -> None:
        bus = RedisBus("redis://127.0.0.1:9/0")  # the discard port: nothing listens
        try:
            async with bus.subscribe("inbox") as mine:
                bus.publish("inbox", {"type": "queue"})
                assert await next_event(mine) == {"type": "queue"}
                await until(lambda: "error" in bus.health(), "the listener to fail")
            report = bus.health()
            assert report["status"] == "degraded"
            assert report["redis"] == "127.0.0.1:9/0"
        finally:
            await bus.close()

    asyncio.run(main())


def test_health_names_the_server_but_not_the_password(redis_server: str) -> None:
    async def main(a: RedisBus, b: RedisBus) -> None:
        await listening(a)
        report = a.health()
        assert report["status"] == "ok"
        host_port = redis_server.rsplit("@", 1)[1]
        assert report == {"status": "ok", "redis": host_port}
        assert "secret" not in str(report)

    run(main, redis_server)


def test_make_bus_picks_redis_only_when_configured() -> None:
    assert type(make_bus(Settings(redis_url=""))) is LocalBus
    bus = make_bus(Settings(redis_url="redis://:pw@127.0.0.1:9/0"))  # connects when used
    assert isinstance(bus, RedisBus)
    asyncio.run(bus.close())


def test_the_app_shares_one_redis_bus_and_reports_it(
    tmp_path: Any, redis_server: str, shared_hashing_kb: Any
) -> None:
    settings = build_settings(
        tmp_path / "data",
        redis_url=redis_server,
        database_url=shared_hashing_kb.settings.database_url,
    )
    with api_client(settings, shared_hashing_kb) as client:
        state = client.app.state  # type: ignore[attr-defined]
        assert isinstance(state.bus, RedisBus)
        assert state.chat.bus is state.bus and state.live.bus is state.bus
        deadline = time.monotonic() + WAIT_S
        while (check := client.get("/healthz").json()["checks"]["bus"])["status"] != "ok":
            assert time.monotonic() < deadline, check
            time.sleep(0.01)
        assert check["redis"] == redis_server.rsplit("@", 1)[1]


# -- LocalBus (one process) --------------------------------------------------------------------
def test_local_bus_delivers_by_topic_from_any_thread() -> None:
    async def main() -> None:
        bus = LocalBus()
        async with bus.subscribe("inbox") as inbox, bus.subscribe("calls") as calls:
            await asyncio.to_thread(bus.publish, "calls", {"type": "call", "id": 1})
            bus.publish("inbox", {"type": "queue"})
            assert await next_event(calls) == {"type": "call", "id": 1}
            assert await next_event(inbox) == {"type": "queue"}
            assert inbox.empty() and calls.empty()
        bus.publish("inbox", {"type": "queue"})  # nobody listens: nothing kept
        assert inbox.empty()
        assert not bus._subscribers

    asyncio.run(main())


def test_local_bus_drops_events_for_a_subscriber_that_falls_behind() -> None:
    async def main() -> None:
        bus = LocalBus()
        async with bus.subscribe("calls") as calls:
            for i in range(QUEUE_LIMIT + 10):
                bus.publish("calls", {"id": i})
            await asyncio.sleep(0)  # the loop runs the hand-overs
            assert calls.qsize() == QUEUE_LIMIT
            assert calls.get_nowait() == {"id": 0}

    asyncio.run(main())
