"""A blank form printed through a real CUPS scheduler (cupsd from Debian's cups-daemon,
started privately for the session): the job CUPS accepted holds the blank PDF, and a queue
that refuses jobs gives the resident the Chinese message and may be tried again."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cups_server import CUPSD, CupsServer
from support import TestClient

from kiosk.forms.printing import A4Printer

FORM = "residence-permit-application"


@pytest.fixture(scope="module")
def cups(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CupsServer]:
    if not Path(CUPSD).exists():
        pytest.skip(f"{CUPSD} is not installed (scripts/forms-setup installs cups-daemon)")
    server = CupsServer(tmp_path_factory.mktemp("cups")).start()
    yield server
    server.stop()


def wait_for(path: Path, timeout: float = 15.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size and path.read_bytes().rstrip().endswith(b"%%EOF"):
            return path.read_bytes()
        time.sleep(0.1)
    raise AssertionError(f"CUPS wrote nothing to {path} in {timeout} s")


def test_the_blank_form_reaches_the_printer_through_cups(
    hashing_client: TestClient, cups: CupsServer
) -> None:
    from pypdf import PdfReader

    out = cups.add_queue("HallA4")
    hashing_client.app.state.a4_printer = A4Printer("HallA4", server=cups.address)  # type: ignore[attr-defined]
    r = hashing_client.post(f"/api/forms/{FORM}/print", json={"what": "blank", "kiosk": "k1"})
    assert r.status_code == 200, r.text
    assert r.json()["job"].startswith("HallA4-")
    text = PdfReader(io.BytesIO(wait_for(out))).pages[0].extract_text()
    assert "居住证申领登记表" in text and "公民身份号码" in text
    assert "张晓明" not in text  # the blank form, not the sample
    health = hashing_client.get("/healthz").json()["checks"]["a4_printer"]
    assert health["state"] == "printed" and health["detail"] == r.json()["job"]


def test_a_queue_that_refuses_jobs_is_told_to_the_resident(
    hashing_client: TestClient, cups: CupsServer
) -> None:
    cups.add_queue("Closed")
    cups.admin("cupsreject", "Closed")
    hashing_client.app.state.a4_printer = A4Printer("Closed", server=cups.address)  # type: ignore[attr-defined]
    for _ in range(2):  # refused prints do not count as printed
        r = hashing_client.post(f"/api/forms/{FORM}/print", json={"what": "blank", "kiosk": "k1"})
        assert r.status_code == 503
        error = r.json()["error"]
        assert error["message"].startswith("A4打印机暂时无法打印")
        assert "not accepting jobs" in error["detail"]
