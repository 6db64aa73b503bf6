"""The serial connection against a printer behind a pseudo-terminal."""

from __future__ import annotations

import time

import pytest
from fake_printer import PAPER_OUT, FakeSerialPrinter
from printing_builders import make_ticket

from kiosk.errors import PrinterUnavailable
from kiosk.printing.connection import parse_printer_url
from kiosk.printing.service import print_ticket, ticket_bytes

pytest.importorskip("serial", reason="the 'kiosk' extra (pyserial) is not installed")


def test_a_serial_printer_is_asked_then_sent_the_ticket_at_once() -> None:
    with FakeSerialPrinter() as fake:
        started = time.monotonic()
        url = f"serial://{fake.device}?timeout=2"
        print_ticket(parse_printer_url(url).open, make_ticket(), paper_mm=58)
        expected = b"\x10\x04\x01\x10\x04\x04" + ticket_bytes(make_ticket(), 58)
        fake.wait_until_received(expected)
        # each answer is one byte: no waiting out the read timeout (2 s) per question
        assert time.monotonic() - started < 1.5
    assert fake.received == expected


def test_a_serial_printer_out_of_paper_gets_no_ticket() -> None:
    with FakeSerialPrinter(PAPER_OUT) as fake:
        with pytest.raises(PrinterUnavailable) as caught:
            print_ticket(parse_printer_url(fake.url).open, make_ticket())
        assert caught.value.reason == "paper_out"
        assert caught.value.device == f"serial {fake.device}"
    assert fake.received == b"\x10\x04\x01\x10\x04\x02\x10\x04\x04"
