"""Database engine, sessions and migrations (SQLAlchemy 2 + Alembic).

SQLite (WAL) is the embedded default; PostgreSQL is selected by URL. Schema changes are made
only by Alembic migrations (``banshi db upgrade``), never by ``create_all``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Dialect, Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Stable constraint names, so migrations behave the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A moment, stored in UTC and read back aware on every database.

    SQLite keeps no offset: a value in the centre's zone (+08:00) would be stored as its
    wall-clock time and read back 8 hours off. Converting on the way in (also for values
    compared in WHERE clauses) makes SQLite and PostgreSQL agree.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:  # naive values in this code base are UTC
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints, safe with WAL
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class SchemaNotCurrent(RuntimeError):
    """The database has not been migrated for this version of the code."""


class Database:
    """An engine and its session factory; one per process, made at start-up."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on any error."""
        with self._sessions() as s, s.begin():
            yield s

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (safe to call on every start)."""
        from alembic import command

        command.upgrade(alembic_config(self.url), "head")

    def require_head(self) -> None:
        """For processes that do not migrate (BANSHI_MIGRATE=check): refuse to serve a
        schema older or newer than this code, naming the command that fixes it."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config(self.url)).get_current_head()
        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        if current != head:
            raise SchemaNotCurrent(
                f"database schema is at {current or 'nothing'}, this code needs {head}: "
                "run `banshi db upgrade` once for this deploy, then start the API processes"
            )

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def all_models() -> MetaData:
    """Import every part's models so that Base.metadata knows all tables."""
    import assistant.models
    import assistant.voice.records  # noqa: F401
    import banshi.auth  # noqa: F401
    import kiosk.forms.models
    import kiosk.queue.models  # noqa: F401
    import knowledge_base.models  # noqa: F401
    import ticket_bridge.models  # noqa: F401

    return Base.metadata
