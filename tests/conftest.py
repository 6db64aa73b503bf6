"""Shared fixtures: settings, databases, knowledge bases, API clients.

Knowledge bases over the sample data:

- ``hashing_kb``: with the fast fake ``hashing`` encoder, one private copy per test (copied
  from a session-built template, so it starts in well under a second). Use it for anything
  that writes (admin CRUD, imports, revision handling); ``hashing_client`` is its API.
- ``shared_hashing_kb`` / ``shared_client``: one hashing knowledge base for the session, for
  tests that only read. ``token_for(role)`` creates staff accounts there.
- ``real_kb``: with the real default encoder ``use-m3``, built once per session (tests that
  use it are marked ``encoder``). Read-only: never store documents into it.

``pg_url`` is a freshly created PostgreSQL database per test (marker ``postgres``), dropped
afterwards; postgres tests skip unless BANSHI_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from support import TestClient, api_client, build_settings

from banshi.db import Database
from banshi.settings import Settings, get_settings

PG_ENV = "BANSHI_TEST_POSTGRES_URL"
PG_URL_FROM_ENV = os.environ.get(PG_ENV, "")


# -- environment isolation ---------------------------------------------------------------
@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No BANSHI_* variable of the developer's shell leaks into a test, and the cached
    settings of one test are never seen by the next."""
    for name in list(os.environ):
        if name.startswith("BANSHI_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and not PG_URL_FROM_ENV:
        pytest.skip(
            f"PostgreSQL tests need {PG_ENV} "
            "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres)"
        )


# -- settings and database ---------------------------------------------------------------
@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return build_settings(tmp_path / "data")


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.resolved_database_url)
    database.upgrade()
    yield database
    database.dispose()


# -- encoders and the text pipeline shared by hashing knowledge bases ------------------------
@pytest.fixture(scope="session")
def hashing_encoder():  # type: ignore[no-untyped-def]
    from knowledge_base.encoders import HashingEncoder

    return HashingEncoder()


@pytest.fixture(scope="session")
def shared_text():  # type: ignore[no-untyped-def]
    """One TextPipeline (jieba takes a second to load) for all hashing knowledge bases."""
    from knowledge_base.text import TextPipeline

    return TextPipeline()


@pytest.fixture(scope="session")
def hashing_template(
    tmp_path_factory: pytest.TempPathFactory, hashing_encoder, shared_text
) -> Path:  # type: ignore[no-untyped-def]
    """A data directory (SQLite database + saved index) of the sample knowledge base built
    with the hashing encoder; copied by ``hashing_kb`` so that each test gets its own."""
    from knowledge_base.service import KnowledgeBase

    data_dir = tmp_path_factory.mktemp("hashing_template") / "data"
    s = build_settings(data_dir)
    database = Database(s.resolved_database_url)
    database.upgrade()
    kb = KnowledgeBase(s, database, encoder=hashing_encoder, text=shared_text)
    kb.start()
    database.dispose()  # checkpoints the WAL into the main file before it is copied
    return data_dir


@pytest.fixture
def hashing_kb(settings: Settings, hashing_template: Path, hashing_encoder, shared_text):  # type: ignore[no-untyped-def]
    """A started knowledge base over the sample data (hashing encoder), private to the test,
    with its database at ``settings.resolved_database_url``."""
    from knowledge_base.service import KnowledgeBase

    shutil.copytree(hashing_template, settings.data_dir)  # already migrated
    database = Database(settings.resolved_database_url)
    kb = KnowledgeBase(settings, database, encoder=hashing_encoder, text=shared_text)
    kb.start()
    yield kb
    database.dispose()


@pytest.fixture(scope="session")
def real_kb(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The sample knowledge base with the real default encoder (use-m3). Read-only."""
    from knowledge_base.service import KnowledgeBase

    s = build_settings(tmp_path_factory.mktemp("real_kb") / "data", kb_encoder="use-m3")
    database = Database(s.resolved_database_url)
    database.upgrade()
    kb = KnowledgeBase(s, database)
    kb.start()
    yield kb
    database.dispose()


# -- API ---------------------------------------------------------------------------------
@pytest.fixture
def hashing_client(hashing_kb) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """An API client over the test's private ``hashing_kb`` (for tests that change data)."""
    with api_client(hashing_kb.settings, hashing_kb) as client:
        yield client


@pytest.fixture(scope="session")
def shared_hashing_kb(
    tmp_path_factory: pytest.TempPathFactory, hashing_template: Path, hashing_encoder, shared_text
):  # type: ignore[no-untyped-def]
    """One hashing knowledge base for the whole session, for tests that only read (and
    create staff accounts with unique names)."""
    from knowledge_base.service import KnowledgeBase

    s = build_settings(tmp_path_factory.mktemp("shared_hashing") / "data")
    shutil.copytree(hashing_template, s.data_dir)
    database = Database(s.resolved_database_url)
    database.upgrade()
    kb = KnowledgeBase(s, database, encoder=hashing_encoder, text=shared_text)
    kb.start()
    yield kb
    database.dispose()


@pytest.fixture(scope="session")
def shared_client(shared_hashing_kb) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """An API client over ``shared_hashing_kb``. Do not change documents through it."""
    with api_client(shared_hashing_kb.settings, shared_hashing_kb) as client:
        yield client


@pytest.fixture
def token_for(shared_hashing_kb, shared_client: TestClient) -> Callable[[str], str]:  # type: ignore[no-untyped-def]
    """``token_for("admin")``: creates a staff account with that role and logs in over the
    API. Tokens are signed with the test secret, so they are valid for every test app."""
    from banshi.auth import create_user

    def make(role: str) -> str:
        username = f"{role}-{secrets.token_hex(4)}"
        password = f"pw-{role}-12345"
        with shared_hashing_kb.db.session() as s:
            create_user(s, username, password, role)
        r = shared_client.post("/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        assert r.json()["role"] == role
        return str(r.json()["token"])

    return make


# -- PostgreSQL --------------------------------------------------------------------------
@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL of a brand-new, empty PostgreSQL database, dropped after the test."""
    if not PG_URL_FROM_ENV:
        pytest.skip(f"{PG_ENV} is not set")
    pytest.importorskip("psycopg", reason="the 'postgres' extra (psycopg) is not installed")
    maintenance = make_url(PG_URL_FROM_ENV)
    name = f"banshi_test_{secrets.token_hex(6)}"
    admin = create_engine(maintenance, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield maintenance.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, settings: Settings) -> str:
    """A migrated database's URL, once on SQLite and once (marker ``postgres``) on PostgreSQL,
    for tests that open their own engines on it (several "processes" over one database)."""
    url: str = (
        settings.resolved_database_url
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    database = Database(url)
    database.upgrade()
    database.dispose()
    return url


# -- speech synthesis ---------------------------------------------------------------------
@pytest.fixture
def espeak():  # type: ignore[no-untyped-def]
    """The real synthesizer (pyttsx3 + espeak-ng); skipped where scripts/voice-setup did not run."""
    from kiosk.tts import EspeakSynthesizer

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is missing: run scripts/voice-setup")
    pytest.importorskip("pyttsx3", reason="pyttsx3 (extra voice) is not installed")
    return EspeakSynthesizer()
