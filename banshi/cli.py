"""The ``banshi`` command. Each part adds its own sub-commands (``banshi kb …``)."""

from __future__ import annotations

import getpass
import logging
import sys

import click

from banshi.db import Database
from banshi.settings import Settings, get_settings


class Context:
    """Settings and the database, made on first use by a sub-command."""

    def __init__(self) -> None:
        self._db: Database | None = None

    @property
    def settings(self) -> Settings:
        return get_settings()

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.settings.resolved_database_url)
            self._db.upgrade()
        return self._db


pass_context = click.make_pass_decorator(Context, ensure=True)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """banshi 办事 — 区政务服务中心自助服务。"""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = Context()


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_context
def db_upgrade(ctx: Context) -> None:
    """Apply all migrations (safe to run repeatedly)."""
    ctx.db  # noqa: B018 - creating it migrates
    click.echo(f"database at head: {ctx.settings.resolved_database_url.split('@')[-1]}")


@main.group()
def users() -> None:
    """Staff accounts."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(["agent", "supervisor", "admin"]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--if-missing", is_flag=True, help="Do nothing when the user exists.")
@pass_context
def users_add(
    ctx: Context, username: str, role: str, password_stdin: bool, if_missing: bool
) -> None:
    """Create a staff account."""
    from sqlalchemy import select

    from banshi.auth import User, create_user

    with ctx.db.session() as s:
        if if_missing and s.scalar(select(User).where(User.username == username)):
            click.echo(f"user {username} exists")
            return
    password = (
        sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass("password: ")
    )
    with ctx.db.session() as s:
        create_user(s, username, password, role)
    click.echo(f"created {role} {username}")


@main.command()
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@pass_context
def serve(ctx: Context, host: str | None, port: int | None) -> None:
    """Run the API and pages (uvicorn)."""
    import uvicorn

    from banshi.app import create_app

    s = ctx.settings
    click.echo(f"banshi: open http://{host or s.host}:{port or s.port}/ (Ctrl+C to stop)")
    uvicorn.run(create_app(s), host=host or s.host, port=port or s.port, log_level="info")


def _register_parts() -> None:
    from knowledge_base.cli import kb

    main.add_command(kb)


_register_parts()
