"""Shared set-up for benchmarks: a knowledge base on a throwaway data directory."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from banshi.db import Database
from banshi.settings import Settings
from knowledge_base.service import KnowledgeBase

BENCH_DATA = Path(__file__).resolve().parent / "data"
EVAL_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "eval-data"


def knowledge_base(
    encoder: str | None = None, source: Path | None = None, data_dir: Path | None = None
) -> KnowledgeBase:
    """A started knowledge base. The data directory defaults to a temporary one, so a bench
    never touches the operator's database; BANSHI_DATA_DIR reuses a built index."""
    data = data_dir or Path(os.environ.get("BANSHI_DATA_DIR") or tempfile.mkdtemp(prefix="kbb"))
    overrides: dict[str, object] = {"data_dir": data, "database_url": ""}
    if encoder:
        overrides["kb_encoder"] = encoder
    if source:
        overrides["kb_source_dir"] = source
    settings = Settings(**overrides)  # type: ignore[arg-type]
    db = Database(settings.resolved_database_url)
    db.upgrade()
    kb = KnowledgeBase(settings, db)
    kb.start()
    return kb


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


REPO = Path(__file__).resolve().parent.parent


def current_rasa_model() -> Path | None:
    """The model the test command trained (.test-data), else the operator's (data/)."""
    for home in (REPO / ".test-data" / "rasa", REPO / "data" / "rasa"):
        pointer = home / "models" / "CURRENT"
        if pointer.exists() and (pointer.parent / pointer.read_text().strip()).exists():
            return pointer.parent / pointer.read_text().strip()
    return None


@contextmanager
def served(
    with_rasa: bool = True,
    timeout_s: float = 300.0,
    extra_env: dict[str, str] | None = None,
    data: Path | None = None,
) -> Iterator[str]:
    """`banshi serve` (API + Rasa with the current model) on free ports and a throwaway
    data directory (or ``data``); yields the base URL once the knowledge base and Rasa are
    ready. ``extra_env``: more BANSHI_* settings for the server."""
    data = data or Path(tempfile.mkdtemp(prefix="bench-serve")) / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANSHI_")}
    env.update(extra_env or {})
    port, rasa_port = _free_port(), _free_port()
    env.update({"BANSHI_DATA_DIR": str(data), "BANSHI_RASA_URL": f"http://127.0.0.1:{rasa_port}"})
    model = current_rasa_model() if with_rasa else None
    if with_rasa:
        if model is None:
            raise SystemExit("no trained Rasa model: run `banshi rasa train` (or scripts/test)")
        (data / "rasa" / "models").mkdir(parents=True)
        shutil.copy2(model, data / "rasa" / "models" / model.name)
        (data / "rasa" / "models" / "CURRENT").write_text(model.name)
    log = (data.parent / "serve.log").open("wb")
    cmd = [str(REPO / ".venv" / "bin" / "banshi"), "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                checks = httpx.get(f"{base}/healthz", timeout=2).json()["checks"]
                if checks["knowledge_base"]["status"] == "ok" and (
                    not with_rasa or checks["rasa"]["status"] == "ok"
                ):
                    break
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server not ready; see {data.parent / 'serve.log'}")
            time.sleep(1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A new database on the given PostgreSQL server, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    target = make_url(url)
    name = f"agentbench_{secrets.token_hex(4)}"
    admin = target.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield target.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
