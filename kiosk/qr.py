"""QR codes as SVG for the kiosk's screen and the phone pages, drawn by segno (pure Python,
no network): the ticket's status link ("扫码查看排队进度") and a booking's check-in code.

The SVG has a viewBox and no fixed size, so a page sizes it with CSS; black modules on white
with the standard quiet zone of four modules, which phone cameras and the kiosk's scanner read
even when the page around it is coloured."""

from __future__ import annotations

import io

from fastapi.responses import Response

from banshi.errors import Unavailable

SVG_TYPE = "image/svg+xml"


def svg(content: str, title: str = "") -> bytes:
    """``content`` as a QR code (error correction M), an SVG document of a few kilobytes."""
    try:
        import segno
    except ImportError as exc:  # the kiosk extra is not installed
        raise Unavailable("二维码暂时无法显示。", "segno is not installed (extra kiosk)") from exc
    code = segno.make(content, error="m", micro=False)
    out = io.BytesIO()
    code.save(
        out,
        kind="svg",
        border=4,
        dark="#000",
        light="#fff",
        omitsize=True,
        xmldecl=False,
        title=title or None,
    )
    return out.getvalue()


def svg_response(content: str, title: str = "") -> Response:
    """The QR as an HTTP response; private caching, since a ticket's code never changes."""
    return Response(
        svg(content, title),
        media_type=SVG_TYPE,
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
