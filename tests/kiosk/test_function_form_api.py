"""The form samples over HTTP: search and detail (a view counted), images and PDFs with
ETags, printing at a kiosk (A4 through CUPS's lp, 填写要点 on the ticket printer), and
administrators' uploads."""

from __future__ import annotations

import datetime as dt
import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from forms_builders import residence_definition
from support import TestClient, bearer

from kiosk.forms.printing import A4Printer
from kiosk.printing.connection import parse_printer_url
from kiosk.printing.ticket_printer import TicketPrinter

FORM = "residence-permit-application"


def test_search_ranks_and_browsing_lists_by_department(hashing_client: TestClient) -> None:
    body = hashing_client.get("/api/forms", params={"q": "jzz"}).json()
    assert body["query"] == "jzz" and body["forms"][0]["title"] == "居住证申领登记表"
    first = body["forms"][0]
    assert first["department_name"] == "公安分局"
    assert first["thumb"].startswith(f"/api/forms/{FORM}/thumb.png?v=")
    police = hashing_client.get("/api/forms", params={"department": "police"}).json()
    assert FORM in {f["id"] for f in police["forms"]}
    of_item = hashing_client.get("/api/forms", params={"service": "divorce-registration"}).json()
    assert [f["title"] for f in of_item["forms"]] == ["离婚登记申请书", "离婚协议书"]
    departments = hashing_client.get("/api/forms/departments").json()["departments"]
    assert {
        "code": "police",
        "name": "公安分局",
        "count": police["total"],
        "initial": "G",
    } in departments


def test_the_detail_has_numbered_explanations_and_counts_a_view(hashing_client: TestClient) -> None:
    r = hashing_client.get(f"/api/forms/{FORM}", params={"channel": "kiosk"})
    assert r.status_code == 200, r.text
    form = r.json()
    first = form["sections"][0]["fields"][2]
    assert (first["number"], first["label"], first["sample"]) == (
        3,
        "公民身份号码",
        "110105199003071239",
    )
    assert "末位X写成小写x" in first["mistakes"]
    assert form["services"] == [{"id": "residence-permit", "name": "居住证申领"}]
    assert form["phone_url"] == f"http://testserver/forms/{FORM}"
    assert form["a4_printer"] is False
    library = hashing_client.app.state.forms  # type: ignore[attr-defined]
    counted = {r["id"]: r for r in library.view_counts(dt.date.min, dt.date.max)}
    assert counted[FORM]["by_channel"] == {"kiosk": 1}


def test_unknown_forms_and_bad_ids_get_clear_errors(hashing_client: TestClient) -> None:
    r = hashing_client.get("/api/forms/no-such-form")
    assert r.status_code == 404 and r.json()["error"]["message"] == "这份样表不存在或已下架。"
    assert hashing_client.get("/api/forms/..%2Fetc").status_code in (404, 422)
    assert hashing_client.get(f"/api/forms/{FORM}/thumb.pdf").status_code == 400


