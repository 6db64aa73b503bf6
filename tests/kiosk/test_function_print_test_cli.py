"""``banshi kiosk print-test``: a sample ticket on the configured printer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_printer import PAPER_OUT, FakeNetworkPrinter, closed_port
from printing_builders import CUT, zh

from banshi.cli import main


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"BANSHI_DATA_DIR": str(tmp_path / "data"), "BANSHI_ENV": "test"}


def test_print_test_writes_raw_escpos_to_a_file_printer(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "ticket.bin"
    env["BANSHI_KIOSK_PRINTER"] = f"file://{out}"
    result = CliRunner().invoke(main, ["kiosk", "print-test", "--paper", "58"], env=env)
    assert result.exit_code == 0, result.output
    assert f"appended to {out}" in result.stdout
    assert "sample ticket A012 (58 mm" in result.stdout
    data = out.read_bytes()
    assert f"{len(data)} bytes of ESC/POS" in result.stdout
    assert data.startswith(b"\x1b@")
    assert zh("青禾区政务服务中心") in data  # the configured centre's name (sample centre.yml)
    assert zh("居住证申领") in data
    assert b"\x1d!\x33\x1bE\x01A012\n" in data
    assert b"\x1d(k" in data and b"http://127.0.0.1:8000/queue/A012" in data
    assert b"-" * 32 + b"\n" in data and b"-" * 33 not in data
    assert data.endswith(CUT)


def test_print_test_uses_the_configured_paper_and_public_url(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "ticket.bin"
    env |= {
        "BANSHI_KIOSK_PRINTER": f"file://{out}",
        "BANSHI_KIOSK_PAPER_MM": "80",
        "BANSHI_PUBLIC_URL": "https://zwfw.qinghe.example/",
    }
    result = CliRunner().invoke(main, ["kiosk", "print-test"], env=env)
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert b"-" * 48 + b"\n" in data
    assert b"https://zwfw.qinghe.example/queue/A012" in data


def test_print_test_on_the_default_dummy_printer(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["kiosk", "print-test"], env=env)
    assert result.exit_code == 0, result.output
    assert "rendered in memory only: set BANSHI_KIOSK_PRINTER" in result.stdout


def test_print_test_sends_to_a_network_printer(
    env: dict[str, str], fake_printer: Callable[..., FakeNetworkPrinter]
) -> None:
    fake = fake_printer()
    env["BANSHI_KIOSK_PRINTER"] = fake.url
    result = CliRunner().invoke(main, ["kiosk", "print-test"], env=env)
    assert result.exit_code == 0, result.output
    assert f"sent to network 127.0.0.1:{fake.port}" in result.stdout
    fake.wait_for(1)
    assert zh("居住证申领") in fake.received


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [(PAPER_OUT, "打印机缺纸"), (None, "打印机暂时连接不上")],
)
def test_print_test_says_why_it_could_not_print(
    env: dict[str, str],
    fake_printer: Callable[..., FakeNetworkPrinter],
    statuses: dict[int, int] | None,
    expected: str,
) -> None:
    url = fake_printer(statuses).url if statuses else f"network://127.0.0.1:{closed_port()}"
    env["BANSHI_KIOSK_PRINTER"] = url
    result = CliRunner().invoke(main, ["kiosk", "print-test"], env=env)
    assert result.exit_code == 1
    assert expected in result.stderr
    assert "printer network 127.0.0.1:" in result.stderr


def test_print_test_refuses_a_bad_setting(env: dict[str, str]) -> None:
    env["BANSHI_KIOSK_PRINTER"] = "usb://printer"
    result = CliRunner().invoke(main, ["kiosk", "print-test"], env=env)
    assert result.exit_code != 0
    assert "BANSHI_KIOSK_PRINTER='usb://printer'" in str(result.exception)
