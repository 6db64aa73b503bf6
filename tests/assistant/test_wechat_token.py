"""The WeChat access token shared by several API processes through the database: a new
token invalidates the old one, so the processes must not each fetch their own. Each
"process" here is its own CustomerServiceClient on its own Database (engine) over the same
database, on SQLite and (marker ``postgres``) on PostgreSQL; the fake WeChat API counts the
token fetches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
from fake_wechat import FakeWeChatApi, running_wechat_api

from assistant.wechat import (
    CustomerServiceClient,
    DatabaseTokenStore,
    MemoryTokenStore,
    TokenStore,
)
from banshi.db import Database
from banshi.settings import Settings

APP_ID = "wx0123456789abcdef"
USER = "oUser-openid-123"
INVALID = {"errcode": 40001, "errmsg": "invalid credential"}


@pytest.fixture
def wechat_api() -> Iterator[FakeWeChatApi]:
    with running_wechat_api() as api:
        yield api


@pytest.fixture
def processes(
    database_url: str, wechat_api: FakeWeChatApi
) -> Iterator[Callable[[], CustomerServiceClient]]:
    """``process()``: a client as one more API process would have it (its own engine)."""
    databases: list[Database] = []

    def process() -> CustomerServiceClient:
        database = Database(database_url)
        databases.append(database)
        store = DatabaseTokenStore(database)
        return CustomerServiceClient(wechat_api.base_url, APP_ID, "app-secret-1", store=store)

    yield process
    for database in databases:
        database.dispose()


def sent_tokens(api: FakeWeChatApi) -> list[str]:
    return [s["query"]["access_token"] for s in api.sends()]


def seed(store: TokenStore, token: str, refresh_in: float, expires_in: float) -> None:
    """Store ``token`` as if some process had fetched it."""
    now = time.time()
    assert store.claim(APP_ID, store.read(APP_ID).token, "seeder", now, now + 5)
    assert store.save(APP_ID, "seeder", token, now + refresh_in, now + expires_in)


async def close_all(*clients: CustomerServiceClient) -> None:
    for client in clients:
        await client.close()


def test_two_processes_fetch_the_token_once(
    processes: Callable[[], CustomerServiceClient], wechat_api: FakeWeChatApi
) -> None:
    async def run() -> list[bool]:
        a, b = processes(), processes()
        try:
            at_once = await asyncio.gather(a.send_text(USER, "甲"), b.send_text(USER, "乙"))
            later = [await a.send_text(USER, "丙"), await b.send_text(USER, "丁")]
            return [*at_once, *later]
        finally:
            await close_all(a, b)

    assert asyncio.run(run()) == [True] * 4
    assert len(wechat_api.token_fetches()) == 1
    assert sent_tokens(wechat_api) == ["TOKEN-1"] * 4


def test_a_40001_seen_by_both_processes_refreshes_once(
    processes: Callable[[], CustomerServiceClient], wechat_api: FakeWeChatApi
) -> None:
    async def run() -> tuple[list[bool], list[str]]:
        a, b = processes(), processes()
        try:
            # both hold TOKEN-1, then WeChat refuses it to both
            first = [await a.send_text(USER, "一"), await b.send_text(USER, "二")]
            wechat_api.send_results = [INVALID, INVALID]
            both = await asyncio.gather(a.send_text(USER, "三"), b.send_text(USER, "四"))
            # the one that comes second finds a new token stored: no fetch of its own
            third = await a.access_token(failed="TOKEN-1")
            return [*first, *both], [third, await b.access_token(failed="TOKEN-1")]
        finally:
            await close_all(a, b)

    results, tokens = asyncio.run(run())
    assert results == [True] * 4
    assert tokens == ["TOKEN-2", "TOKEN-2"]
    assert len(wechat_api.token_fetches()) == 2  # the first one and the one refresh
    # the two refused sends went again with the new token
    assert sent_tokens(wechat_api)[:4] == ["TOKEN-1"] * 4
    assert sent_tokens(wechat_api)[4:] == ["TOKEN-2"] * 2


def test_refresh_after_a_stale_40001_uses_the_stored_token(
    processes: Callable[[], CustomerServiceClient], wechat_api: FakeWeChatApi
) -> None:
    """Sequential and deterministic: A refreshes on 40001; B, still holding the old token,
    gets 40001 later and takes A's token instead of fetching (which would invalidate it)."""

    async def run() -> list[str]:
        a, b = processes(), processes()
        try:
            old = [await a.access_token(), await b.access_token()]
            new_a = await a.access_token(failed="TOKEN-1")
            new_b = await b.access_token(failed="TOKEN-1")
            again = await a.access_token(failed="TOKEN-1")  # a late 40001 of the old one
            return [*old, new_a, new_b, again]
        finally:
            await close_all(a, b)

    assert asyncio.run(run()) == ["TOKEN-1", "TOKEN-1", "TOKEN-2", "TOKEN-2", "TOKEN-2"]
    assert len(wechat_api.token_fetches()) == 2


