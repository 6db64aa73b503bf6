"""What a load run needs on the server side before it starts: staff accounts for the agents
and the counter clerks (role ``agent`` for both: the counter API and the inbox need an
agent's rank), and a knowledge base whose hall is open around the clock with quotas a load
run cannot use up (else kiosks are refused with ``closed`` / ``closing`` / ``quota``).

Accounts: :func:`ensure_staff` writes them straight into the database the API processes use
(no server needed, a second per ten accounts, skips those that exist); the same can be done
with the CLI, once per account (slower: a process start each)::

    printf '%s\\n' "$PASSWORD" | BANSHI_DATABASE_URL=… banshi users add load-clerk-00 \\
        --role agent --password-stdin --if-missing
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PASSWORD = "load-bench-password"
AGENT_PREFIX = "load-agent-"
CLERK_PREFIX = "load-clerk-"


def accounts(prefix: str, count: int, password: str = DEFAULT_PASSWORD) -> list[tuple[str, str]]:
    """``count`` (username, password) pairs: ``prefix00``, ``prefix01``…"""
    return [(f"{prefix}{i:02d}", password) for i in range(count)]


def agent_accounts(count: int, password: str = DEFAULT_PASSWORD) -> list[tuple[str, str]]:
    return accounts(AGENT_PREFIX, count, password)


def clerk_accounts(count: int, password: str = DEFAULT_PASSWORD) -> list[tuple[str, str]]:
    return accounts(CLERK_PREFIX, count, password)


def ensure_staff(database_url: str, users: Iterable[tuple[str, str]], role: str = "agent") -> int:
    """Create the accounts that do not exist yet, in the (migrated) database at
    ``database_url``; returns how many were made."""
    from sqlalchemy import select

    from banshi.auth import User, create_user
    from banshi.db import Database

    db = Database(database_url)
    made = 0
    try:
        with db.session() as s:
            have = set(s.scalars(select(User.username)).all())
            for username, password in users:
                if username not in have:
                    create_user(s, username, password, role)
                    made += 1
    finally:
        db.dispose()
    return made


def ensure_staff_cli(
    users: Iterable[tuple[str, str]], role: str = "agent", env: dict[str, str] | None = None
) -> None:
    """The same through ``banshi users add … --if-missing`` (``env``: BANSHI_DATABASE_URL
    and the rest of the server's settings)."""
    banshi = str(REPO / ".venv" / "bin" / "banshi")
    full_env = {**os.environ, **(env or {})}
    for username, password in users:
        subprocess.run(
            [banshi, "users", "add", username, "--role", role, "--password-stdin", "--if-missing"],
            input=password + "\n",
            text=True,
            check=True,
            env=full_env,
            capture_output=True,
        )


def open_all_day_kb(target: Path, source: Path | None = None) -> Path:
    """A copy of the sample knowledge base (or ``source``) whose hall is open 00:00–23:59
    every day, with no stop before closing and 990 walk-in numbers per service and day:
    point BANSHI_KB_SOURCE_DIR at it. (bench/queue_load.py's ``open_all_day``.)"""
    spec = importlib.util.spec_from_file_location(
        "_bench_queue_load", REPO / "bench" / "queue_load.py"
    )
    assert spec is not None and spec.loader is not None
    import sys

    bench_dir = str(REPO / "bench")
    added = bench_dir not in sys.path
    if added:
        sys.path.insert(0, bench_dir)  # queue_load imports `_common` as a script does
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if added:
            sys.path.remove(bench_dir)
    made: Path = module.open_all_day(source or REPO / "knowledge_base" / "sample", target)
    return made
