"""The lobby over HTTP: services, issuing with printing (and without paper: the number is
kept and shown), status by the QR's token, appointments, counters behind a log-in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fake_printer import PAPER_OUT, READY, FakeNetworkPrinter
from queue_builders import MONDAY, at, id_number
from support import TestClient, bearer

from kiosk.printing.connection import parse_printer_url
from kiosk.printing.ticket_printer import TicketPrinter


@pytest.fixture
def lobby(hashing_client: TestClient) -> TestClient:
    """The app at 10:00 on a Monday (a fixed clock, whatever the real time)."""
    hashing_client.app.state.queue.clock = lambda: at("10:00")  # type: ignore[attr-defined]
    return hashing_client


def use_printer(client: TestClient, url: str) -> None:
    client.app.state.ticket_printer = TicketPrinter(  # type: ignore[attr-defined]
        parse_printer_url(url), 80, "青禾区政务服务中心"
    )


def test_services_are_listed_by_department_with_what_is_left(lobby: TestClient) -> None:
    body = lobby.get("/api/kiosk/services").json()
    first = body["services"][0]
    assert (first["code"], first["name"], first["department_name"]) == (
        "A",
        "身份证、户籍、居住证",
        "公安分局",
    )
    assert first["id_required"] is True and first["walk_in_left"] == 240
    assert body["priority_groups"]["elderly"] == "70周岁以上老年人"


def test_a_ticket_is_printed_and_its_status_can_be_read_by_token(
    lobby: TestClient, fake_printer: Callable[..., FakeNetworkPrinter]
) -> None:
    printer = fake_printer(READY)
    use_printer(lobby, printer.url)
    r = lobby.post("/api/kiosk/tickets", json={"service": "C", "kiosk": "k1"})
    assert r.status_code == 200, r.text
    ticket = r.json()
    assert (ticket["number"], ticket["printed"]) == ("C001", True)
    assert ticket["status_url"].endswith("/queue/" + ticket["token"])
    printer.wait_for(1)
    printed = printer.connections[0]
    assert "医疗保障".encode("gb18030") in printed and b"C001" in printed
    status = lobby.get(f"/api/kiosk/tickets/{ticket['token']}").json()
    assert status["status_label"] == "排队中" and status["ahead"] == 0


def test_without_paper_the_number_is_kept_shown_and_reprinted_on_request(
    lobby: TestClient, fake_printer: Callable[..., FakeNetworkPrinter]
) -> None:
    printer = fake_printer(PAPER_OUT)
    use_printer(lobby, printer.url)
    ticket = lobby.post("/api/kiosk/tickets", json={"service": "J"}).json()
    assert ticket["number"] == "J001" and ticket["printed"] is False
    assert ticket["printer"]["reason"] == "paper_out"
    assert "缺纸" in ticket["printer"]["message"]
    health = lobby.get("/healthz").json()["checks"]["ticket_printer"]
    assert (health["status"], health["state"]) == ("degraded", "paper_out")
    # paper back: nothing comes out by itself; the reprint prints the same number once
    printer.statuses = dict(READY)
    again = lobby.post(f"/api/kiosk/tickets/{ticket['token']}/print").json()
    assert (again["number"], again["printed"]) == ("J001", True)
    printer.wait_for(2)
    jobs = [c for c in printer.connections if b"J001" in c]
    assert len(jobs) == 1
    assert lobby.get("/healthz").json()["checks"]["ticket_printer"]["status"] == "ok"


def test_refusals_are_plain_chinese_and_issue_nothing(lobby: TestClient) -> None:
    r = lobby.post("/api/kiosk/tickets", json={"service": "A", "print": False})
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["code"] == "cannot_issue"
    assert error["message"] == "办理“身份证、户籍、居住证”需要先刷身份证，或输入身份证号码。"
    assert error["fields"]["reason"] == "id_required"
    assert lobby.post("/api/kiosk/tickets", json={"service": "a1"}).status_code in (400, 422)
    assert lobby.get("/api/kiosk/tickets/..%2F..").status_code == 404
    lobby.app.state.queue.clock = lambda: at("12:10")  # type: ignore[attr-defined]
    closed = lobby.post("/api/kiosk/tickets", json={"service": "C"}).json()["error"]
    assert closed["message"].startswith("现在不是取号时间。")
    left = {
        s["code"]: s["walk_in_left"] for s in lobby.get("/api/kiosk/services").json()["services"]
    }
    assert left["C"] == 120  # nothing was used


def test_booking_and_checking_in_by_qr(lobby: TestClient) -> None:
    lobby.app.state.queue.clock = lambda: at("08:00")  # type: ignore[attr-defined]
    slots = lobby.get("/api/kiosk/slots", params={"service": "E", "day": MONDAY.isoformat()})
    assert slots.json()["slots"][1] == {"start": "10:00", "end": "11:00", "capacity": 4, "left": 4}
    booked = lobby.post(
        "/api/kiosk/appointments",
        json={
            "service": "E",
            "day": MONDAY.isoformat(),
            "start": "10:00",
            "id_number": id_number(),
        },
    ).json()
    assert booked["status"] == "booked" and booked["start"] == "10:00"
    lobby.app.state.queue.clock = lambda: at("09:50")  # type: ignore[attr-defined]
    ticket = lobby.post("/api/kiosk/check-in", json={"token": booked["token"], "print": False})
    assert ticket.json()["number"] == "E001" and ticket.json()["kind"] == "appointment"
    bad = lobby.post("/api/kiosk/check-in", json={"token": "1-" + "0" * 20})
    assert bad.json()["error"]["message"] == "这个二维码不是本中心的预约码，请核对。"


def test_counters_need_a_log_in_and_serve_in_order(
    lobby: TestClient, token_for: Callable[[str], str]
) -> None:
    assert lobby.post("/api/counter/B09", json={"action": "open"}).status_code == 401
    clerk = bearer(token_for("agent"))
    for _ in range(2):
        lobby.post("/api/kiosk/tickets", json={"service": "C", "print": False})

    def act(action: str, **extra: Any) -> dict[str, Any]:
        r = lobby.post("/api/counter/B09", json={"action": action, **extra}, headers=clerk)
        assert r.status_code == 200, r.text
        return dict(r.json())

    assert act("open")["waiting"] == 2
    state = act("call")
    assert state["ticket"]["number"] == "C001" and state["ticket"]["window"] == "B09"
    assert act("finish")["ticket"] is None
    assert act("call")["ticket"]["number"] == "C002"
    moved = act("transfer", service="J")
    assert moved["ticket"] is None and moved["waiting"] == 0
    nobody = lobby.post("/api/counter/B09", json={"action": "call"}, headers=clerk)
    assert nobody.status_code == 409
    assert nobody.json()["error"]["message"] == "现在没有人在排队。"
    assert lobby.get("/api/counter/X1", headers=clerk).status_code == 409


def test_supervisors_read_the_days_figures_and_nobody_else(
    lobby: TestClient, token_for: Callable[[str], str]
) -> None:
    clerk, supervisor = bearer(token_for("agent")), bearer(token_for("supervisor"))
    for _ in range(3):
        lobby.post("/api/kiosk/tickets", json={"service": "C", "print": False})
    lobby.post("/api/kiosk/tickets", json={"service": "J", "print": False})
    lobby.post("/api/counter/B09", json={"action": "open"}, headers=clerk)
    lobby.post("/api/counter/B09", json={"action": "call"}, headers=clerk)
    lobby.post("/api/counter/B09", json={"action": "finish"}, headers=clerk)

    assert lobby.get("/api/admin/queue/stats").status_code == 401
    assert lobby.get("/api/admin/queue/stats", headers=clerk).status_code == 403
    r = lobby.get("/api/admin/queue/stats", headers=supervisor)  # today: the lobby's Monday
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["since"], got["until"]) == (MONDAY.isoformat(), MONDAY.isoformat())
    assert (got["total"]["issued"], got["total"]["served"]) == (4, 1)
    assert got["services"]["C"]["issued"] == 3 and got["services"]["J"]["issued"] == 1
    assert got["windows"]["B09"]["served"] == 1
    assert got["hours"] == [{"hour": 10, "issued": 4}]
    only_j = lobby.get("/api/admin/queue/stats?service=J", headers=supervisor).json()
    assert set(only_j["services"]) == {"J"}

    backwards = lobby.get(
        "/api/admin/queue/stats?since=2026-12-08&until=2026-12-07", headers=supervisor
    )
    assert backwards.status_code == 400
    assert backwards.json()["error"]["message"] == "开始日期不能晚于结束日期。"
    too_long = lobby.get(
        "/api/admin/queue/stats?since=2025-01-01&until=2026-12-07", headers=supervisor
    )
    assert too_long.json()["error"]["message"] == "一次最多查询一年的数据。"
    assert lobby.get("/api/admin/queue/stats?service=CC", headers=supervisor).status_code == 422
