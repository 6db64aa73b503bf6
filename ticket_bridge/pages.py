"""The staff inbox and the residents' progress page (static HTML; data through the API)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)
PAGES = Path(__file__).resolve().parent / "pages"


def _page(name: str) -> HTMLResponse:
    return HTMLResponse(
        (PAGES / name).read_text(encoding="utf-8"),
        headers={
            "Cache-Control": "no-cache",
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


@router.get("/agent")
def inbox() -> HTMLResponse:
    return _page("inbox.html")


@router.get("/progress")
def progress() -> HTMLResponse:
    return _page("progress.html")
