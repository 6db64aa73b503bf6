"""nginx in front of the API processes and the Rasa servers, rendered from one function so
that `banshi serve --production` and docker/nginx.conf (`banshi production nginx-conf`)
cannot drift apart.

Two servers:
- the public one: pages, APIs, the chat WebSocket and the hall display's event stream,
  spread over the API processes. A request that could not reach a process (connection
  refused, it was killed) goes to the next one; a request that reached a process is never
  sent twice (nginx does not retry POSTs), so a ticket is never taken twice.
- the internal one (never published): the Rasa servers for the API processes, and the
  custom-action webhook on the API processes for Rasa.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# What residents see when nginx itself answers: the API's error body, in Chinese.
TOO_MANY = "请求太频繁，请稍后再试。"
UNAVAILABLE = "系统正在维护或重启，请稍后再试，或拨打12345热线。"
TOO_LARGE = "提交的内容太大了。"


@dataclass(frozen=True)
class NginxLayout:
    api: list[str]  # host:port of each API process
    rasa: list[str]  # host:port of each Rasa server
    public_listen: str  # "8000" or "127.0.0.1:8000"
    internal_listen: str  # "127.0.0.1:8090"; in containers a port on the private network
    prefix: str = ""  # one machine: where pid, temp files and logs go; empty in a container
    worker_processes: int = 2
    # a coarse flood guard per client address; the API's own limits (banshi/limits.py)
    # are the real ones, per route
    flood_rate_per_s: int = 50
    flood_burst: int = 200
    max_body: str = "4m"  # the API refuses much less on most routes


def _error_body(code: str, message: str) -> str:
    body = {"error": {"code": code, "message": message, "detail": "nginx"}}
    return json.dumps(body, ensure_ascii=False)


def render(layout: NginxLayout) -> str:
    if not layout.api or not layout.rasa:
        raise ValueError("nginx needs at least one API process and one Rasa server")
    p = layout.prefix.rstrip("/")
    paths = (
        f"pid {p}/nginx.pid;\nerror_log {p}/logs/nginx-error.log warn;\n"
        if p
        else "pid /tmp/nginx.pid;\nerror_log stderr warn;\n"
    )
    temp = (
        "".join(
            f"    {kind}_temp_path {p}/temp/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        if p
        else ""
    )
    access = f"    access_log {p}/logs/nginx-access.log;\n" if p else "    access_log off;\n"
    api = "".join(f"        server {s} max_fails=1 fail_timeout=3s;\n" for s in layout.api)
    rasa = "".join(f"        server {s} max_fails=1 fail_timeout=3s;\n" for s in layout.rasa)
    return f"""# Rendered by banshi/nginx.py; edit that, not this file.
worker_processes {layout.worker_processes};
{paths}
events {{
    worker_connections 4096;
}}

http {{
    default_type application/octet-stream;
    server_tokens off;
{access}{temp}
    # Idle connections to the processes are closed before uvicorn's and Rasa's (Sanic's)
    # own 5 s keep-alive ends: else a request sent as the process closes one is reset, and
    # a POST is not tried again (the fault bench saw it as a counter's 503).
    upstream banshi_api {{
{api}        keepalive 64;
        keepalive_timeout 4s;
    }}
    upstream banshi_rasa {{
{rasa}        keepalive 16;
        keepalive_timeout 4s;
    }}

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ""      "";
    }}

    limit_req_zone $binary_remote_addr zone=banshi_flood:10m rate={layout.flood_rate_per_s}r/s;
    limit_req_status 429;

    proxy_http_version 1.1;
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    proxy_connect_timeout 2s;
    # a killed or restarting process: try the next one (only requests it never received)
    proxy_next_upstream error timeout;
    proxy_next_upstream_tries 3;

    server {{
        listen {layout.public_listen};
        client_max_body_size {layout.max_body};
        limit_req zone=banshi_flood burst={layout.flood_burst} nodelay;

        error_page 429 = @too_many;
        error_page 413 = @too_large;
        error_page 502 503 504 = @unavailable;

        # only Rasa calls the custom actions, through the internal server
        location = /api/rasa/actions {{
            return 404;
        }}

        location / {{
            proxy_pass http://banshi_api;
            # live pushes (hall display events, WebSockets) go out as they are written
            proxy_buffering off;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }}

        location @too_many {{
            default_type "application/json; charset=utf-8";
            add_header Retry-After 5 always;
            return 429 '{_error_body("too_many_requests", TOO_MANY)}';
        }}
        location @too_large {{
            default_type "application/json; charset=utf-8";
            return 413 '{_error_body("http_413", TOO_LARGE)}';
        }}
        location @unavailable {{
            default_type "application/json; charset=utf-8";
            add_header Retry-After 5 always;
            return 503 '{_error_body("unavailable", UNAVAILABLE)}';
        }}
    }}

    server {{
        listen {layout.internal_listen};
        client_max_body_size 8m;
        client_body_buffer_size 1m;  # Rasa's action calls carry the tracker: kept in memory

        location = /api/rasa/actions {{
            proxy_pass http://banshi_api;
        }}
        location / {{
            proxy_pass http://banshi_rasa;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""
