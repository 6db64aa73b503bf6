"""/static/staff.js: the staff session script shared by /agent and /counter."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_the_staff_script_is_served_as_javascript(shared_client: TestClient) -> None:
    r = shared_client.get("/static/staff.js")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/javascript; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert 'headers["X-CSRF-Token"]' in r.text
    assert "window.BanshiStaff" in r.text


def test_the_staff_pages_load_it_relative_to_their_address(shared_client: TestClient) -> None:
    for path in ("/agent", "/counter"):
        assert '<script src="static/staff.js"></script>' in shared_client.get(path).text
