"""Helpers shared by tests (importable as ``support``: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from banshi.settings import SAMPLE_KB_DIR, Settings

with warnings.catch_warnings():
    # Starlette >= 1.x warns at import when the test client runs on httpx rather than httpx2;
    # the project's dev dependencies pin httpx, so that warning says nothing about banshi.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

TEST_SECRET = "test-secret-key-123"


def build_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "data_dir": data_dir,
        "database_url": "",
        "secret_key": TEST_SECRET,
        "kb_encoder": "hashing",
        "kb_source_dir": SAMPLE_KB_DIR,
        # no Rasa in unit tests: a closed port, so chat takes the direct path at once
        "rasa_url": "http://127.0.0.1:9",
        "rasa_timeout_s": 1.0,
        # every test client is "testclient": one address for the whole session. The limits
        # themselves are tested with their budgets on (tests/banshi/test_limits.py).
        "rate_limits": "off",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@contextmanager
def api_client(
    settings: Settings, kb: object = None, raise_server_exceptions: bool = True
) -> Iterator[TestClient]:
    """A TestClient with the app's lifespan running. The app's database URL comes from
    ``settings``; pass the settings of ``kb`` so that both use the same database."""
    from banshi.app import create_app

    app = create_app(settings, kb=kb)
    with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
