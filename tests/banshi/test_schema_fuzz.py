"""Schemathesis against the app's own OpenAPI schema, in process (no network): every
operation with valid and invalid input, as an administrator (who may call everything), and
no answer is a 5xx. A bounded number of examples per operation, derandomized, so that the
run is the same on every machine and takes a few minutes on two cores."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import HOST, ASGIClient, get_client, shutdown_lifespans
from support import build_settings

from banshi.app import create_app
from banshi.auth import create_user
from banshi.db import Database

# per operation; more to look harder by hand: BANSHI_FUZZ_EXAMPLES=500 pytest tests/banshi/…
EXAMPLES = int(os.environ.get("BANSHI_FUZZ_EXAMPLES") or 25)
ADMIN, PASSWORD = "fuzz-admin", "fuzz-admin-password-1"


@pytest.fixture(scope="module")
def fuzzed_app(
    tmp_path_factory: pytest.TempPathFactory, hashing_template: Path, hashing_encoder, shared_text
) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """The app over a private copy of the sample knowledge base (the fuzzer changes data)."""
    from knowledge_base.service import KnowledgeBase

    s = build_settings(tmp_path_factory.mktemp("fuzz") / "data")
    shutil.copytree(hashing_template, s.data_dir)
    database = Database(s.resolved_database_url)
    kb = KnowledgeBase(s, database, encoder=hashing_encoder, text=shared_text)
    kb.start()
    with database.session() as session:
        create_user(session, ADMIN, PASSWORD, "admin")
    yield create_app(s, kb=kb)
    shutdown_lifespans()  # schemathesis's client started the app's lifespan
    database.dispose()


@pytest.fixture(scope="module")
def client(fuzzed_app: Any) -> Iterator[ASGIClient]:
    """Schemathesis's in-process client (requests over ASGI, the app's lifespan running)."""
    with get_client(fuzzed_app) as c:
        yield c


@pytest.fixture(scope="module")
def admin_headers(client: ASGIClient) -> dict[str, str]:
    r = client.post("/api/auth/login", json={"username": ADMIN, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


# The schema is the app's, read at collection from an app that is never started (pytest 9
# and schemathesis.pytest.from_fixture do not get along); the calls go to ``fuzzed_app``.
schema = schemathesis.openapi.from_dict(create_app(build_settings(Path("unused"))).openapi())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_a_server_error(
    case: Any, client: ASGIClient, admin_headers: dict[str, str]
) -> None:
    # the hall display's event stream stays open for 30 s: what it sent in a moment will do
    stream = case.operation.path == "/api/kiosk/calls/stream"
    response = case.call(
        session=client,
        base_url=f"http://{HOST}",
        headers=admin_headers,
        timeout=0.5 if stream else None,
    )
    case.validate_response(
        response,
        checks=[not_a_server_error],
    )
