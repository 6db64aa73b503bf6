"""BANSHI_KIOSK_PRINTER and BANSHI_KIOSK_PAPER_MM: parsing, refusing, opening; the file
connection that captures raw bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from printing_builders import make_ticket
from pydantic import ValidationError

from banshi.settings import Settings, get_settings
from kiosk.errors import PrinterUnavailable
from kiosk.printing.connection import PrinterConfig, PrinterUrlError, parse_printer_url
from kiosk.printing.service import print_ticket, send_job, ticket_bytes


@pytest.mark.parametrize(
    ("url", "config"),
    [
        ("network://192.0.2.10", PrinterConfig("network", host="192.0.2.10")),
        (
            "network://printer.hall.local:9101?timeout=1.5",
            PrinterConfig("network", host="printer.hall.local", port=9101, timeout_s=1.5),
        ),
        ("network://[2001:db8::7]:9100", PrinterConfig("network", host="2001:db8::7")),
        (
            "usb://0x0416:0x5011?in_ep=0x81&out_ep=0x03",
            PrinterConfig("usb", vendor_id=0x0416, product_id=0x5011, in_ep=0x81, out_ep=0x03),
        ),
        (
            "serial:///dev/ttyUSB0?baudrate=115200&status=off",
            PrinterConfig("serial", path="/dev/ttyUSB0", baudrate=115200, check_status=False),
        ),
        ("file:///tmp/kiosk%20out.bin", PrinterConfig("file", path="/tmp/kiosk out.bin")),
        ("file:out.bin", PrinterConfig("file", path="out.bin")),
        ("dummy://", PrinterConfig("dummy")),
        (" DUMMY: ", PrinterConfig("dummy")),
    ],
)
def test_printer_urls(url: str, config: PrinterConfig) -> None:
    assert parse_printer_url(url) == config


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "the connection kind is missing"),
        ("192.0.2.10:9100", "the connection kind is missing"),
        ("lpt://1", "unknown connection 'lpt'"),
        ("network://", "network needs a host"),
        ("network://192.0.2.10:print", "bad port"),
        ("network://192.0.2.10?baud=9600", "unknown option baud (allowed: status, timeout)"),
        ("network://192.0.2.10?timeout=0", "timeout must be between 0.05 and 600"),
        ("network://192.0.2.10?status=maybe", "status must be on or off"),
        ("usb://0416", "usb needs vendor and product id"),
        ("usb://0x0416:zz", "product id must be a whole number"),
        ("serial://", "serial needs a device"),
        ("serial:///dev/ttyS0?baudrate=fast", "baudrate must be a whole number"),
        ("file://tmp/out.bin", "three slashes"),
        ("file://", "file needs a path"),
        ("dummy://x", "dummy takes nothing"),
    ],
)
def test_bad_printer_urls_name_the_setting(url: str, problem: str) -> None:
    with pytest.raises(PrinterUrlError) as caught:
        parse_printer_url(url)
    message = str(caught.value)
    assert message.startswith(f"BANSHI_KIOSK_PRINTER={url!r}: ")
    assert problem in message
    assert "network://HOST[:9100]" in message  # and says what would do


def test_settings_refuse_a_bad_printer_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BANSHI_KIOSK_PRINTER", "tcp://192.0.2.10:9100")
    with pytest.raises(ValidationError) as caught:
        get_settings()
    assert "BANSHI_KIOSK_PRINTER='tcp://192.0.2.10:9100': unknown connection 'tcp'" in str(
        caught.value
    )


def test_settings_defaults_and_paper_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (Settings().kiosk_printer, Settings().kiosk_paper_mm) == ("dummy://", 80)
    monkeypatch.setenv("BANSHI_KIOSK_PRINTER", "network://192.0.2.10")
    monkeypatch.setenv("BANSHI_KIOSK_PAPER_MM", "58")
    s = Settings()
    assert (s.kiosk_printer, s.kiosk_paper_mm) == ("network://192.0.2.10", 58)
    monkeypatch.setenv("BANSHI_KIOSK_PAPER_MM", "60")
    with pytest.raises(ValidationError, match="BANSHI_KIOSK_PAPER_MM must be 58 or 80"):
        Settings()


def test_each_kind_opens_its_python_escpos_printer() -> None:
    from escpos.printer import Dummy, Network, Serial, Usb

    network = parse_printer_url("network://192.0.2.10:9101?timeout=2").open()
    assert isinstance(network, Network)
    assert (network.host, network.port, network.timeout) == ("192.0.2.10", 9101, 2.0)
    usb = parse_printer_url("usb://0x0416:0x5011?out_ep=0x03").open()
    assert isinstance(usb, Usb)
    assert usb.usb_args == {"idVendor": 0x0416, "idProduct": 0x5011}
    assert (usb.out_ep, usb.in_ep, usb.timeout) == (0x03, 0x82, 3000)
    serial = parse_printer_url("serial:///dev/ttyUSB0?baudrate=19200").open()
    assert isinstance(serial, Serial)
    assert (serial.devfile, serial.baudrate) == ("/dev/ttyUSB0", 19200)
    assert isinstance(parse_printer_url("dummy://").open(), Dummy)


def test_the_file_connection_appends_each_job(tmp_path: Path) -> None:
    out = tmp_path / "kiosk.bin"
    config = parse_printer_url(f"file://{out}")
    assert config.name == f"file {out}"
    first, second = make_ticket(number="A012"), make_ticket(number="A013")
    print_ticket(config.open, first, paper_mm=58)
    assert out.read_bytes() == ticket_bytes(first, 58)
    print_ticket(config.open, second, paper_mm=58)
    assert out.read_bytes() == ticket_bytes(first, 58) + ticket_bytes(second, 58)


def test_a_file_that_cannot_be_written_is_unreachable(tmp_path: Path) -> None:
    config = parse_printer_url(f"file://{tmp_path}/missing/kiosk.bin")
    with pytest.raises(PrinterUnavailable) as caught:
        send_job(config.open, b"\x1b@")
    assert caught.value.reason == "unreachable"
    assert "missing/kiosk.bin" in caught.value.detail
    assert not (tmp_path / "missing").exists()


def test_importing_the_kiosk_does_not_load_python_escpos() -> None:
    code = (
        "import sys, banshi.settings, kiosk.printing.service, kiosk.cli; "
        "banshi.settings.Settings(kiosk_printer='network://192.0.2.10'); "
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('escpos', 'usb', 'serial')]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
