"""The staff inbox and the residents' progress page (static HTML; data through the API)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from banshi.pages import html_page

router = APIRouter(include_in_schema=False)
PAGES = Path(__file__).resolve().parent / "pages"


def _page(name: str) -> HTMLResponse:
    return html_page((PAGES / name).read_text(encoding="utf-8"))


@router.get("/agent")
def inbox() -> HTMLResponse:
    return _page("inbox.html")


@router.get("/progress")
def progress() -> HTMLResponse:
    return _page("progress.html")
