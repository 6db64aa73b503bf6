"""Ids in addresses past a 64-bit integer (found by tests/banshi/test_schema_fuzz.py): the
database cannot even look them up, so they are refused as invalid (422), not a 500."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support import TestClient, bearer

TOO_BIG = 2**63  # one past the largest BIGINT


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/agent/chats/{TOO_BIG}", None),
        ("GET", "/api/agent/chats/1?after=" + str(TOO_BIG), None),
        ("POST", f"/api/agent/chats/{TOO_BIG}/claim", None),
        ("POST", f"/api/agent/chats/{TOO_BIG}/messages", {"text": "您好"}),
        ("POST", f"/api/agent/chats/{TOO_BIG}/release", None),
        ("POST", f"/api/agent/chats/{TOO_BIG}/transfer", {"agent": "0"}),
        ("POST", f"/api/agent/chats/{TOO_BIG}/close", {"category": "咨询"}),
        ("PUT", f"/api/agent/canned/{TOO_BIG}", {"title": "t", "text": "x"}),
        ("DELETE", f"/api/agent/canned/{TOO_BIG}", None),
        ("GET", f"/api/tickets?offset={TOO_BIG}", None),
    ],
)
def test_an_id_too_large_for_the_database_is_invalid(
    shared_client: TestClient,
    token_for: Callable[[str], str],
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    r = shared_client.request(method, path, json=body, headers=bearer(token_for("admin")))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_request"


def test_the_largest_id_is_still_looked_up(
    shared_client: TestClient, token_for: Callable[[str], str]
) -> None:
    r = shared_client.get(f"/api/agent/chats/{TOO_BIG - 1}", headers=bearer(token_for("admin")))
    assert r.status_code == 404
