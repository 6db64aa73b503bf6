"""Migrations and units of work, on SQLite and (marker ``postgres``) on PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

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
