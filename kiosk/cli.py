"""``banshi kiosk …``: the lobby kiosk's printer.

``banshi.cli`` is imported inside the commands: it imports this module when it registers
its parts (see ``ticket_bridge.cli``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import click

if TYPE_CHECKING:
    from banshi.settings import Settings
    from kiosk.printing.layout import PaperWidth
    from kiosk.printing.ticket import QueueTicketPrint


@click.group()
def kiosk() -> None:
    """Lobby kiosk (大厅取号机): the queue's configuration and the ticket printer."""


@kiosk.command("validate")
@click.pass_context
def validate(ctx: click.Context) -> None:
    """Check queue.yml (beside catalog.yml) against the catalogue: services, windows, rules."""
    from banshi.cli import Context
    from kiosk.errors import QueueConfigInvalid
    from kiosk.queue.config import QueueConfig
    from knowledge_base.source import Catalog

    source = ctx.ensure_object(Context).settings.kb_source_dir
    catalog = Catalog.load(source)
    try:
        config = QueueConfig.load(
            source / "queue.yml", set(catalog.departments), set(catalog.items)
        )
    except QueueConfigInvalid as exc:
        raise click.ClickException(exc.detail) from exc
    served = {i for s in config.services.values() for i in s.items}
    click.echo(
        f"queue.yml: {len(config.services)} services, {len(config.windows)} windows; "
        f"{len(served)} of {len(catalog.items)} catalogue items have a queue"
    )


@kiosk.command("print-test")
@click.option(
    "--paper",
    type=click.Choice(["58", "80"]),
    default=None,
    help="Paper width in mm (default: BANSHI_KIOSK_PAPER_MM).",
)
@click.pass_context
def print_test(ctx: click.Context, paper: str | None) -> None:
    """Print a sample ticket (A012, 居住证申领, QR, cut) on BANSHI_KIOSK_PRINTER."""
    from banshi.cli import Context
    from kiosk.errors import PrinterUnavailable
    from kiosk.printing.connection import parse_printer_url
    from kiosk.printing.service import print_ticket, ticket_bytes
    from kiosk.printing.status import PrinterStatus

    settings = ctx.ensure_object(Context).settings
    paper_mm = cast("PaperWidth", int(paper) if paper else settings.kiosk_paper_mm)
    config = parse_printer_url(settings.kiosk_printer)
    ticket = sample_ticket(settings)
    size = len(ticket_bytes(ticket, paper_mm))
    try:
        state = print_ticket(config.open, ticket, paper_mm=paper_mm, check=config.check_status)
    except PrinterUnavailable as exc:
        raise click.ClickException(f"{exc.detail} — {exc.message}") from exc
    what = f"sample ticket {ticket.number} ({paper_mm} mm, {size} bytes of ESC/POS)"
    if config.kind == "file":
        click.echo(f"{what} appended to {config.path}")
    elif config.kind == "dummy":
        click.echo(f"{what} rendered in memory only: set BANSHI_KIOSK_PRINTER to print")
    else:
        click.echo(f"{what} sent to {config.name}")
    if state.status is PrinterStatus.PAPER_NEAR_END:
        click.echo(f"warning: {state.detail} — {state.message}", err=True)


def sample_ticket(settings: Settings) -> QueueTicketPrint:
    """A ticket as the kiosk would print it, with the configured centre's name."""
    from kiosk.display import centre_name
    from kiosk.printing.ticket import QueueTicketPrint

    name = centre_name(settings)
    base = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    return QueueTicketPrint(
        centre_name=name,
        number="A012",
        service_name="居住证申领",
        windows="1楼A区 A01—A08",
        people_ahead=3,
        estimated_wait_minutes=12,
        taken_at=datetime.now(UTC),
        status_url=f"{base}/queue/A012",
        tip="温馨提示：请留意大厅屏幕和语音叫号，过号请到服务台重新排队。本号当日有效。",
    )
