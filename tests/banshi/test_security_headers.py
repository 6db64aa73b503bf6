"""Every HTML page the app serves carries the security headers of banshi.pages.html_page,
and its Content-Security-Policy lets exactly the page's own inline scripts run."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from support import TestClient

# FastAPI's own API documentation (Swagger UI and ReDoc from a CDN): not a banshi page;
# and the hall display's event stream (JSON events, open 30 s by design)
SKIPPED = {"/docs", "/redoc", "/docs/oauth2-redirect", "/api/kiosk/calls/stream"}
PAGES = {
    "/",
    "/guides/{item_id}",
    "/chat",
    "/call",
    "/agent",
    "/progress",
    "/kiosk",
    "/counter",
    "/display",
    "/queue/{token}",
    "/forms",
    "/forms/{form_id}",
}
SAMPLE = {"item_id": None, "form_id": "id-card-application", "token": "not-a-real-token"}


class _Scripts(HTMLParser):
    """The inline scripts, the attributes that would be inline code, and outside addresses."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.inline: list[str] = []
        self.handlers: list[str] = []
        self.outside: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append(f"<{tag} {name}>")
            if name in ("src", "href", "action") and value:
                if value.strip().lower().startswith("javascript:"):
                    self.handlers.append(f"<{tag} {name}={value}>")
                if re.match(r"(https?:)?//", value):
                    self.outside.append(value)
        if tag == "script" and not dict(attrs).get("src"):
            self._in_script = True
            self.inline.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline[-1] += data


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _directives(csp: str) -> dict[str, list[str]]:
    out = {}
    for part in csp.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


@pytest.fixture(scope="module")
def pages(shared_client: TestClient) -> dict[str, httpx.Response]:
    """path template -> the page served for it, for every GET route that answers HTML."""
    kb = shared_client.app.state.kb  # type: ignore[attr-defined]
    values = {**SAMPLE, "item_id": next(iter(kb.catalog.items))}
    found = {}
    for route in iter_route_contexts(shared_client.app.routes):  # type: ignore[attr-defined]
        if "GET" not in (route.methods or ()) or route.path in SKIPPED:
            continue
        url = re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), "x")), route.path)
        r = shared_client.get(url, headers={"accept": "text/html"})
        if r.headers.get("content-type", "").startswith("text/html"):
            assert r.status_code == 200, (url, r.text[:200])
            found[route.path] = r
    return found


def test_every_page_has_the_security_headers(pages: dict[str, httpx.Response]) -> None:
    assert set(pages) == PAGES  # a new page route: add it here once it has the headers
    for path, r in pages.items():
        h = r.headers
        assert h["x-content-type-options"] == "nosniff", path
        assert h["x-frame-options"] == "DENY", path
        assert h["referrer-policy"] == "same-origin", path
        assert h["cache-control"] == "no-cache", path
        assert h["cross-origin-opener-policy"] == "same-origin", path
        assert "camera=()" in h["permissions-policy"], path
        csp = _directives(h["content-security-policy"])
        assert csp["default-src"] == ["'self'"], path
        assert csp["frame-ancestors"] == ["'none'"], path
        assert csp["object-src"] == ["'none'"], path
        assert csp["base-uri"] == ["'none'"], path
        assert "'unsafe-inline'" not in csp["script-src"], path
        assert "'unsafe-eval'" not in csp["script-src"], path


def test_the_policy_allows_each_inline_script_of_the_page_and_no_other(
    pages: dict[str, httpx.Response],
) -> None:
    for path, r in pages.items():
        parsed = _Scripts()
        parsed.feed(r.text)
        allowed = set(_directives(r.headers["content-security-policy"])["script-src"])
        hashes = {v for v in allowed if v.startswith("'sha256-")}
        # data blocks (type="application/json") are hashed too: harmless, never run
        assert hashes == {_sha256(s) for s in parsed.inline}, path
        assert parsed.handlers == [], f"{path}: inline handlers are blocked by the policy"
        assert parsed.outside == [], f"{path}: loads from elsewhere: {parsed.outside}"


def test_only_the_web_call_may_use_the_microphone_and_blob_scripts(
    pages: dict[str, httpx.Response],
) -> None:
    for path, r in pages.items():
        policy = r.headers["permissions-policy"]
        script_src = _directives(r.headers["content-security-policy"])["script-src"]
        if path == "/call":  # its audio worklet is a Blob the page makes
            assert "microphone=(self)" in policy and "blob:" in script_src
        else:
            assert "microphone=()" in policy and "blob:" not in script_src, path


def test_the_guide_page_allows_no_inline_script(pages: dict[str, httpx.Response]) -> None:
    """It is built from documents administrators write, and has no script of its own: markup
    in a guide's text (escaped anyway) could not run."""
    assert "script-src 'self';" in pages["/guides/{item_id}"].headers["content-security-policy"]
