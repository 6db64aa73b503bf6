"""What the pages of several parts share:

- ``html_page``: an HTML page with the security headers every page gets (no framing, no
  type sniffing, same-origin referrers, always revalidated), set in this one place.
- ``GET /static/staff.js``: the staff session (cookie log-in, the CSRF header on every
  change, one retry when the cookie changed in another tab), loaded by /agent and /counter
  (plain script, no build step; see the comment at its top)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)
PAGES = Path(__file__).resolve().parent / "pages"
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
PAGE_HEADERS = {**HEADERS, "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"}


def html_page(html: str) -> HTMLResponse:
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get("/static/staff.js")
def staff_js() -> Response:
    return Response(
        (PAGES / "staff.js").read_text(encoding="utf-8"),
        media_type="application/javascript; charset=utf-8",
        headers=HEADERS,
    )
