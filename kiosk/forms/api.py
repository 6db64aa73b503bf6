"""HTTP for the form samples: browse and search (kiosks, phones, the web), a form's detail
with its field explanations, the rendered images and PDFs, printing at a kiosk, and the
administrators' uploads (a new version of a definition, validated, with the field named
when it is refused)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from banshi.deps import AdminDep, SupervisorDep
from banshi.errors import BanshiError, Unavailable
from kiosk.errors import FormInvalid
from kiosk.forms.library import FormLibrary, Stored
from kiosk.forms.printing import A4Printer
from kiosk.printing.checklist import FieldChecklistPrint
from kiosk.printing.ticket_printer import NO_PRINTER_CHECKLIST, no_printer, printer_for
from kiosk.qr import svg_response

router = APIRouter(tags=["forms"])
FORM_ID = r"^[a-z0-9][a-z0-9-]{2,63}$"
FormId = Annotated[str, Path(pattern=FORM_ID)]
MAX_UPLOAD_BYTES = 128 * 1024
MEDIA = {"png": "image/png", "pdf": "application/pdf"}
CHECKLIST_NOTE = "请用黑色签字笔填写，字迹工整，不要涂改；不清楚的请到综合咨询台询问。"


def _library(request: Request) -> FormLibrary:
    library: FormLibrary | None = getattr(request.app.state, "forms", None)
    if library is None:
        raise Unavailable("样表库正在启动，请稍后再试。", "form library not started")
    return library


@router.get("/api/forms")
async def search(
    request: Request,
    q: Annotated[str, Query(max_length=40)] = "",
    department: Annotated[str, Query(max_length=32)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    service: Annotated[str, Query(max_length=64)] = "",
) -> dict[str, Any]:
    library = _library(request)
    forms = await asyncio.to_thread(library.search, q, department or None, limit, service or None)
    return {"query": q, "total": len(forms), "forms": forms}


@router.get("/api/forms/departments")
async def departments(request: Request) -> dict[str, Any]:
    return {"departments": await asyncio.to_thread(_library(request).department_index)}


@router.get("/api/forms/{form_id}")
async def detail(
    form_id: FormId,
    request: Request,
    channel: Literal["kiosk", "phone", "web"] = "web",
) -> dict[str, Any]:
    library = _library(request)
    stored = await asyncio.to_thread(library.get, form_id)
    await asyncio.to_thread(library.record_view, form_id, channel)
    similar = await asyncio.to_thread(library.similar, form_id)
    a4: A4Printer | None = getattr(request.app.state, "a4_printer", None)
    return {
        **_detail(library, stored),
        "similar": [
            {"id": s.form.id, "title": s.form.title, "thumb": library.card(s)["thumb"]}
            for s in similar
        ],
        "phone_url": _phone_url(request, form_id),
        "qr": f"/api/forms/{form_id}/qr.svg",
        "a4_printer": bool(a4 and a4.configured),
    }


def _detail(library: FormLibrary, stored: Stored) -> dict[str, Any]:
    f = stored.form
    base = f"/api/forms/{f.id}"
    v = f"?v={f.digest}"
    return {
        **library.card(stored),
        "issuer": f.issuer,
        "digest": f.digest,
        "updated_at": stored.updated_at.isoformat(timespec="seconds"),
        "services": [{"id": i, "name": library.items.get(i, i)} for i in f.services],
        "sections": [
            {
                "title": s.title,
                "fields": [
                    {
                        "number": x.number,
                        "key": x.key,
                        "label": x.label,
                        "kind": x.kind,
                        "sample": x.sample,
                        "how": x.how,
                        "mistakes": list(x.mistakes),
                        "required": x.required,
                        "options": list(x.options),
                    }
                    for x in s.fields
                ],
            }
            for s in f.sections
        ],
        "notes": list(f.notes),
        "images": {
            "sample_png": f"{base}/sample.png{v}",
            "blank_png": f"{base}/blank.png{v}",
            "sample_pdf": f"{base}/sample.pdf{v}",
            "blank_pdf": f"{base}/blank.pdf{v}",
        },
    }


@router.get("/api/forms/{form_id}/qr.svg")
async def qr(form_id: FormId, request: Request) -> Response:
    await asyncio.to_thread(_library(request).get, form_id)  # 404 for an unknown form
    return svg_response(_phone_url(request, form_id), "扫码在手机上查看样表")


@router.get("/api/forms/{form_id}/{kind}.{fmt}")
async def image(
    form_id: FormId,
    kind: Literal["sample", "blank", "thumb"],
    fmt: Literal["png", "pdf"],
    request: Request,
) -> Response:
    if kind == "thumb" and fmt != "png":
        raise BanshiError("缩略图只有图片格式。", "thumb is png only")
    library = _library(request)
    data, digest = await asyncio.to_thread(library.image, form_id, kind, fmt)
    etag = f'"{digest}-{kind}-{fmt}"'
    headers = {"ETag": etag, "Cache-Control": "public, max-age=60"}
    if fmt == "pdf":
        name = f"{form_id}-{'sample' if kind == 'sample' else 'blank'}.pdf"
        headers["Content-Disposition"] = f'inline; filename="{name}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=MEDIA[fmt], headers=headers)


class PrintIn(BaseModel):
    what: Literal["blank", "checklist"]
    kiosk: str = Field(default="", max_length=32)


@router.post("/api/forms/{form_id}/print")
async def print_form(form_id: FormId, body: PrintIn, request: Request) -> dict[str, Any]:
    """The blank form on the A4 printer, or the 填写要点 on the ticket printer: both the
    kiosk's own (BANSHI_FORMS_A4_PRINTER, BANSHI_KIOSK_PRINTER)."""
    library = _library(request)
    form = (await asyncio.to_thread(library.get, form_id)).form
    if body.what == "checklist":
        printers = getattr(request.app.state, "ticket_printer", None)
        if printers is None:
            raise Unavailable("打印机正在启动，请稍后再试。", "ticket printer not started")
        printer = printer_for(printers, body.kiosk)  # the kiosk's own (BANSHI_KIOSK_PRINTER)
        if printer is None:
            raise no_printer(body.kiosk, NO_PRINTER_CHECKLIST)
        slip = FieldChecklistPrint(f"{form.title} 填写要点", form.checklist_lines(), CHECKLIST_NOTE)
        await asyncio.to_thread(printer.print_field_checklist, slip)
        return {"printed": True, "message": "填写要点已打印，请在取号出纸口取走。"}
    a4: A4Printer | None = getattr(request.app.state, "a4_printer", None)
    if a4 is None:
        raise Unavailable("A4打印机正在启动，请稍后再试。", "A4 printer not started")
    a4.check_configured(body.kiosk)  # before drawing the form: most kiosks have none
    pdf, _ = await asyncio.to_thread(library.image, form_id, "blank", "pdf")
    job = await asyncio.to_thread(a4.print_pdf, pdf, form.title, (body.kiosk, form_id))
    return {"printed": True, "job": job, "message": "空白表已打印，请在下方出纸口取表。"}


