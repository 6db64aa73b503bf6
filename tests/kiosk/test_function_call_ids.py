"""A call id past a 64-bit integer (found by tests/banshi/test_schema_fuzz.py) is refused as
invalid (422) instead of failing in the database (500)."""

from __future__ import annotations

import pytest
from support import TestClient

TOO_BIG = 2**63


@pytest.mark.parametrize(
    "path",
    [
        f"/api/kiosk/calls/{TOO_BIG}/audio.wav",
        f"/api/kiosk/calls/recent?after={TOO_BIG}",
        f"/api/kiosk/calls/stream?after={TOO_BIG}",
    ],
)
def test_a_call_id_too_large_for_the_database_is_invalid(
    shared_client: TestClient, path: str
) -> None:
    r = shared_client.get(path)
    assert r.status_code == 422, r.text


def test_the_largest_call_id_is_simply_not_found(shared_client: TestClient) -> None:
    assert shared_client.get(f"/api/kiosk/calls/{TOO_BIG - 1}/audio.wav").status_code == 404
