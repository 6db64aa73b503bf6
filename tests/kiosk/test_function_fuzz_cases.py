"""Requests tests/banshi/test_schema_fuzz.py found answered with a 500, now refused as the
residents' and staff's mistakes they are."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support import TestClient, bearer

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


@pytest.mark.parametrize("token", ["¹-0123456789abcdef0123", "¹", "١-x"])
def test_an_appointment_token_of_other_digits_is_a_bad_code(
    shared_client: TestClient, token: str
) -> None:
    """ "¹".isdigit() is true, but int() refuses it."""
    r = shared_client.delete(f"/api/kiosk/appointments/{token}")
    assert r.status_code == 409, r.text
    assert r.json()["error"]["message"] == "这个二维码不是本中心的预约码，请核对。"


def test_form_views_up_to_the_first_days_of_the_calendar_are_refused(
    shared_client: TestClient, token_for: Callable[[str], str]
) -> None:
    supervisor = bearer(token_for("supervisor"))
    r = shared_client.get("/api/admin/forms/views?until=0001-01-01", headers=supervisor)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "结束日期不正确。"
    r = shared_client.get(
        "/api/admin/forms/views?since=0001-01-01&until=0001-02-01", headers=supervisor
    )
    assert r.status_code == 200
