"""print_ticket against a fake network printer on loopback: the status is asked first
(DLE EOT n), the ticket goes out in one write, and a printer that cannot print gets none of
it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fake_printer import (
    COVER_OPEN,
    PAPER_NEAR_END,
    PAPER_OUT,
    SILENT,
    FakeNetworkPrinter,
    closed_port,
)
from printing_builders import make_ticket

from kiosk.errors import KioskError, PrinterUnavailable
from kiosk.printing.connection import parse_printer_url
from kiosk.printing.service import PrinterFactory, print_ticket, ticket_bytes
from kiosk.printing.status import PrinterStatus, check_status

FakePrinter = Callable[..., FakeNetworkPrinter]
ASK_PRINTER, ASK_CAUSE, ASK_PAPER = b"\x10\x04\x01", b"\x10\x04\x02", b"\x10\x04\x04"
KEEP_NUMBER = "请记下屏幕上的号码，或扫码保存，您的排队不受影响。"


def spying(url: str, writes: list[bytes]) -> PrinterFactory:
    """A factory of the configured printer whose every ``_raw`` call is recorded."""
    config = parse_printer_url(url)

    def open_printer():  # type: ignore[no-untyped-def]
        printer = config.open()
        send = printer._raw

        def record(msg: bytes) -> None:
            writes.append(bytes(msg))
            send(msg)

        printer._raw = record
        return printer

    return open_printer


def test_the_ticket_is_sent_exactly_as_rendered_in_one_write(fake_printer: FakePrinter) -> None:
    fake = fake_printer()
    ticket = make_ticket()
    writes: list[bytes] = []
    state = print_ticket(spying(fake.url, writes), ticket, paper_mm=58)
    fake.wait_for(1)
    expected = ticket_bytes(ticket, 58)
    assert state.status is PrinterStatus.OK
    assert writes == [ASK_PRINTER, ASK_PAPER, expected]  # two questions, then one write
    assert fake.connections == [ASK_PRINTER + ASK_PAPER + expected]
    assert "居住证申领".encode("gb18030") in fake.received


@pytest.mark.parametrize(
    ("statuses", "reason", "message"),
    [
        (PAPER_OUT, "paper_out", "打印机缺纸，" + KEEP_NUMBER),
        (COVER_OPEN, "cover_open", "打印机纸仓盖没有关好，" + KEEP_NUMBER),
    ],
)
def test_a_printer_that_cannot_print_gets_nothing(
    fake_printer: FakePrinter, statuses: dict[int, int], reason: str, message: str
) -> None:
    fake = fake_printer(statuses)
    with pytest.raises(PrinterUnavailable) as caught:
        print_ticket(parse_printer_url(fake.url).open, make_ticket())
    fake.wait_for(1)
    assert fake.connections == [ASK_PRINTER + ASK_CAUSE + ASK_PAPER]  # questions only
    exc = caught.value
    assert isinstance(exc, KioskError)
    assert (exc.status_code, exc.code, exc.reason) == (503, "printer_unavailable", reason)
    assert exc.message == message
    assert exc.device == f"network 127.0.0.1:{fake.port}"
    assert reason.replace("_", " ") in exc.detail
    assert exc.to_dict()["fields"] == {"reason": reason}


def test_an_unreachable_printer() -> None:
    config = parse_printer_url(f"network://127.0.0.1:{closed_port()}?timeout=0.5")
    with pytest.raises(PrinterUnavailable) as caught:
        print_ticket(config.open, make_ticket())
    assert caught.value.reason == "unreachable"
    assert caught.value.message.startswith("打印机暂时连接不上，请记下屏幕上的号码")
    assert "cannot talk to the printer" in caught.value.detail


def test_a_printer_that_does_not_answer_is_offline(fake_printer: FakePrinter) -> None:
    fake = fake_printer(SILENT)
    with pytest.raises(PrinterUnavailable) as caught:
        print_ticket(parse_printer_url(fake.url).open, make_ticket())  # timeout=0.3
    fake.wait_for(1)
    assert caught.value.reason == "offline"
    assert "?status=off" in caught.value.detail
    assert fake.connections == [ASK_PRINTER]


def test_status_off_prints_without_asking(fake_printer: FakePrinter) -> None:
    fake = fake_printer(SILENT)
    config = parse_printer_url(fake.url + "&status=off")
    print_ticket(config.open, make_ticket(), check=config.check_status)
    fake.wait_for(1)
    assert fake.connections == [ticket_bytes(make_ticket())]


def test_paper_near_end_still_prints_and_says_so(fake_printer: FakePrinter) -> None:
    fake = fake_printer(PAPER_NEAR_END)
    state = print_ticket(parse_printer_url(fake.url).open, make_ticket(), paper_mm=80)
    fake.wait_for(1)
    assert state.status is PrinterStatus.PAPER_NEAR_END and state.can_print
    assert state.message == "打印纸快用完了，请工作人员及时更换。"
    assert fake.connections == [ASK_PRINTER + ASK_PAPER + ticket_bytes(make_ticket(), 80)]


def test_no_stale_backlog_when_the_paper_comes_back(fake_printer: FakePrinter) -> None:
    """GIVEN a printer out of paper that refused ticket A012, WHEN the roll is changed and
    A013 is printed, THEN the printer receives A013 once and never A012."""
    fake = fake_printer(PAPER_OUT)
    factory = parse_printer_url(fake.url).open
    a012 = make_ticket(number="A012", status_url="https://zwfw.example/q/A012")
    a013 = make_ticket(number="A013", status_url="https://zwfw.example/q/A013")
    with pytest.raises(PrinterUnavailable):
        print_ticket(factory, a012)
    fake.statuses = dict(PAPER_NEAR_END)
    print_ticket(factory, a013)
    fake.wait_for(2)
    assert b"A012" not in fake.received
    assert fake.received.count(b"A013\n") == 1
    # a reprint on request is just another call
    print_ticket(factory, a013)
    fake.wait_for(3)
    assert fake.received.count(b"A013\n") == 2


def test_check_status_reads_each_state(fake_printer: FakePrinter) -> None:
    for statuses, expected in [
        (PAPER_OUT, PrinterStatus.PAPER_OUT),
        (COVER_OPEN, PrinterStatus.COVER_OPEN),
        (PAPER_NEAR_END, PrinterStatus.PAPER_NEAR_END),
        ({1: 0x1A, 2: 0x52, 3: 0x32, 4: 0x12}, PrinterStatus.OFFLINE),  # an error, paper fine
        (None, PrinterStatus.OK),
    ]:
        printer = parse_printer_url(fake_printer(statuses).url).open()
        try:
            assert check_status(printer).status is expected
        finally:
            printer.close()


def test_the_api_answers_503_with_the_chinese_message() -> None:
    from fastapi import FastAPI
    from support import TestClient

    from banshi.errors import install_handlers

    app = FastAPI()
    install_handlers(app)

    @app.post("/print")
    def _print() -> None:
        device = "network 192.0.2.10:9100"
        raise PrinterUnavailable(device, "paper_out", "打印机缺纸。", "paper out")

    response = TestClient(app).post("/print")
    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": "printer_unavailable",
        "message": "打印机缺纸。",
        "detail": "printer network 192.0.2.10:9100: paper out",
        "fields": {"reason": "paper_out"},
    }
