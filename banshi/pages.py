"""What the pages of several parts share:

- ``html_page``: an HTML page with the security headers every page gets (no framing, no
  type sniffing, same-origin referrers, always revalidated, no powerful features but the
  ones a page asks for, and a Content-Security-Policy), set in this one place. The pages'
  scripts are inline: the policy allows exactly those, by their SHA-256 (computed from the
  page as served), and nothing else inline, so markup that slipped into a page (a guide's
  text, a resident's message) cannot run. Styles stay 'unsafe-inline' (style attributes
  throughout; CSS cannot run code).
- ``GET /static/staff.js``: the staff session (cookie log-in, the CSRF header on every
  change, one retry when the cookie changed in another tab), loaded by /agent and /counter
  (plain script, no build step; see the comment at its top)."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)
PAGES = Path(__file__).resolve().parent / "pages"
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
PAGE_HEADERS = {
    **HEADERS,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
# 'self' covers the same host's ws:// and wss:// (the chat, the inbox, the web call); media
# from data: and blob: are the hall display's autoplay probe and its fetched announcements
_CSP = (
    "default-src 'self'; script-src 'self'{scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' data: blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def html_page(html: str, *, microphone: bool = False, blob_scripts: bool = False) -> HTMLResponse:
    """``microphone``: the page may ask for it (the web call); ``blob_scripts``: it loads a
    script it made itself (the web call's audio worklet, from a Blob)."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    headers = {
        **PAGE_HEADERS,
        "Content-Security-Policy": _CSP.format(scripts=hashes + (" blob:" if blob_scripts else "")),
        "Permissions-Policy": (
            f"microphone=({'self' if microphone else ''}), camera=(), geolocation=(), "
            "payment=(), usb=(), serial=(), bluetooth=()"
        ),
    }
    return HTMLResponse(html, headers=headers)


@router.get("/static/staff.js")
def staff_js() -> Response:
    return Response(
        (PAGES / "staff.js").read_text(encoding="utf-8"),
        media_type="application/javascript; charset=utf-8",
        headers=HEADERS,
    )
