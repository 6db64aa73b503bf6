"""The resident-facing chat page (the web widget)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from banshi.pages import html_page

router = APIRouter(tags=["pages"])
PAGES = Path(__file__).resolve().parent / "pages"


@router.get("/chat", response_class=HTMLResponse, include_in_schema=False)
def chat_page() -> HTMLResponse:
    return html_page((PAGES / "chat.html").read_text(encoding="utf-8"))
