"""``banshi bridge …``: the outbox of webhooks to outside systems.

``banshi.cli`` is imported inside the commands, not at the top: it imports this module when
it registers its parts, so a top-level import would fail whenever this module is imported
first (``import ticket_bridge.cli`` → ``banshi.cli`` → ``from ticket_bridge.cli import …``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from banshi.db import Database


def _db(ctx: click.Context) -> Database:
    from banshi.cli import Context

    return ctx.ensure_object(Context).db


@click.group()
def bridge() -> None:
    """Ticket bridge (工单对接): webhooks to and from outside systems."""


@bridge.command()
@click.option("--retry-failed", is_flag=True, help="Send failed events again (fresh attempts).")
@click.option("--target", default=None, metavar="NAME", help="Only this target.")
@click.pass_context
def outbox(ctx: click.Context, retry_failed: bool, target: str | None) -> None:
    """Events by target and status, and the newest errors."""
    from ticket_bridge.delivery import outbox_report
    from ticket_bridge.delivery import retry_failed as reset_failed

    db = _db(ctx)
    if retry_failed:
        n = reset_failed(db, target)
        click.echo(f"{n} failed events are pending again" + (f" for {target}" if target else ""))
        return
    report = outbox_report(db, target)
    if not report["counts"]:
        click.echo("outbox is empty" + (f" for {target}" if target else ""))
        return
    click.echo(f"{'target':<32} {'pending':>8} {'delivered':>10} {'failed':>7}")
    for name, c in sorted(report["counts"].items()):
        click.echo(f"{name:<32} {c['pending']:>8} {c['delivered']:>10} {c['failed']:>7}")
    if report["last_errors"]:
        click.echo("last errors:")
    for e in report["last_errors"]:
        click.echo(
            f"  #{e['id']} {e['target']} {e['event']} ticket {e['ticket']} {e['status']}, "
            f"{e['attempts']} attempts, next {e['next_at']}: {e['error']}"
        )