def test_while_another_process_fetches_the_old_token_is_used_if_still_valid(
    processes: Callable[[], CustomerServiceClient], wechat_api: FakeWeChatApi
) -> None:
    async def run() -> str:
        client = processes()
        store = client._store
        seed(store, "TOKEN-OLD", refresh_in=-1, expires_in=200)  # due, still valid
        now = time.time()
        assert store.claim(APP_ID, "TOKEN-OLD", "other-process", now, now + 30)
        try:
            return await client.access_token()
        finally:
            await client.close()

    assert asyncio.run(run()) == "TOKEN-OLD"
    assert wechat_api.token_fetches() == []


def test_a_refused_token_waits_for_the_other_process_fetch(
    processes: Callable[[], CustomerServiceClient], wechat_api: FakeWeChatApi
) -> None:
    async def run() -> str:
        client = processes()
        store = client._store
        seed(store, "TOKEN-OLD", refresh_in=3000, expires_in=7000)
        now = time.time()
        assert store.claim(APP_ID, "TOKEN-OLD", "other-process", now, now + 30)

        async def other_process_saves() -> None:
            await asyncio.sleep(0.5)
            t = time.time()
            assert store.save(APP_ID, "other-process", "TOKEN-NEW", t + 3000, t + 7000)

        try:
            token, _ = await asyncio.gather(
                client.access_token(failed="TOKEN-OLD"), other_process_saves()
            )
            return token
        finally:
            await client.close()

    assert asyncio.run(run()) == "TOKEN-NEW"
    assert wechat_api.token_fetches() == []


def test_a_lease_left_by_a_dead_process_is_taken_over(
    processes: Callable[[], CustomerServiceClient], wechat_api: FakeWeChatApi
) -> None:
    async def run() -> str:
        client = processes()
        store = client._store
        now = time.time()
        assert store.claim(APP_ID, store.read(APP_ID).token, "died-fetching", now, now + 0.6)
        try:
            return await client.access_token()
        finally:
            await client.close()

    started = time.monotonic()
    assert asyncio.run(run()) == "TOKEN-1"
    assert time.monotonic() - started >= 0.5  # waited for the lease to run out
    assert len(wechat_api.token_fetches()) == 1


def test_a_failed_fetch_gives_the_lease_back(
    processes: Callable[[], CustomerServiceClient], wechat_api: FakeWeChatApi
) -> None:
    wechat_api.tokens = []  # the fake then fails (500) on a token request

    async def run() -> tuple[list[bool], float]:
        a, b = processes(), processes()
        try:
            sent = [await a.send_text(USER, "一")]
            lease = (await asyncio.to_thread(a._store.read, APP_ID)).lease_until
            wechat_api.tokens = ["TOKEN-9"]
            sent.append(await b.send_text(USER, "二"))  # not held up by a's failure
            return sent, lease
        finally:
            await close_all(a, b)

    started = time.monotonic()
    sent, lease = asyncio.run(run())
    assert sent == [False, True]
    assert lease == 0.0
    assert time.monotonic() - started < 5
    assert sent_tokens(wechat_api) == ["TOKEN-9"]


def test_without_a_database_the_token_is_the_clients_own(wechat_api: FakeWeChatApi) -> None:
    async def run() -> list[str]:
        a = CustomerServiceClient(wechat_api.base_url, APP_ID, "app-secret-1")
        b = CustomerServiceClient(
            wechat_api.base_url, APP_ID, "app-secret-1", store=MemoryTokenStore()
        )
        try:
            return [await a.access_token(), await a.access_token(), await b.access_token()]
        finally:
            await close_all(a, b)

    assert asyncio.run(run()) == ["TOKEN-1", "TOKEN-1", "TOKEN-2"]


def test_the_app_shares_its_token_through_its_database(settings: Settings) -> None:
    from fastapi import FastAPI

    from assistant.wechat_api import customer_service

    app = FastAPI()
    database = Database(settings.resolved_database_url)
    app.state.db = database
    try:
        client = customer_service(app, settings)
        assert isinstance(client._store, DatabaseTokenStore)
        assert client._store.db is database
        asyncio.run(client.close())
    finally:
        database.dispose()
