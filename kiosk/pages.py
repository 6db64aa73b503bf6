"""The lobby's pages (static HTML, no build step; all data through the API):

- ``GET /kiosk``: the touchscreen kiosk (portrait 1080×1920): 取号, 预约签到, 排队查询,
  办事指南, with a 大字模式 for elderly residents, an attract screen when idle and a return
  to the start after inactivity.
- ``GET /counter``: the clerk's screen at a counter PC: log in (cookie + CSRF, like /agent),
  choose a window, then 叫号, 重呼, 开始办理, 办结, 过号, 转移, 暂停 with keyboard shortcuts.
- ``GET /queue/{token}``: the phone page a ticket's QR opens: the number, its status, people
  ahead and the estimated wait, refreshed every 10 s; 重新排队 after a 过号.
- ``GET /forms`` and ``GET /forms/{form_id}``: the form samples (填表样例), one page for the
  kiosk (``?kiosk=…`` or opened from its home tile: big keys, printing, the QR, back home
  after inactivity) and for phones (the QR on the kiosk opens ``/forms/{form_id}``).

The kiosk page gets the centre's name, opening hours and the zones of the departments from
centre.yml at serving time (one JSON block), so nothing centre-specific is written in it."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from banshi.pages import html_page

router = APIRouter(include_in_schema=False)
PAGES = Path(__file__).resolve().parent / "pages"


@router.get("/kiosk")
def kiosk(request: Request) -> HTMLResponse:
    return _page("kiosk.html", request)


@router.get("/counter")
def counter(request: Request) -> HTMLResponse:
    return _page("counter.html", request)


@router.get("/queue/{token}")
def queue(token: str, request: Request) -> HTMLResponse:
    """The token is read by the page from its own address and checked by the API."""
    return _page("queue.html", request)


@router.get("/forms")
def forms(request: Request) -> HTMLResponse:
    return _page("forms.html", request)


@router.get("/forms/{form_id}")
def form(form_id: str, request: Request) -> HTMLResponse:
    """The form is read by the page from its own address and looked up through the API."""
    return _page("forms.html", request)


def _page(name: str, request: Request) -> HTMLResponse:
    centre = _centre(request)
    html = (
        (PAGES / name)
        .read_text(encoding="utf-8")
        .replace("{{centre_name}}", escape(centre["name"]))
        .replace("{{centre_json}}", _script_json(centre))
    )
    return html_page(html)


def _centre(request: Request) -> dict[str, Any]:
    """What the pages show about the centre, from the catalogue the app started with."""
    kb = getattr(request.app.state, "kb", None)
    catalog = getattr(kb, "catalog", None)
    raw: dict[str, Any] = dict(getattr(catalog, "centre", None) or {})
    hours = raw.get("hours") or {}
    return {
        "name": str(raw.get("name") or "政务服务中心"),
        "phone": str(raw.get("phone") or ""),
        "hotline": str(raw.get("hotline") or "12345"),
        "miniapp": str(raw.get("miniapp") or ""),
        "timezone": str((raw.get("opening") or {}).get("timezone") or "Asia/Shanghai"),
        "hours": [str(hours[k]) for k in ("weekdays", "saturday", "closed") if hours.get(k)],
        "zones": {
            str(d.get("name")): str(d.get("zone"))
            for d in raw.get("departments") or []
            if isinstance(d, dict) and d.get("name") and d.get("zone")
        },
    }


def _script_json(data: Any) -> str:
    """JSON safe inside <script type="application/json"> (no "</script>" can close it)."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
