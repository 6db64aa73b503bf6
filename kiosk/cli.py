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
    from kiosk.printing.connection import PrinterConfig
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
@click.option(
    "--kiosk",
    "kiosk_id",
    default=None,
    metavar="ID",
    help="Only this kiosk's printer (default: every printer of BANSHI_KIOSK_PRINTER).",
)
@click.pass_context
def print_test(ctx: click.Context, paper: str | None, kiosk_id: str | None) -> None:
    """Print a sample ticket (A012, 居住证申领, QR, cut) on BANSHI_KIOSK_PRINTER: on its one
    printer, or, when it names printers per kiosk, on each (the slip says for which
    kiosks) or on --kiosk's."""
    from banshi.cli import Context
    from kiosk.per_kiosk import for_kiosk
    from kiosk.printing.connection import kiosks_by_printer, parse_printer_map

    settings = ctx.ensure_object(Context).settings
    paper_mm = cast("PaperWidth", int(paper) if paper else settings.kiosk_paper_mm)
    printers = parse_printer_map(settings.kiosk_printer)
    if list(printers) == ["*"]:  # one printer for every kiosk
        _print_sample(printers["*"], sample_ticket(settings), paper_mm)
        return
    if kiosk_id is not None:
        config = for_kiosk(printers, kiosk_id)
        if config is None:
            raise click.ClickException(
                f"kiosk {kiosk_id!r} has no printer: BANSHI_KIOSK_PRINTER neither lists it "
                "nor has '*'"
            )
        _print_sample(config, sample_ticket(settings, kiosks=[kiosk_id]), paper_mm, [kiosk_id])
        return
    shared = kiosks_by_printer(printers)
    failed = 0
    for config, kiosks in shared.items():
        try:
            _print_sample(config, sample_ticket(settings, kiosks=kiosks), paper_mm, kiosks)
        except click.ClickException as exc:
            failed += 1
            click.echo(f"Error: {exc.message}", err=True)
    if failed:
        raise click.ClickException(f"{failed} of {len(shared)} printers did not print")


def _print_sample(
    config: PrinterConfig,
    ticket: QueueTicketPrint,
    paper_mm: PaperWidth,
    kiosks: list[str] | None = None,
) -> None:
    from kiosk.errors import PrinterUnavailable
    from kiosk.printing.service import print_ticket, ticket_bytes
    from kiosk.printing.status import PrinterStatus

    size = len(ticket_bytes(ticket, paper_mm))
    which = f" (kiosks {', '.join(kiosks)})" if kiosks else ""
    try:
        state = print_ticket(config.open, ticket, paper_mm=paper_mm, check=config.check_status)
    except PrinterUnavailable as exc:
        raise click.ClickException(f"{exc.detail}{which} — {exc.message}") from exc
    what = f"sample ticket {ticket.number} ({paper_mm} mm, {size} bytes of ESC/POS)"
    if config.kind == "file":
        click.echo(f"{what} appended to {config.path}{which}")
    elif config.kind == "dummy":
        click.echo(f"{what} rendered in memory only{which}: set BANSHI_KIOSK_PRINTER to print")
    else:
        click.echo(f"{what} sent to {config.name}{which}")
    if state.status is PrinterStatus.PAPER_NEAR_END:
        click.echo(f"warning: {state.detail}{which} — {state.message}", err=True)


def sample_ticket(settings: Settings, kiosks: list[str] | None = None) -> QueueTicketPrint:
    """A ticket as the kiosk would print it, with the configured centre's name; with
    ``kiosks``, its tip says which kiosks' printer this is (``*``: the others)."""
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
        tip=f"打印测试：本打印机为{_kiosk_names(kiosks)}出票。"
        if kiosks
        else "温馨提示：请留意大厅屏幕和语音叫号，过号请到服务台重新排队。本号当日有效。",
    )


def _kiosk_names(kiosks: list[str]) -> str:
    names = "、".join(k for k in kiosks if k != "*")
    if "*" not in kiosks:
        return f"{names}号取号机"
    return f"{names}号及其他未列出的取号机" if names else "未单独列出的取号机"
