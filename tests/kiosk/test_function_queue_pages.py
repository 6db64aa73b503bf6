"""The lobby's pages and what they need from the API: QR codes as SVG (a ticket's status link,
a booking's check-in code), the windows for the counter screen, and the three pages."""

from __future__ import annotations

import re

import pytest
from queue_builders import MONDAY, at, id_number
from support import TestClient

SVG = "image/svg+xml"


@pytest.fixture
def lobby(hashing_client: TestClient) -> TestClient:
    """The app at 10:00 on a Monday (a fixed clock, whatever the real time)."""
    hashing_client.app.state.queue.clock = lambda: at("10:00")  # type: ignore[attr-defined]
    return hashing_client


def test_a_tickets_qr_is_an_svg_of_its_status_link(lobby: TestClient) -> None:
    ticket = lobby.post("/api/kiosk/tickets", json={"service": "C", "print": False}).json()
    r = lobby.get(f"/api/kiosk/tickets/{ticket['token']}/qr.svg")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(SVG)
    assert "<svg" in r.text and "viewBox" in r.text
    assert "<title>排队进度</title>" in r.text
    # black on white, sized by the page (no width or height of its own)
    assert not re.search(r"<svg[^>]*\swidth=", r.text)


def test_the_qr_encodes_the_same_link_the_ticket_carries(lobby: TestClient) -> None:
    import segno

    ticket = lobby.post("/api/kiosk/tickets", json={"service": "C", "print": False}).json()
    expected = segno.make(ticket["status_url"], error="m", micro=False)
    r = lobby.get(f"/api/kiosk/tickets/{ticket['token']}/qr.svg")
    assert ticket["status_url"] == f"http://testserver/queue/{ticket['token']}"
    # the same symbol: as many dark modules in the SVG's path as segno draws for that link
    dark = sum(sum(row) for row in expected.matrix)
    path = re.search(r'class="qrline"[^>]*\sd="([^"]+)"', r.text)
    assert path is not None
    assert sum(int(n) for n in re.findall(r"h(\d+)", path.group(1))) == dark


def test_an_unknown_ticket_has_no_qr(lobby: TestClient) -> None:
    for token in ("NoSuchTicket123", "bad!token"):
        r = lobby.get(f"/api/kiosk/tickets/{token}/qr.svg")
        assert r.status_code == 404
        assert r.json()["error"]["message"] == "没有找到这个排队号，请核对二维码。"


def test_a_bookings_check_in_code_is_its_signed_token(lobby: TestClient) -> None:
    lobby.app.state.queue.clock = lambda: at("08:00")  # type: ignore[attr-defined]
    day = MONDAY.isoformat()
    slots = lobby.get("/api/kiosk/slots", params={"service": "C", "day": day}).json()["slots"]
    booking = {"service": "C", "day": day, "start": slots[0]["start"], "id_number": id_number()}
    booked = lobby.post("/api/kiosk/appointments", json=booking).json()
    r = lobby.get(f"/api/kiosk/appointments/{booked['token']}/qr.svg")
    assert r.status_code == 200 and r.headers["content-type"].startswith(SVG)
    assert "<svg" in r.text and "<title>预约签到码</title>" in r.text
    forged = booked["token"][:-1] + ("0" if booked["token"][-1] != "0" else "1")
    for token in (forged, "1-" + "0" * 20, "not-a-token"):
        r = lobby.get(f"/api/kiosk/appointments/{token}/qr.svg")
        assert r.status_code == 404
        assert r.json()["error"]["message"] == "没有找到这个预约。"


def test_the_windows_and_what_each_serves(lobby: TestClient) -> None:
    r = lobby.get("/api/kiosk/windows")  # no log-in needed
    assert r.status_code == 200
    windows = r.json()
    first = windows[0]
    assert first["window"] == "A01" and first["services"][0]["code"] == "A"
    assert "身份证" in first["services"][0]["name"]
    by_window = {w["window"]: w["services"] for w in windows}
    assert by_window["B09"] == [{"code": "C", "name": "医疗保障"}]
    assert [w["window"] for w in windows] == sorted(by_window)
    config = lobby.app.state.queue.config  # type: ignore[attr-defined]
    assert len(windows) == len(config.windows)


@pytest.mark.parametrize(
    ("path", "title"),
    [
        ("/kiosk", "自助服务终端"),
        ("/counter", "窗口叫号"),
        ("/queue/AbCdEfGh12345678", "排队进度"),
    ],
)
def test_the_pages_are_served_with_their_titles(lobby: TestClient, path: str, title: str) -> None:
    r = lobby.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert f"<title>{title}</title>" in r.text
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "青禾区政务服务中心" in r.text and "{{" not in r.text
    # nothing from outside: no scripts, styles or fonts from another host
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", r.text)


def test_the_kiosk_page_carries_the_centre_from_centre_yml(lobby: TestClient) -> None:
    import json

    html = lobby.get("/kiosk").text
    found = re.search(r'<script id="centre" type="application/json">(.*?)</script>', html)
    assert found is not None
    centre = json.loads(found.group(1))
    assert centre["name"] == "青禾区政务服务中心"
    assert centre["timezone"] == "Asia/Shanghai"
    assert centre["zones"]["医疗保障局"] == "1楼B区"
    assert centre["hours"][0] == "周一至周五 上午9:00—12:00，下午13:30—17:00"
