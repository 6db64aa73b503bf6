"""Migrations and units of work, on SQLite and (marker ``postgres``) on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text

from banshi.auth import User, authenticate, create_user
from banshi.db import Database, alembic_config, all_models
from banshi.settings import Settings

EXPECTED_TABLES = {
    "users",
    "kb_documents",
    "kb_state",
    "chat_conversations",
    "chat_messages",
    "chat_handoffs",
}


def _check_migrated(database: Database) -> None:
    tables = set(inspect(database.engine).get_table_names())
    assert tables >= EXPECTED_TABLES
    assert "alembic_version" in tables
    with database.engine.connect() as conn:
        head = ScriptDirectory.from_config(alembic_config(database.url)).get_current_head()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            head
        ]
        # the migrations produce exactly what the models describe
        assert compare_metadata(MigrationContext.configure(conn), all_models()) == []


def test_upgrade_creates_the_tables(settings: Settings) -> None:
    database = Database(settings.resolved_database_url)
    try:
        assert inspect(database.engine).get_table_names() == []
        database.upgrade()
        _check_migrated(database)
    finally:
        database.dispose()


def test_upgrade_twice_is_idempotent_and_keeps_data(db: Database) -> None:
    with db.session() as s:
        create_user(s, "keeper", "keeper-pass-1", "admin")
    db.upgrade()
    db.upgrade()
    _check_migrated(db)
    with db.session() as s:
        assert s.query(User).count() == 1


def test_session_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as s:
        create_user(s, "halfway", "halfway-pass", "agent")
        raise RuntimeError("boom")
    with db.session() as s:
        assert s.query(User).filter_by(username="halfway").count() == 0


def test_sqlite_runs_in_wal_mode_with_foreign_keys(db: Database) -> None:
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


@pytest.mark.postgres
def test_postgres_upgrade_twice_is_idempotent(pg_url: str) -> None:
    database = Database(pg_url)
    try:
        assert database.engine.dialect.name == "postgresql"
        database.upgrade()
        with database.session() as s:
            create_user(s, "pg-admin", "pg-admin-pass", "admin")
        database.upgrade()
        _check_migrated(database)
        with database.session() as s:
            assert authenticate(s, "pg-admin", "pg-admin-pass").role == "admin"
    finally:
        database.dispose()


@pytest.mark.postgres
def test_postgres_unique_username(pg_url: str) -> None:
    from banshi.errors import Conflict

    database = Database(pg_url)
    try:
        database.upgrade()
        with database.session() as s:
            create_user(s, "same", "password-1", "agent")
        with pytest.raises(Conflict), database.session() as s:
            create_user(s, "same", "password-2", "agent")
    finally:
        database.dispose()


def _check_moments_survive_a_round_trip(database: Database) -> None:
    """A moment in the centre's zone reads back as the same moment, and compares as one."""
    beijing_9am = dt.datetime(2026, 12, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    with database.session() as s:
        create_user(s, "clock", "clock-pass-1", "agent")
        s.execute(User.__table__.update().values(created_at=beijing_9am))
    with database.session() as s:
        stored = s.scalars(select(User.created_at).where(User.username == "clock")).one()
        assert stored == beijing_9am
        assert stored.utcoffset() == dt.timedelta(0)
        assert (stored.hour, stored.day) == (1, 2)  # 01:00 UTC
        # a bound value in another zone is compared as a moment, not as wall-clock text
        later = beijing_9am.replace(hour=9, minute=30)
        assert s.scalars(select(User.username).where(User.created_at < later)).all() == ["clock"]
        earlier = dt.datetime(2026, 12, 2, 0, 59, tzinfo=dt.UTC)
        assert s.scalars(select(User.username).where(User.created_at < earlier)).all() == []


def test_sqlite_keeps_moments_in_utc(db: Database) -> None:
    _check_moments_survive_a_round_trip(db)


@pytest.mark.postgres
def test_postgres_keeps_moments_in_utc(pg_url: str) -> None:
    database = Database(pg_url)
    try:
        database.upgrade()
        with database.session() as s:
            s.execute(User.__table__.delete().where(User.username == "clock"))
        _check_moments_survive_a_round_trip(database)
    finally:
        database.dispose()