def test_images_and_pdfs_are_served_with_etags(hashing_client: TestClient) -> None:
    png = hashing_client.get(f"/api/forms/{FORM}/sample.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG\r\n\x1a\n")
    pdf = hashing_client.get(f"/api/forms/{FORM}/blank.pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    again = hashing_client.get(
        f"/api/forms/{FORM}/sample.png", headers={"If-None-Match": png.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    qr = hashing_client.get(f"/api/forms/{FORM}/qr.svg")
    assert qr.status_code == 200 and b"<svg" in qr.content


def fake_lp(tmp_path: Path, exit_code: int = 0) -> Path:
    """A stand-in for CUPS's lp that keeps its arguments and the file it was given."""
    script = tmp_path / "lp"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > "{tmp_path}/args"\n'
        "for last; do :; done\n"
        f'cp "$last" "{tmp_path}/printed.pdf"\n'
        + (
            'echo "request id is HallA4-7 (1 file(s))"\n'
            if exit_code == 0
            else 'echo "lp: The printer or class does not exist." >&2\n'
        )
        + f"exit {exit_code}\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_without_an_a4_printer_the_resident_is_told_to_scan_the_qr(
    hashing_client: TestClient,
) -> None:
    r = hashing_client.post(f"/api/forms/{FORM}/print", json={"what": "blank", "kiosk": "k1"})
    assert r.status_code == 503
    assert (
        r.json()["error"]["message"]
        == "本机未连接A4打印机，请扫码在手机上查看，或到咨询台领取空白表。"
    )
    assert r.json()["error"]["fields"]["reason"] == "not_configured"


def test_the_blank_form_goes_to_cups_once_however_often_the_button_is_pressed(
    hashing_client: TestClient, tmp_path: Path
) -> None:
    hashing_client.app.state.a4_printer = A4Printer("HallA4", str(fake_lp(tmp_path)))  # type: ignore[attr-defined]
    r = hashing_client.post(f"/api/forms/{FORM}/print", json={"what": "blank", "kiosk": "k1"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "printed": True,
        "job": "HallA4-7",
        "message": "空白表已打印，请在下方出纸口取表。",
    }
    args = (tmp_path / "args").read_text(encoding="utf-8").splitlines()
    assert args[:4] == ["-d", "HallA4", "-t", "居住证申领登记表"]
    assert (tmp_path / "printed.pdf").read_bytes().startswith(b"%PDF-")
    twice = hashing_client.post(f"/api/forms/{FORM}/print", json={"what": "blank", "kiosk": "k1"})
    assert (
        twice.status_code == 409
        and twice.json()["error"]["message"] == "刚刚已经打印过了，请在出纸口取表。"
    )
    other_kiosk = hashing_client.post(
        f"/api/forms/{FORM}/print", json={"what": "blank", "kiosk": "k2"}
    )
    assert other_kiosk.status_code == 200


def test_a_printer_cups_refuses_is_reported_and_may_be_tried_again(
    hashing_client: TestClient, tmp_path: Path
) -> None:
    hashing_client.app.state.a4_printer = A4Printer("Gone", str(fake_lp(tmp_path, exit_code=1)))  # type: ignore[attr-defined]
    for _ in range(2):  # a failure does not count as printed
        r = hashing_client.post(f"/api/forms/{FORM}/print", json={"what": "blank", "kiosk": "k1"})
        assert r.status_code == 503
        assert r.json()["error"]["message"].startswith("A4打印机暂时无法打印")
        assert "printer or class does not exist" in r.json()["error"]["detail"]
    health = hashing_client.get("/healthz").json()
    assert health["checks"]["a4_printer"]["state"] == "refused"


def test_the_field_checklist_prints_on_the_ticket_printer(
    hashing_client: TestClient, tmp_path: Path
) -> None:
    out = tmp_path / "roll.bin"
    hashing_client.app.state.ticket_printer = TicketPrinter(  # type: ignore[attr-defined]
        parse_printer_url(f"file://{out}"), 80, "青禾区政务服务中心"
    )
    r = hashing_client.post(f"/api/forms/{FORM}/print", json={"what": "checklist", "kiosk": "k1"})
    assert r.status_code == 200 and r.json()["message"] == "填写要点已打印，请在取号出纸口取走。"
    printed = out.read_bytes()
    assert "居住证申领登记表 填写要点".encode("gb18030") in printed
    assert "1. 姓名：".encode("gb18030") in printed
    assert printed.endswith(b"\x1dV\x00")  # and the slip is cut


def test_admins_upload_versions_and_bad_uploads_name_the_field(
    hashing_client: TestClient, token_for: Callable[[str], str]
) -> None:
    definition = residence_definition(summary="2027年版说明。")
    assert (
        hashing_client.post(
            "/api/admin/forms", content=yaml.safe_dump(definition, allow_unicode=True)
        ).status_code
        == 401
    )
    agent = bearer(token_for("agent"))
    assert (
        hashing_client.post("/api/admin/forms", content="id: x", headers=agent).status_code == 403
    )
    admin = bearer(token_for("admin"))
    r = hashing_client.post(
        "/api/admin/forms", content=yaml.safe_dump(definition, allow_unicode=True), headers=admin
    )
    assert r.status_code == 201 and r.json() == {"id": FORM, "version": 2, "status": "created"}
    assert hashing_client.get(f"/api/forms/{FORM}").json()["summary"] == "2027年版说明。"
    bad = residence_definition()
    bad["sections"][0]["fields"][0]["kind"] = "box"
    r = hashing_client.post(
        "/api/admin/forms",
        content=json.dumps(bad, ensure_ascii=False),
        headers={**admin, "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["error"]["message"] == "样表定义有误：sections[0].fields[0].kind。"
    assert hashing_client.get(f"/api/forms/{FORM}").json()["version"] == 2
    assert (
        hashing_client.post("/api/admin/forms", content="id: [", headers=admin).json()["error"][
            "fields"
        ]["field"]
        == "(file)"
    )
    versions = hashing_client.get(f"/api/admin/forms/{FORM}/versions", headers=admin).json()[
        "versions"
    ]
    assert [v["version"] for v in versions] == [2, 1]


@pytest.mark.parametrize("size", [129 * 1024])
def test_an_oversized_upload_is_refused(
    hashing_client: TestClient, token_for: Callable[[str], str], size: int
) -> None:
    r = hashing_client.post(
        "/api/admin/forms", content="#" * size, headers=bearer(token_for("admin"))
    )
    assert r.status_code == 400 and r.json()["error"]["message"] == "样表定义文件太大。"


def test_supervisors_see_views_per_form_and_channel(
    hashing_client: TestClient, token_for: Callable[[str], str]
) -> None:
    for channel in ("kiosk", "kiosk", "phone"):
        assert hashing_client.get(f"/api/forms/{FORM}", params={"channel": channel}).is_success
    hashing_client.get("/api/forms/marriage-registration-declaration")  # channel web
    supervisor = bearer(token_for("supervisor"))
    body = hashing_client.get("/api/admin/forms/views", headers=supervisor).json()
    assert body["forms"][0] == {
        "id": FORM,
        "title": "居住证申领登记表",
        "views": 3,
        "by_channel": {"kiosk": 2, "phone": 1},
    }
    assert body["forms"][1]["by_channel"] == {"web": 1}
    agent = bearer(token_for("agent"))
    assert hashing_client.get("/api/admin/forms/views", headers=agent).status_code == 403
    backwards = hashing_client.get(
        "/api/admin/forms/views",
        params={"since": "2026-12-02", "until": "2026-12-01"},
        headers=supervisor,
    )
    assert backwards.status_code == 400
    assert backwards.json()["error"]["message"] == "开始日期不能晚于结束日期。"


def test_each_kiosk_prints_on_its_own_a4_queue(hashing_client: TestClient, tmp_path: Path) -> None:
    hashing_client.app.state.a4_printer = A4Printer(  # type: ignore[attr-defined]
        "K01=HallA4, K02=DeskA4", str(fake_lp(tmp_path))
    )
    r = hashing_client.post(f"/api/forms/{FORM}/print", json={"what": "blank", "kiosk": "K02"})
    assert r.status_code == 200, r.text
    assert (tmp_path / "args").read_text(encoding="utf-8").splitlines()[:2] == ["-d", "DeskA4"]
    other = hashing_client.post(f"/api/forms/{FORM}/print", json={"what": "blank", "kiosk": "K09"})
    assert other.status_code == 503
    assert other.json()["error"]["fields"]["reason"] == "not_configured"


@pytest.mark.parametrize(
    ("spec", "queues"),
    [
        ("", {}),
        ("HallA4", {"*": "HallA4"}),
        ("K01=HallA4,*=DeskA4", {"K01": "HallA4", "*": "DeskA4"}),
    ],
)
def test_a4_printer_settings(spec: str, queues: dict[str, str]) -> None:
    from kiosk.forms.printing import parse_queues

    assert parse_queues(spec) == queues


@pytest.mark.parametrize("spec", ["Hall A4", "K01=", "=HallA4", "K01=Hall;rm"])
def test_a_wrong_a4_printer_setting_is_refused_at_start(spec: str, tmp_path: Path) -> None:
    from pydantic import ValidationError
    from support import build_settings

    with pytest.raises(ValidationError, match="BANSHI_FORMS_A4_PRINTER must be a CUPS queue"):
        build_settings(tmp_path, forms_a4_printer=spec)


def test_views_count_on_the_centres_day_not_utcs(
    hashing_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoneinfo import ZoneInfo

    from banshi.workcal import WorkCalendar

    # 07:30 in Beijing on 2 December is still 1 December in UTC
    beijing = dt.datetime(2026, 12, 2, 7, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    monkeypatch.setattr(WorkCalendar, "now", lambda self: beijing)
    assert hashing_client.get(f"/api/forms/{FORM}", params={"channel": "kiosk"}).is_success
    library = hashing_client.app.state.forms  # type: ignore[attr-defined]
    day = dt.date(2026, 12, 2)
    assert library.view_counts(day, day)[0]["by_channel"] == {"kiosk": 1}
    assert library.view_counts(dt.date(2026, 12, 1), dt.date(2026, 12, 1)) == []
