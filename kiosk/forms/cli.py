"""``banshi forms …``: check the form sample definitions and draw one, without the server."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def forms() -> None:
    """Form samples (电子样表): definitions in forms/ beside catalog.yml."""


@forms.command("validate")
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def validate(ctx: click.Context, folder: Path | None) -> None:
    """Check every forms/*.yml against the format and the catalogue; names each bad field."""
    from banshi.cli import Context
    from kiosk.errors import FormInvalid
    from kiosk.forms.definition import parse_definition
    from kiosk.forms.library import definitions_in
    from knowledge_base.source import Catalog

    source = ctx.ensure_object(Context).settings.kb_source_dir
    catalog = Catalog.load(source)
    folder = folder or source / "forms"
    problems: list[str] = []
    ids: dict[str, str] = {}  # form id -> the file that has it
    fields = 0
    for path, data in definitions_in(folder):
        try:
            form = parse_definition(data, catalog.departments, catalog.items, source=path.name)
        except FormInvalid as exc:
            problems.append(exc.detail)
            continue
        if form.id in ids:
            problems.append(
                f"form definition {path.name} id: {form.id!r} is also used by {ids[form.id]}"
            )
        ids.setdefault(form.id, path.name)
        fields += len(form.fields)
    for p in problems:
        click.echo(p, err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} form definition(s) refused")
    click.echo(f"forms: {len(ids)} definitions, {fields} fields, all valid ({folder})")


@forms.command("render")
@click.argument("form_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--blank", is_flag=True, help="The blank form instead of the filled-in sample.")
@click.option("--format", "fmt", type=click.Choice(["pdf", "png"]), default="pdf")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def render(form_file: Path, blank: bool, fmt: str, out: Path) -> None:
    """Draw FORM_FILE (a definition) as PDF or PNG, to look at it before uploading."""
    import yaml

    from kiosk.errors import FormInvalid
    from kiosk.forms import render as drawing
    from kiosk.forms.definition import parse_definition

    try:
        form = parse_definition(
            yaml.safe_load(form_file.read_text(encoding="utf-8")), source=form_file.name
        )
    except FormInvalid as exc:
        raise click.ClickException(exc.detail) from exc
    filled = not blank
    data = drawing.render_pdf(form, filled) if fmt == "pdf" else drawing.render_png(form, filled)
    out.write_bytes(data)
    click.echo(f"{form.title} ({'blank' if blank else 'sample'}) → {out} ({len(data)} bytes)")


@forms.command("upload")
@click.argument("form_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--by", default="cli", help="Who uploads (kept with the version).")
@click.pass_context
def upload(ctx: click.Context, form_file: Path, by: str) -> None:
    """Store FORM_FILE as the form's next version; running kiosks show it within seconds."""
    import yaml

    from banshi.cli import Context
    from kiosk.errors import FormInvalid
    from kiosk.forms.library import FormLibrary, departments_and_items
    from knowledge_base.source import Catalog

    context = ctx.ensure_object(Context)
    settings = context.settings
    departments, items = departments_and_items(Catalog.load(settings.kb_source_dir))
    library = FormLibrary(context.db, departments, items, None, settings.forms_cache_dir)
    try:
        data = yaml.safe_load(form_file.read_text(encoding="utf-8"))
        result = library.store(data, f"upload {form_file.name}", by)
    except (FormInvalid, yaml.YAMLError) as exc:
        raise click.ClickException(getattr(exc, "detail", str(exc))) from exc
    click.echo(f"{result['id']}: version {result['version']} ({result['status']})")
