"""The form samples (填表样例) in a real browser (Debian's Chromium, driven by Playwright)
against one ``banshi serve`` on the sample centre: at the portrait kiosk a resident types
"jzz" on the on-screen letters, opens 居住证申领登记表, reads the numbered explanations,
switches to the blank form, zooms the image (double tap, pinch, drag), sees the QR for the
phone and is told in plain Chinese that this kiosk has no A4 printer (the default); the
kiosk's home tile opens the page in kiosk mode and inactivity brings it back home; on a
390×844 phone the QR's address opens the form directly, fits the width and offers the PDFs;
search finds a form by full pinyin and says what to try when nothing matches.

Screenshots of the kiosk and the phone are saved in the pytest temporary directory
(``forms-shots*``); their paths are printed. Needs /usr/bin/chromium (``scripts/browser-setup``)
and the ``playwright`` package; ``playwright install`` is never used."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from browser import kiosk, needs_chromium, new_context
from serving import Served, http, serve

from banshi.settings import SAMPLE_KB_DIR

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = pytest.mark.e2e

FORM = "residence-permit-application"
IMG_LOADED = "(id) => (i => i.complete && i.naturalWidth > 0)(document.getElementById(id))"


@pytest.fixture(scope="module", autouse=True)
def _needs_chromium() -> None:
    needs_chromium()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("forms")
    env = {"BANSHI_KB_SOURCE_DIR": str(SAMPLE_KB_DIR), "BANSHI_RASA_TIMEOUT_S": "1"}
    served: Served
    with serve(root / "data", env=env) as served:
        _, health = http("GET", f"{served.base}/healthz")
        assert health["checks"]["form_samples"]["status"] == "ok", health
        yield served.base
    assert "Traceback" not in served.log_path.read_text(errors="replace"), (
        "the server logged an error"
    )


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("forms-shots")


def phone(browser: Browser) -> BrowserContext:
    return new_context(browser, 390, 844, has_touch=True, is_mobile=True, device_scale_factor=2)


def scale(page: Page) -> float:
    return float(page.locator("#viewer").get_attribute("data-scale") or "0")


def pinch(page: Page, context: BrowserContext, start: float, end: float) -> None:
    """Two fingers on the image's middle moving apart from ``start`` to ``end`` px each side
    (touch events through the DevTools protocol: Chromium turns them into pointer events)."""
    box = page.locator("#viewer").bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = context.new_cdp_session(page)

    def points(d: float) -> list[dict[str, float]]:
        return [{"x": cx - d, "y": cy, "id": 0}, {"x": cx + d, "y": cy, "id": 1}]

    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": points(start)})
    steps = 10
    for i in range(1, steps + 1):
        d = start + (end - start) * i / steps
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": points(d)})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def drag(page: Page, context: BrowserContext, dx: float, dy: float) -> None:
    box = page.locator("#viewer").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for i in range(1, 6):
        point = {"x": x + dx * i / 5, "y": y + dy * i / 5}
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def test_at_the_kiosk_a_resident_finds_a_form_by_pinyin_initials_and_reads_it(
    server: str, browser: Browser, shots: Path
) -> None:
    from playwright.sync_api import expect

    context = kiosk(browser)
    try:
        page = context.new_page()
        page.goto(f"{server}/forms?kiosk=1")
        expect(page).to_have_title("填表样例")
        expect(page.locator("header")).to_contain_text("青禾区政务服务中心")
        expect(page.get_by_role("button", name="返回首页")).to_be_visible()
        keys = page.locator("#keys")
        expect(keys).to_be_hidden()  # until the field is touched: the departments come first
        expect(page.locator(".form-card").first).to_be_visible()
        page.screenshot(path=str(shots / "kiosk-list.png"))
        page.locator("#q").tap()
        expect(keys.get_by_role("button")).to_have_count(28)  # A–Z, 删除, 清空
        for control in [
            keys.get_by_role("button", name="字母 A"),
            keys.get_by_role("button", name="删除"),
            page.get_by_role("button", name=re.compile("^全部部门")),
            page.get_by_role("button", name="返回首页"),
        ]:
            box = control.bounding_box()
            assert box is not None and box["height"] >= 64 and box["x"] + box["width"] <= 1080
        # the A–Z strip: only the initials that departments have
        expect(page.locator("#letters")).to_contain_text("G")
        expect(page.get_by_role("button", name="拼音首字母 A")).to_have_count(0)
        assert page.evaluate("document.documentElement.scrollWidth") <= 1080

        for letter in "JZX":
            keys.get_by_role("button", name=f"字母 {letter}").click()
        keys.get_by_role("button", name="删除").click()
        keys.get_by_role("button", name="字母 Z").click()
        expect(page.locator("#q")).to_have_value("jzz")
        expect(page.locator("#list-title")).to_have_text("搜索结果")
        first = page.locator("#cards .form-card").first
        expect(first.locator(".t")).to_have_text("居住证申领登记表")
        expect(page.locator("#browse")).to_be_hidden()  # the departments make room for results
        page.screenshot(path=str(shots / "kiosk-search.png"))

        with page.expect_response(re.compile(rf"/api/forms/{FORM}\?channel=kiosk$")) as reply:
            first.click()
        detail = reply.value.json()
        expect(page).to_have_url(re.compile(rf"/forms/{FORM}\?kiosk=1$"))
        expect(page.get_by_role("heading", level=1)).to_have_text("居住证申领登记表")
        expect(page.locator("#d-meta")).to_contain_text("公安分局")
        expect(page.locator("#d-services a")).to_have_attribute("href", "/guides/residence-permit")
        img = page.locator("#d-img")
        expect(img).to_have_attribute("src", re.compile(r"/sample\.png\?v="))
        page.wait_for_function(IMG_LOADED, arg="d-img")
        field = page.locator(".fld", has_text="公民身份号码")
        expect(field.locator(".sample")).to_have_text("110105199003071239")
        expect(field.locator(".req")).to_have_text("必填")
        expect(field.locator(".num")).to_have_text(re.compile(r"^\d+$"))
        expect(field.locator(".mistakes")).to_contain_text("末位X写成小写x")

        # the QR for the phone: an SVG of the page's phone address
        assert detail["phone_url"].endswith(f"/forms/{FORM}")
        qr = page.locator("#d-qr")
        expect(page.get_by_text("扫码在手机上查看")).to_be_visible()
        expect(qr).to_have_attribute("src", f"/api/forms/{FORM}/qr.svg")
        page.wait_for_function(IMG_LOADED, arg="d-qr")
        got = page.request.get(f"{server}/api/forms/{FORM}/qr.svg")
        assert got.ok and got.headers["content-type"].startswith("image/svg+xml")
        expect(page.get_by_role("link", name="下载PDF（空白表）")).to_be_hidden()  # phones only
        page.screenshot(path=str(shots / "kiosk-detail.png"))

        # zoom: double tap 2× at the point, 复原, pinch, drag when zoomed
        viewer = page.locator("#viewer")
        viewer.scroll_into_view_if_needed()
        viewer.tap(position={"x": 300, "y": 300})
        viewer.tap(position={"x": 300, "y": 300})
        expect(viewer).to_have_attribute("data-scale", "2.00")
        page.get_by_role("button", name="复原").click()
        expect(viewer).to_have_attribute("data-scale", "1.00")
        viewer.scroll_into_view_if_needed()
        pinch(page, context, 50, 125)
        assert 2.2 < scale(page) <= 2.6
        before = img.evaluate("e => e.style.transform")
        drag(page, context, 120, 80)
        assert img.evaluate("e => e.style.transform") != before
        assert scale(page) > 2.2  # a drag pans, it does not zoom
        page.get_by_role("button", name="复原").click()

        page.get_by_role("button", name=re.compile("^空白表")).click()
        expect(img).to_have_attribute("src", re.compile(r"/blank\.png\?v="))
        page.wait_for_function(
            "() => (i => i.complete && i.naturalWidth > 0 && /blank\\.png/.test(i.currentSrc))"
            "(document.getElementById('d-img'))"
        )
        expect(page.get_by_role("button", name=re.compile("^空白表"))).to_have_attribute(
            "aria-pressed", "true"
        )

        # printing: no A4 printer is configured here, the ticket printer (dummy) prints
        message = page.locator("#print-msg")
        page.get_by_role("button", name="打印空白表（A4）").click()
        expect(message).to_contain_text("本机未连接A4打印机")
        expect(message).to_contain_text("请扫码在手机上查看")
        expect(message).not_to_have_class(re.compile(r"\bok\b"))
        page.screenshot(path=str(shots / "kiosk-no-a4.png"))
        page.get_by_role("button", name="打印填写要点").click()
        expect(message).to_have_text("填写要点已打印，请在取号出纸口取走。")
        expect(message).to_have_class(re.compile(r"\bok\b"))

        page.get_by_role("button", name="‹ 返回").click()
        expect(page).to_have_url(re.compile(r"/forms\?kiosk=1$"))
        expect(page.locator("#q")).to_have_value("jzz")  # the search as it was
        page.get_by_role("button", name="返回首页").click()
        expect(page).to_have_url(re.compile(r"/kiosk$"))
        print(f"kiosk screenshots: {shots}")
    finally:
        context.close()


def test_the_kiosk_tile_opens_the_forms_and_inactivity_returns_home(
    server: str, browser: Browser
) -> None:
    from playwright.sync_api import expect

    context = kiosk(browser)
    try:
        page = context.new_page()
        page.clock.install()
        page.goto(f"{server}/kiosk?kiosk=K07")
        tile = page.get_by_role("link", name="填表样例")
        box = tile.bounding_box()
        assert box is not None and box["height"] >= 96
        tile.click()
        expect(page).to_have_url(re.compile(r"/forms\?kiosk=K07$"))
        expect(page.locator("html")).to_have_class(re.compile(r"\bkiosk\b"))
        page.get_by_role("button", name=re.compile("^医疗保障局")).click()
        expect(page.locator("#list-title")).to_have_text("医疗保障局的样表")
        expect(page.locator("#cards .form-card").first).to_contain_text("医疗保障局")

        page.clock.run_for(36_000)
        still = page.get_by_role("alertdialog", name="还在吗？")
        expect(still).to_be_visible()
        page.get_by_role("button", name="我还在，继续").click()
        expect(still).to_be_hidden()
        page.clock.run_for(46_000)  # 45 s: the question, then back to the kiosk
        expect(page).to_have_url(re.compile(r"/kiosk\?kiosk=K07$"))
        expect(page.get_by_role("button", name="取号", exact=True)).to_be_visible()
    finally:
        context.close()


def test_on_a_phone_the_qr_address_opens_the_form_and_fits(
    server: str, browser: Browser, shots: Path
) -> None:
    from playwright.sync_api import expect

    context = phone(browser)
    try:
        page = context.new_page()
        with page.expect_response(re.compile(rf"/api/forms/{FORM}\?channel=phone$")) as reply:
            page.goto(f"{server}/forms/{FORM}")
        assert reply.value.ok
        expect(page.get_by_role("heading", level=1)).to_have_text("居住证申领登记表")
        expect(page).to_have_title("居住证申领登记表 · 填表样例")
        field = page.locator(".fld", has_text="公民身份号码")
        expect(field).to_be_visible()
        expect(field.locator(".sample")).to_have_text("110105199003071239")
        page.wait_for_function(IMG_LOADED, arg="d-img")
        for hidden in ("打印空白表（A4）", "打印填写要点", "返回首页"):
            expect(page.get_by_role("button", name=hidden)).to_be_hidden()
        expect(page.get_by_text("扫码在手机上查看")).to_be_hidden()
        blank = page.get_by_role("link", name="下载PDF（空白表）")
        sample = page.get_by_role("link", name="下载PDF（样表）")
        expect(blank).to_have_attribute("href", re.compile(rf"/api/forms/{FORM}/blank\.pdf"))
        expect(sample).to_have_attribute("href", re.compile(rf"/api/forms/{FORM}/sample\.pdf"))
        pdf = page.request.get(server + str(blank.get_attribute("href")))
        assert pdf.ok and pdf.headers["content-type"] == "application/pdf"
        assert pdf.body().startswith(b"%PDF")
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        page.screenshot(path=str(shots / "phone-detail.png"))
        page.screenshot(path=str(shots / "phone-detail-full.png"), full_page=True)

        page.get_by_role("link", name="‹ 全部样表").click()
        expect(page).to_have_url(re.compile(r"/forms$"))
        expect(page.locator(".form-card").first).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        page.screenshot(path=str(shots / "phone-list.png"), full_page=True)

        page.goto(f"{server}/forms/no-such-form")
        expect(page.get_by_role("alert")).to_contain_text("这份样表不存在或已下架")

        page.route(re.compile(rf"/api/forms/{FORM}\?"), lambda route: route.abort())
        page.goto(f"{server}/forms/{FORM}")
        expect(page.get_by_role("alert")).to_contain_text("网络连接中断了")
        print(f"phone screenshots: {shots}")
    finally:
        context.close()


def test_search_by_full_pinyin_and_a_hint_when_nothing_matches(
    server: str, browser: Browser
) -> None:
    from playwright.sync_api import expect

    context = phone(browser)
    try:
        page = context.new_page()
        page.goto(f"{server}/forms")
        box = page.get_by_role("searchbox")
        box.fill("shebaoka")
        first = page.locator("#cards .form-card").first
        expect(first.locator(".t")).to_contain_text("社会保障卡")
        expect(page.locator("#found")).to_contain_text("找到")

        box.fill("居住证")
        expect(first.locator(".t")).to_have_text("居住证申领登记表")

        box.fill("qqqqxxxx")
        empty = page.locator("#empty")
        expect(empty).to_contain_text("没有找到与“qqqqxxxx”有关的样表")
        expect(empty).to_contain_text("试试拼音首字母，如 jzz")
        expect(page.locator("#cards .form-card")).to_have_count(0)

        page.get_by_role("button", name="清空").click()
        expect(page.locator("#list-title")).to_have_text("全部样表")
        expect(page.locator("#cards .form-card").first).to_be_visible()
    finally:
        context.close()


def test_a_guide_on_the_kiosk_leads_to_its_form_samples(server: str, browser: Browser) -> None:
    from playwright.sync_api import expect

    context = kiosk(browser)
    try:
        page = context.new_page()
        page.goto(f"{server}/kiosk?kiosk=K07")
        page.get_by_role("button", name="办事指南", exact=True).click()
        page.get_by_role("button", name="结婚登记", exact=True).click()
        link = page.get_by_role("link", name="填表样例：申请结婚登记声明书")
        expect(link).to_be_visible()
        link.click()
        expect(page).to_have_url(
            re.compile(r"/forms/marriage-registration-declaration\?kiosk=K07$")
        )
        expect(page.get_by_role("heading", name="申请结婚登记声明书")).to_be_visible()
        expect(page.locator("html")).to_have_class(re.compile(r"\bkiosk\b"))
        # the print request names this kiosk: its own A4 printer, if it has one
        with page.expect_request(re.compile(r"/print$")) as sent:
            page.get_by_role("button", name=re.compile("打印空白表")).click()
        assert sent.value.post_data_json == {"what": "blank", "kiosk": "K07"}
        expect(page.get_by_text("本机未连接A4打印机", exact=False)).to_be_visible()
    finally:
        context.close()
