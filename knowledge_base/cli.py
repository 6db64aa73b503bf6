"""``banshi kb …``: load, index, ask, import FAQ spreadsheets, calibrate."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from banshi.cli import Context, pass_context
from knowledge_base.errors import KnowledgeBaseError

if TYPE_CHECKING:
    from knowledge_base.service import KnowledgeBase


def _kb(ctx: Context) -> KnowledgeBase:
    from knowledge_base.service import KnowledgeBase

    return KnowledgeBase(ctx.settings, ctx.db)


@click.group()
def kb() -> None:
    """Knowledge base (知识库)."""


@kb.command()
@click.argument(
    "folder", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False
)
@pass_context
def validate(ctx: Context, folder: Path | None) -> None:
    """Check every source file; print each problem with its file and field."""
    from knowledge_base.source import load_folder

    result = load_folder(folder or ctx.settings.kb_source_dir)
    for e in result.errors:
        click.echo(f"✗ {e.message}", err=True)
    click.echo(f"{len(result.documents)} valid documents, {len(result.errors)} problems")
    sys.exit(1 if result.errors else 0)


@kb.command()
@click.argument(
    "folder", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False
)
@pass_context
def load(ctx: Context, folder: Path | None) -> None:
    """Import the source files into the database (valid files only) and update the index."""
    knowledge = _kb(ctx)
    knowledge.start()
    result = knowledge.import_folder(folder or ctx.settings.kb_source_dir, user="cli")
    for e in result.errors:
        click.echo(f"✗ {e.message}", err=True)
    click.echo(
        f"loaded {len(result.documents)} documents; {len(result.errors)} problems "
        "(files with problems keep their previous version)"
    )
    sys.exit(1 if result.errors else 0)


@kb.command()
@click.option("--rebuild", is_flag=True, help="Discard the saved index and embed everything.")
@pass_context
def index(ctx: Context, rebuild: bool) -> None:
    """Build or update the search index (imports the sample data into an empty database)."""
    import shutil

    if rebuild:
        shutil.rmtree(ctx.settings.kb_index_dir, ignore_errors=True)
    knowledge = _kb(ctx)
    started = time.perf_counter()
    report = knowledge.start()
    h = knowledge.health()
    click.echo(
        f"index: {h['documents']} documents, {h['chunks']} chunks, encoder {h['encoder']}"
        f"{'' if h['calibrated'] else ' (UNCALIBRATED)'}; "
        f"{report.added} added, {report.updated} updated, {report.removed} removed, "
        f"{report.chunks_embedded} chunks embedded in {time.perf_counter() - started:.1f}s"
    )


@kb.command()
@click.argument("question", required=False)
@click.option("--jsonl", is_flag=True, help="Questions on stdin, one per line; JSON out.")
@pass_context
def ask(ctx: Context, question: str | None, jsonl: bool) -> None:
    """Answer a question (or many with --jsonl)."""
    knowledge = _kb(ctx)
    knowledge.start()
    if jsonl:
        out = sys.stdout
        for line in sys.stdin:
            q = line.rstrip("\r\n")
            try:
                record = knowledge.ask(q).contract()
            except KnowledgeBaseError as exc:  # keep one output line per input line
                record = {
                    "question": q,
                    "answered": False,
                    "item_id": None,
                    "confidence": 0.0,
                    "answer": exc.message,
                    "sources": [],
                    "candidates": [],
                }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
        return
    if question is None:
        raise click.UsageError("give a question, or --jsonl to read them from stdin")
    a = knowledge.ask(question)
    click.echo(a.answer)
    if a.notice:
        click.echo(f"（{a.notice}）")
    if a.answered and a.item:
        click.echo(f"\n事项：{a.item['title']}（{a.item_id}）  可信度：{a.confidence:.0%}")
        for s in a.sources:
            click.echo(f"来源：{s['title']} · {s['section']}")
    else:
        click.echo(f"\n未作答（可信度 {a.confidence:.0%}）")
    if a.suggestions:
        click.echo("您可能还想问：" + " / ".join(a.suggestions))


@kb.command("import-faq")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show what would be imported, store nothing.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the imported pairs as a source-format FAQ file.",
)
@pass_context
def import_faq(ctx: Context, file: Path, dry_run: bool, out: Path | None) -> None:
    """Import an FAQ spreadsheet (xlsx, csv or jsonl with question/answer/department)."""
    from knowledge_base.importer import import_faq_file

    knowledge = _kb(ctx)
    knowledge.start()
    report = import_faq_file(knowledge, file, dry_run=dry_run, out=out)
    for problem in report.skipped:
        click.echo(f"✗ {problem}", err=True)
    verb = "would import" if dry_run else "imported"
    click.echo(
        f"{verb} {len(report.documents)} of {report.rows} rows; {len(report.skipped)} skipped"
    )


@kb.command()
@click.argument("dev", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_context
def calibrate(ctx: Context, dev: Path) -> None:
    """Fit fusion weight and confidence model on a labelled JSONL question set."""
    from knowledge_base.calibrate import calibrate_from_file

    knowledge = _kb(ctx)
    knowledge.start()
    click.echo(calibrate_from_file(knowledge, dev))
