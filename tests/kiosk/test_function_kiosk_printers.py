"""A lobby of kiosks, each with its own ticket printer: BANSHI_KIOSK_PRINTER names them per
kiosk (``K01=URL,K02=URL,*=URL``); a kiosk's tickets, reprints and checklists come out of its
own printer, one printer's trouble stays its own, and a kiosk without one still gets its
number on screen."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fake_printer import PAPER_OUT, READY, FakeNetworkPrinter
from printing_builders import CUT, zh
from pydantic import ValidationError
from queue_builders import at
from support import TestClient, api_client, build_settings

from banshi.cli import main
from banshi.settings import Settings
from kiosk.printing.connection import parse_printer_map, parse_printer_url
from kiosk.printing.ticket_printer import TicketPrinters

FORM = "residence-permit-application"
NO_PRINTER = "本机没有连接小票打印机，请记下屏幕上的号码，或扫码保存，您的排队不受影响。"


@pytest.fixture
def lobby_with(hashing_kb: Any) -> Iterator[Callable[[str], TestClient]]:
    """``lobby_with("K01=…,K02=…")``: the app started with that BANSHI_KIOSK_PRINTER, at
    10:00 on a Monday."""
    with_setting: list[Any] = []

    def start(spec: str) -> TestClient:
        settings = hashing_kb.settings.model_copy(update={"kiosk_printer": spec})
        context = api_client(settings, hashing_kb)
        client = context.__enter__()
        with_setting.append(context)
        client.app.state.queue.clock = lambda: at("10:00")  # type: ignore[attr-defined]
        return client

    yield start
    for context in with_setting:
        context.__exit__(None, None, None)


def issue(client: TestClient, kiosk: str, service: str = "C") -> dict[str, Any]:
    r = client.post("/api/kiosk/tickets", json={"service": service, "kiosk": kiosk})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def ticket_printer_health(client: TestClient) -> dict[str, Any]:
    return client.get("/healthz").json()["checks"]["ticket_printer"]  # type: ignore[no-any-return]


def test_each_kiosk_prints_its_tickets_on_its_own_printer(
    lobby_with: Callable[[str], TestClient], fake_printer: Callable[..., FakeNetworkPrinter]
) -> None:
    k01, k02 = fake_printer(READY), fake_printer(READY)
    lobby = lobby_with(f"K01={k01.url},K02={k02.url}")
    first, second = issue(lobby, "K01"), issue(lobby, "K02")
    assert (first["number"], first["printed"]) == ("C001", True)
    assert (second["number"], second["printed"]) == ("C002", True)
    k01.wait_for(1)
    k02.wait_for(1)
    assert b"C001" in k01.received and b"C002" not in k01.received
    assert b"C002" in k02.received and b"C001" not in k02.received
    for printer in (k01, k02):  # a whole ticket: the centre, the service, the cut
        assert zh("青禾区政务服务中心") in printer.received
        assert zh("医疗保障") in printer.received
        assert printer.connections[-1].endswith(CUT)
    health = ticket_printer_health(lobby)
    assert health["status"] == "ok" and health["other_kiosks"] == "no printer"
    assert [(p["kiosks"], p["printer"], p["state"]) for p in health["printers"]] == [
        (["K01"], f"network 127.0.0.1:{k01.port}", "ok"),
        (["K02"], f"network 127.0.0.1:{k02.port}", "ok"),
    ]


def test_a_kiosk_not_listed_without_star_gets_its_number_unprinted(
    lobby_with: Callable[[str], TestClient], fake_printer: Callable[..., FakeNetworkPrinter]
) -> None:
    k01 = fake_printer(READY)
    lobby = lobby_with(f"K01={k01.url}")
    for kiosk in ("K09", ""):  # another kiosk, and a kiosk page without ?kiosk=
        ticket = issue(lobby, kiosk)
        assert ticket["printed"] is False and ticket["number"].startswith("C")
        assert ticket["printer"] == {"reason": "not_configured", "message": NO_PRINTER}
        assert ticket["status_url"].endswith("/queue/" + ticket["token"])
    assert k01.connections == []  # nothing went to K01's printer
    assert issue(lobby, "K01")["printed"] is True
    k01.wait_for(1)
    assert b"C003" in k01.received and b"C001" not in k01.received


def test_star_is_the_printer_of_the_kiosks_not_listed(
    lobby_with: Callable[[str], TestClient], fake_printer: Callable[..., FakeNetworkPrinter]
) -> None:
    k01, others = fake_printer(READY), fake_printer(READY)
    lobby = lobby_with(f"K01={k01.url},*={others.url}")
    assert [issue(lobby, k)["printed"] for k in ("K02", "K01", "")] == [True, True, True]
    others.wait_for(2)
    k01.wait_for(1)
    assert b"C001" in others.received and b"C003" in others.received
    assert b"C002" in k01.received and b"C002" not in others.received
    health = ticket_printer_health(lobby)
    assert [p["kiosks"] for p in health["printers"]] == [["K01"], ["*"]]
    assert "other_kiosks" not in health


def test_one_printer_out_of_paper_does_not_stop_the_other_kiosk(
    lobby_with: Callable[[str], TestClient], fake_printer: Callable[..., FakeNetworkPrinter]
) -> None:
    empty, ready = fake_printer(PAPER_OUT), fake_printer(READY)
    lobby = lobby_with(f"K01={empty.url},K02={ready.url}")
    stuck = issue(lobby, "K01")
    assert stuck["printed"] is False and stuck["printer"]["reason"] == "paper_out"
    assert "缺纸" in stuck["printer"]["message"]
    fine = issue(lobby, "K02")
    assert (fine["number"], fine["printed"]) == ("C002", True)
    ready.wait_for(1)
    assert b"C002" in ready.received
    assert b"C001" not in empty.received  # the status check said no paper: nothing sent
    health = ticket_printer_health(lobby)
    assert health["status"] == "degraded"
    states = {tuple(p["kiosks"]): (p["status"], p["state"]) for p in health["printers"]}
    assert states == {("K01",): ("degraded", "paper_out"), ("K02",): ("ok", "ok")}


def test_a_reprint_comes_out_of_the_issuing_kiosks_printer(
    lobby_with: Callable[[str], TestClient], fake_printer: Callable[..., FakeNetworkPrinter]
) -> None:
    k01, k02 = fake_printer(PAPER_OUT), fake_printer(READY)
    lobby = lobby_with(f"K01={k01.url},K02={k02.url}")
    ticket = issue(lobby, "K01", service="J")
    assert (ticket["number"], ticket["printed"]) == ("J001", False)
    k01.statuses = dict(READY)  # staff changed the roll
    again = lobby.post(f"/api/kiosk/tickets/{ticket['token']}/print").json()
    assert (again["number"], again["printed"]) == ("J001", True)
    k01.wait_for(2)
    assert len([c for c in k01.connections if b"J001" in c]) == 1
    assert k02.connections == []
    assert ticket_printer_health(lobby)["status"] == "ok"


def test_the_field_checklist_prints_on_the_kiosks_printer(
    lobby_with: Callable[[str], TestClient], tmp_path: Path
) -> None:
    k01, k02 = tmp_path / "k01.bin", tmp_path / "k02.bin"
    lobby = lobby_with(f"K01=file://{k01},K02=file://{k02}")
    r = lobby.post(f"/api/forms/{FORM}/print", json={"what": "checklist", "kiosk": "K02"})
    assert r.status_code == 200, r.text
    assert "居住证申领登记表 填写要点".encode("gb18030") in k02.read_bytes()
    assert not k01.exists()
    r = lobby.post(f"/api/forms/{FORM}/print", json={"what": "checklist", "kiosk": "K09"})
    assert r.status_code == 503
    error = r.json()["error"]
    assert error["message"] == "本机没有连接小票打印机，请扫码在手机上查看，或到咨询台询问。"
    assert error["fields"]["reason"] == "not_configured"
    assert "kiosk 'K09'" in error["detail"]


def test_one_url_is_every_kiosks_printer_and_reports_health_as_before(
    lobby_with: Callable[[str], TestClient], tmp_path: Path
) -> None:
    roll = tmp_path / "roll.bin"
    lobby = lobby_with(f"file://{roll}")
    assert ticket_printer_health(lobby) == {
        "status": "ok",
        "printer": f"file {roll}",
        "state": "unused",
    }
    assert [issue(lobby, k)["printed"] for k in ("K01", "K77", "")] == [True, True, True]
    data = roll.read_bytes()
    assert b"C001" in data and b"C002" in data and b"C003" in data
    health = ticket_printer_health(lobby)
    assert set(health) == {"status", "printer", "state", "detail", "at"}
    assert (health["status"], health["state"]) == ("ok", "ok")


def test_kiosks_whose_urls_name_the_same_printer_share_it() -> None:
    spec = (
        "K01=network://10.0.0.21,K02=network://10.0.0.21:9100,"
        "K03=usb://0x0416:0x5011,*=network://10.0.0.21"
    )
    printers = TicketPrinters.from_setting(spec, 80, "青禾区政务服务中心")
    hall = printers.for_kiosk("K01")
    assert hall is not None and hall is printers.for_kiosk("K02") is printers.for_kiosk("K99")
    assert printers.for_kiosk("K03") is not hall
    assert [(p.config.name, kiosks) for p, kiosks in printers.printers] == [
        ("network 10.0.0.21:9100", ["K01", "K02", "*"]),
        ("usb 0x0416:0x5011", ["K03"]),
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("network://192.0.2.10:9100?timeout=2", {"*": "network 192.0.2.10:9100"}),
        (
            " K01=network://10.0.0.21 , K02=usb://0x0416:0x5011?out_ep=0x03,*=network://10.0.0.30",
            {
                "K01": "network 10.0.0.21:9100",
                "K02": "usb 0x0416:0x5011",
                "*": "network 10.0.0.30:9100",
            },
        ),
        ("hall-1.L=serial:///dev/ttyUSB0?baudrate=19200", {"hall-1.L": "serial /dev/ttyUSB0"}),
    ],
)
def test_the_setting_is_one_url_or_urls_per_kiosk(spec: str, expected: dict[str, str]) -> None:
    assert {k: c.name for k, c in parse_printer_map(spec).items()} == expected
    Settings(kiosk_printer=spec)  # the validator accepts it


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("K 01=network://10.0.0.21", "entry 'K 01=network://10.0.0.21': kiosk id 'K 01' must be"),
        ("=network://10.0.0.21", "entry '=network://10.0.0.21': kiosk id '' must be"),
        (
            "K01=network://10.0.0.21,K01=network://10.0.0.22",
            "entry 'K01=network://10.0.0.22': kiosk K01 is listed twice",
        ),
        ("*=dummy://,*=dummy://", "entry '*=dummy://': kiosk * is listed twice"),
        (
            "K01=network://10.0.0.21,K02=usb://printer",
            "entry 'K02=usb://printer': usb needs vendor and product id",
        ),
        ("K01=tcp://10.0.0.21", "entry 'K01=tcp://10.0.0.21': unknown connection 'tcp'"),
        ("K01=", "entry 'K01=': the connection kind is missing"),
        (
            "K01=network://10.0.0.21,network://10.0.0.30",
            "entry 'network://10.0.0.30': not KIOSK=VALUE",
        ),
        ("K01=dummy://,,K02=dummy://", "entry '': nothing between two commas"),
    ],
)
def test_a_wrong_setting_is_refused_naming_the_entry(
    spec: str, names: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BANSHI_KIOSK_PRINTER", spec)
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = str(caught.value)
    assert f"BANSHI_KIOSK_PRINTER {names}" in message
    assert "KIOSK=URL pairs" in message


def test_a_single_url_is_refused_as_before() -> None:
    with pytest.raises(ValueError) as caught:
        parse_printer_map("usb://printer")
    assert str(caught.value) == str(_error_of(lambda: parse_printer_url("usb://printer")))
    assert str(caught.value).startswith("BANSHI_KIOSK_PRINTER='usb://printer': ")


def _error_of(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except ValueError as exc:
        return exc
    raise AssertionError("no error")


def test_duplicate_kiosks_are_refused_for_the_a4_printer_too(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="entry 'K01=DeskA4': kiosk K01 is listed twice"):
        build_settings(tmp_path, forms_a4_printer="K01=HallA4,K01=DeskA4")


# -- banshi kiosk print-test -------------------------------------------------------------
@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"BANSHI_DATA_DIR": str(tmp_path / "data"), "BANSHI_ENV": "test"}


def test_print_test_prints_on_every_printer_saying_for_which_kiosks(
    env: dict[str, str], fake_printer: Callable[..., FakeNetworkPrinter], tmp_path: Path
) -> None:
    hall, desk = fake_printer(READY), tmp_path / "desk.bin"
    env["BANSHI_KIOSK_PRINTER"] = f"K01={hall.url},K02={hall.url},*=file://{desk}"
    result = CliRunner().invoke(main, ["kiosk", "print-test"], env=env)
    assert result.exit_code == 0, result.output
    assert f"sent to network 127.0.0.1:{hall.port} (kiosks K01, K02)" in result.stdout
    assert f"appended to {desk} (kiosks *)" in result.stdout
    hall.wait_for(1)
    assert len(hall.connections) == 1  # one printer, one sample, though two kiosks
    assert "本打印机为K01、K02号取号机出票".encode("gb18030") in hall.received
    assert "本打印机为未单独列出的取号机出票".encode("gb18030") in desk.read_bytes()


def test_print_test_for_one_kiosk_and_for_a_kiosk_without_a_printer(
    env: dict[str, str], fake_printer: Callable[..., FakeNetworkPrinter]
) -> None:
    k01, k02 = fake_printer(READY), fake_printer(READY)
    env["BANSHI_KIOSK_PRINTER"] = f"K01={k01.url},K02={k02.url}"
    result = CliRunner().invoke(main, ["kiosk", "print-test", "--kiosk", "K02"], env=env)
    assert result.exit_code == 0, result.output
    assert f"sent to network 127.0.0.1:{k02.port} (kiosks K02)" in result.stdout
    k02.wait_for(1)
    assert b"A012" in k02.received and k01.connections == []
    missing = CliRunner().invoke(main, ["kiosk", "print-test", "--kiosk", "K09"], env=env)
    assert missing.exit_code == 1
    assert "kiosk 'K09' has no printer" in missing.stderr


def test_print_test_reports_the_printer_that_failed_and_prints_on_the_others(
    env: dict[str, str], fake_printer: Callable[..., FakeNetworkPrinter]
) -> None:
    empty, ready = fake_printer(PAPER_OUT), fake_printer(READY)
    env["BANSHI_KIOSK_PRINTER"] = f"K01={empty.url},K02={ready.url}"
    result = CliRunner().invoke(main, ["kiosk", "print-test"], env=env)
    assert result.exit_code == 1
    assert f"printer network 127.0.0.1:{empty.port}: paper out" in result.stderr
    assert "(kiosks K01) — 打印机缺纸" in result.stderr
    assert "1 of 2 printers did not print" in result.stderr
    assert f"sent to network 127.0.0.1:{ready.port} (kiosks K02)" in result.stdout
    ready.wait_for(1)
    assert b"A012" in ready.received
