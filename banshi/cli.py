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


@users.command("password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_context
def users_password(ctx: Context, username: str, password_stdin: bool) -> None:
    """Set a new password for a staff account."""
    from banshi.auth import set_password

    password = (
        sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass("password: ")
    )
    with ctx.db.session() as s:
        set_password(s, username, password)
    click.echo(f"password of {username} changed")


@main.command()
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@click.option("--no-rasa", is_flag=True, help="Do not start Rasa (chat answers directly).")
@click.option(
    "--production",
    is_flag=True,
    help="PostgreSQL, Redis, several API and Rasa processes behind nginx (banshi/production.py).",
)
@click.option("--api", "api_processes", default=2, show_default=True, help="With --production.")
@click.option("--rasa", "rasa_processes", default=1, show_default=True, help="With --production.")
@pass_context
def serve(
    ctx: Context,
    host: str | None,
    port: int | None,
    no_rasa: bool,
    production: bool,
    api_processes: int,
    rasa_processes: int,
) -> None:
    """Run the API and pages (uvicorn) and, beside them, the Rasa server."""
    if production:
        _serve_production(ctx.settings, port, api_processes, 0 if no_rasa else rasa_processes)
        return
    import signal
    import threading

    import httpx
    import uvicorn

    from assistant.rasa_process import RasaProcess
    from assistant.rasa_project import RasaProject, RasaUnavailable
    from banshi.app import create_app

    s = ctx.settings
    host, port = host or s.host, port or s.port
    rasa: RasaProcess | None = None
    if not no_rasa:
        try:
            rasa = RasaProcess(RasaProject(s.model_copy(update={"port": port})))
            rasa.start()
        except RasaUnavailable as exc:
            click.echo(f"banshi: {exc}; chat answers from the knowledge base only", err=True)
            rasa = None

    def announce() -> None:
        api_ok = False
        for _ in range(600):
            try:
                api_ok = httpx.get(f"http://{host}:{port}/healthz", timeout=1).status_code < 500
            except httpx.HTTPError:
                api_ok = False
            if api_ok:
                break
            threading.Event().wait(0.5)
        rasa_ok = rasa.wait_ready() if rasa else False
        state = "with Rasa" if rasa_ok else "WITHOUT Rasa (answers from the knowledge base)"
        click.echo(f"banshi: ready {state} at http://{host}:{port}/ and /chat (Ctrl+C to stop)")

    threading.Thread(target=announce, daemon=True).start()
    # uvicorn re-raises SIGTERM after its graceful shutdown; turn it into SystemExit so that
    # the `finally` below stops Rasa too instead of the process dying on the spot.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(create_app(s), host=host, port=port, log_level="info")
    finally:
        if rasa:
            rasa.stop()


def _serve_production(s: Settings, port: int | None, api: int, rasa: int) -> None:
    import signal
    import threading

    from banshi.production import Plan, Topology, TopologyError

    if api < 1:
        raise click.ClickException("--api must be at least 1")
    plan = Plan(api_processes=api, rasa_processes=max(rasa, 1), rasa=rasa > 0)
    if port:
        plan = Plan(**{**plan.__dict__, "public_port": port})
    topology = Topology(s, plan)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    click.echo(f"banshi: starting {api} API and {rasa} Rasa processes, logs in {topology.logs}")
    try:
        topology.start()
    except TopologyError as exc:
        raise click.ClickException(str(exc)) from exc
    names = ", ".join(f"{n} ({c.pid})" for n, c in topology.children.items())
    click.echo(f"banshi: ready at {topology.public_url}/ — {names} (Ctrl+C to stop)")
    click.echo(f"banshi: administrator admin, password ADMIN_PASSWORD in {topology.secrets_file}")
    try:
        done.wait()
    finally:
        click.echo("banshi: stopping")
        topology.stop()


@main.group()
def production() -> None:
    """The production topology's files."""


@production.command("nginx-conf")
@click.option("--api", "api", multiple=True, required=True, help="host:port, once per process.")
@click.option("--rasa", "rasa", multiple=True, required=True, help="host:port, once per server.")
@click.option("--listen", default="80", show_default=True)
@click.option("--internal-listen", default="8090", show_default=True)
def nginx_conf(
    api: tuple[str, ...], rasa: tuple[str, ...], listen: str, internal_listen: str
) -> None:
    """Print the nginx configuration for containers (docker/nginx.conf is this output)."""
    from banshi.nginx import NginxLayout, render

    layout = NginxLayout(list(api), list(rasa), listen, internal_listen)
    click.echo(render(layout), nl=False)


def _register_parts() -> None:
    from assistant.cli import rasa
    from assistant.voice.cli import voice
    from kiosk.cli import kiosk
    from kiosk.forms.cli import forms
    from knowledge_base.cli import kb
    from ticket_bridge.cli import bridge

    main.add_command(kb)
    main.add_command(rasa)
    main.add_command(bridge)
    main.add_command(kiosk)
    main.add_command(forms)
    main.add_command(voice)


_register_parts()
