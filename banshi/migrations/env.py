"""Alembic environment: runs migrations on the URL that banshi passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from banshi.db import all_models, make_engine

config = context.config
target_metadata = all_models()


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # Several API processes may start at once: one migrates, the others wait.
            conn.execute(text("SELECT pg_advisory_lock(724611)"))
            conn.commit()
        context.configure(
            connection=conn,
            target_metadata=target_metadata,
            render_as_batch=conn.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_unlock(724611)"))
            conn.commit()
    engine.dispose()


run_migrations_online()