# -- administrators --------------------------------------------------------------------
@router.post("/api/admin/forms", status_code=201)
async def upload(request: Request, principal: AdminDep) -> dict[str, Any]:
    """A definition as YAML (any content type) or JSON (application/json): stored as the
    form's next version when it validates; the same content again is ``unchanged``."""
    body = await request.body()
    if len(body) > MAX_UPLOAD_BYTES:
        raise BanshiError("样表定义文件太大。", f"definition over {MAX_UPLOAD_BYTES} bytes")
    data = _parse_upload(body, request.headers.get("content-type", ""))
    library = _library(request)
    return await asyncio.to_thread(library.store, data, "upload", principal.username)


@router.post("/api/admin/forms/validate")
async def validate(request: Request, _: AdminDep) -> dict[str, Any]:
    """Checks a definition without storing it (the admin's 校验 button)."""
    body = await request.body()
    if len(body) > MAX_UPLOAD_BYTES:
        raise BanshiError("样表定义文件太大。", f"definition over {MAX_UPLOAD_BYTES} bytes")
    form = _library(request).parse(_parse_upload(body, request.headers.get("content-type", "")))
    return {"id": form.id, "title": form.title, "fields": len(form.fields), "digest": form.digest}


@router.get("/api/admin/forms/{form_id}/versions")
async def versions(form_id: FormId, request: Request, _: AdminDep) -> dict[str, Any]:
    rows = await asyncio.to_thread(_library(request).versions, form_id)
    return {"id": form_id, "versions": rows}


@router.get("/api/admin/forms/views")
async def views(
    request: Request,
    _: SupervisorDep,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> dict[str, Any]:
    """关注度: views per form and channel over [since, until] (default: the last 30 days)."""
    library = _library(request)
    until = until or library.today()
    if until < dt.date.min + dt.timedelta(days=29):  # no 30 days before it to count back
        raise BanshiError("结束日期不正确。", f"until {until} is too early")
    since = since or until - dt.timedelta(days=29)
    if since > until:
        raise BanshiError("开始日期不能晚于结束日期。", "since is after until")
    rows = await asyncio.to_thread(library.view_counts, since, until)
    return {"since": since.isoformat(), "until": until.isoformat(), "forms": rows}


def _parse_upload(body: bytes, content_type: str) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormInvalid("(file)", "not UTF-8 text") from exc
    try:
        if content_type.startswith("application/json"):
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise FormInvalid("(file)", f"not valid YAML or JSON: {exc}") from exc


def _phone_url(request: Request, form_id: str) -> str:
    settings = request.app.state.settings
    base = (settings.public_url or str(request.base_url)).rstrip("/")
    return f"{base}/forms/{form_id}"
