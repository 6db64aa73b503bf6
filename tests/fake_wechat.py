"""A tiny fake of WeChat's HTTP API (access tokens, customer-service sends) on 127.0.0.1,
for the chat's tests and the ticket bridge's (agents' replies to WeChat residents)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class FakeWeChatApi:
    """A tiny WeChat API on 127.0.0.1: hands out tokens in turn and answers sends with the
    queued results (then ``ok``); records every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.tokens = ["TOKEN-1", "TOKEN-2", "TOKEN-3"]
        self.send_results: list[dict[str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                api.requests.append({"path": url.path, "query": query})
                if url.path == "/cgi-bin/token":
                    self._answer({"access_token": api.tokens.pop(0), "expires_in": 7200})
                else:
                    self._answer({"errcode": 40004, "errmsg": "unknown"})

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                api.requests.append({"path": url.path, "query": query, "json": body})
                result = api.send_results.pop(0) if api.send_results else None
                self._answer(result or {"errcode": 0, "errmsg": "ok"})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def sends(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/cgi-bin/message/custom/send"]

    def token_fetches(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/cgi-bin/token"]


@contextmanager
def running_wechat_api() -> Iterator[FakeWeChatApi]:
    api = FakeWeChatApi()
    api.thread.start()
    try:
        yield api
    finally:
        api.server.shutdown()
        api.server.server_close()
        api.thread.join(timeout=5)
