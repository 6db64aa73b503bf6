"""The lobby in a real browser (Debian's Chromium, driven by Playwright) against one
``banshi serve``: a resident takes a number at the portrait kiosk and sees it with its QR,
an ID-required service refuses a wrong ID number in the server's words, 大字模式 enlarges the
page and asks about 绿色通道 first, the kiosk goes idle and back home by itself, a clerk logs
in at /counter and calls the number, and the resident's phone page shows the call.

The server's queue clock cannot be fixed from here, so the server runs on a copy of the
sample centre that is open all day every day (centre.yml ``opening:`` 00:00-23:59, no
holidays) and issues numbers until the period ends (queue.yml ``last_ticket_minutes: 0``):
the tests pass at any time of day except the last minute before midnight.

Screenshots of the kiosk's first screen and of a number on it are saved in the pytest
temporary directory (``kiosk-shots*``); their paths are printed. Needs /usr/bin/chromium
(``scripts/browser-setup``) and the ``playwright`` package; ``playwright install`` is never
used."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from browser import kiosk, needs_chromium, new_context
from serving import Served, add_user, serve

from banshi.settings import SAMPLE_KB_DIR
from kiosk.queue import idcard

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

pytestmark = pytest.mark.e2e

CLERK, PASSWORD = "zhao", "pw-zhao-12345"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SHARED: dict[str, str] = {}  # what a later test needs from an earlier one (C001's token)
QR_LOADED = "() => (i => i.complete && i.naturalWidth > 0)(document.getElementById('r-qr'))"


@pytest.fixture(scope="module", autouse=True)
def _needs_chromium() -> None:
    needs_chromium()


def open_all_day(sample: Path, target: Path) -> Path:
    """A copy of the sample centre whose queue is open at every hour of every day."""
    shutil.copytree(sample, target)
    centre_file, queue_file = target / "centre.yml", target / "queue.yml"
    centre = yaml.safe_load(centre_file.read_text(encoding="utf-8"))
    centre["opening"] = {
        "timezone": centre["opening"].get("timezone", "Asia/Shanghai"),
        "periods": {day: ["00:00-23:59"] for day in WEEKDAYS},
        "holidays": [],
        "workdays": [],
    }
    centre_file.write_text(yaml.safe_dump(centre, allow_unicode=True), encoding="utf-8")
    queue = yaml.safe_load(queue_file.read_text(encoding="utf-8"))
    queue["rules"]["last_ticket_minutes"] = 0
    queue_file.write_text(yaml.safe_dump(queue, allow_unicode=True), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("kiosk")
    source = open_all_day(SAMPLE_KB_DIR, root / "centre")
    data_dir = root / "data"
    env = {"BANSHI_KB_SOURCE_DIR": str(source), "BANSHI_RASA_TIMEOUT_S": "1"}
    served: Served
    with serve(data_dir, env=env) as served:
        add_user(data_dir, CLERK, "agent", PASSWORD, {"BANSHI_KB_SOURCE_DIR": str(source)})
        yield served.base
    assert "Traceback" not in served.log_path.read_text(errors="replace"), (
        "the server logged an error"
    )


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kiosk-shots")


def font_px(page: Page, selector: str) -> float:
    return float(
        page.locator(selector).first.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    )


def test_take_a_number_on_the_portrait_kiosk(server: str, browser: Browser, shots: Path) -> None:
    from playwright.sync_api import expect

    context = kiosk(browser)
    try:
        page = context.new_page()
        page.goto(f"{server}/kiosk")
        expect(page).to_have_title("自助服务终端")
        expect(page.locator("header")).to_contain_text("青禾区政务服务中心")
        expect(page.locator("#clock-time")).to_have_text(re.compile(r"^\d{2}:\d{2}$"))
        tiles = [
            page.get_by_role("button", name=n, exact=True)
            for n in ("取号", "预约签到", "排队查询", "办事指南")
        ]
        for control in [*tiles, page.get_by_role("button", name="大字模式")]:
            box = control.bounding_box()
            assert box is not None and box["height"] >= 96 and box["x"] + box["width"] <= 1080
        assert page.evaluate("document.documentElement.scrollWidth") <= 1080
        home = shots / "kiosk-home.png"
        page.screenshot(path=str(home))
        print(f"kiosk home: {home}")

        tiles[0].click()
        # one queue per department in the sample: the department's card takes the number
        service = page.get_by_role("button", name=re.compile("^医疗保障局"))
        expect(service).to_contain_text("等候")
        expect(service).to_contain_text("B09—B12号窗口")
        with page.expect_response(re.compile(r"/qr\.svg$")) as qr_reply:
            service.click()
            expect(page.locator("#r-number")).to_have_text("C001")
        assert qr_reply.value.ok
        assert qr_reply.value.headers["content-type"].startswith("image/svg+xml")
        expect(page.locator("#r-service")).to_have_text("医疗保障")
        expect(page.locator("#r-go")).to_contain_text("B09—B12号窗口")
        expect(page.locator("#r-ahead")).to_have_text("0 人")
        expect(page.get_by_text("扫码查看排队进度")).to_be_visible()
        expect(page.locator("#r-printed")).to_be_visible()  # the default printer (dummy) prints
        page.wait_for_function(QR_LOADED)
        assert page.evaluate("document.documentElement.scrollWidth") <= 1080
        result = shots / "kiosk-result.png"
        page.screenshot(path=str(result))
        print(f"kiosk result: {result}")
        src = page.locator("#r-qr").get_attribute("src") or ""
        token = re.search(r"/tickets/([A-Za-z0-9_-]+)/qr\.svg$", src)
        assert token is not None
        SHARED["token"] = token.group(1)

        page.get_by_role("button", name="完成，回到首页").click()
        expect(tiles[0]).to_be_visible()
    finally:
        context.close()


def test_an_id_required_service_refuses_a_wrong_number_in_the_servers_words(
    server: str, browser: Browser
) -> None:
    from playwright.sync_api import expect

    good = idcard.check_digit("11010519850312123")
    good_id = "11010519850312123" + good
    wrong_id = "11010519850312123" + ("1" if good != "1" else "2")
    context = kiosk(browser)
    try:
        page = context.new_page()
        page.goto(f"{server}/kiosk")
        page.get_by_role("button", name="取号", exact=True).click()
        service = page.get_by_role("button", name=re.compile("^公安分局"))
        expect(service).to_contain_text("需身份证")
        service.click()
        expect(page.get_by_role("heading", name="请刷身份证")).to_be_visible()
        field = page.get_by_role("textbox", name="身份证号码")
        expect(field).to_be_focused()
        # a card reader acting as a keyboard types the number into the focused field
        page.keyboard.type(wrong_id)
        expect(page.locator("#id-count")).to_have_text("已输入 18 / 18 位")
        page.get_by_role("button", name="确定取号").click()
        expect(page.get_by_role("alert").filter(has_text="身份证")).to_have_text(
            str(idcard.problem(wrong_id))
        )
        # on the keypad this time
        page.get_by_role("button", name="清空").click()
        expect(field).to_have_value("")
        keys = page.locator("#id-keys")
        for digit in good_id:
            keys.get_by_role("button", name=digit, exact=True).click()
        expect(field).to_have_value(good_id)
        page.get_by_role("button", name="确定取号").click()
        expect(page.locator("#r-number")).to_have_text("A001")
        page.wait_for_function(QR_LOADED)
    finally:
        context.close()


def test_elderly_mode_is_bigger_and_offers_the_green_channel_first(
    server: str, browser: Browser
) -> None:
    from playwright.sync_api import expect

    context = kiosk(browser)
    try:
        page = context.new_page()
        page.goto(f"{server}/kiosk")
        measured = ("#s-home .tile.take", "#s-home .tile.take .t", "#s-home h1", "#big-toggle")
        toggle = page.get_by_role("button", name="大字模式")
        before = [font_px(page, m) for m in measured]
        expect(toggle).to_have_attribute("aria-pressed", "false")
        toggle.click()
        expect(toggle).to_have_attribute("aria-pressed", "true")
        after = [font_px(page, m) for m in measured]
        assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
        assert after[0] >= 40 and after[2] >= 60

        # 取号 asks about 70+ first, then lists departments in one column
        page.get_by_role("button", name="取号", exact=True).click()
        expect(page.get_by_role("heading", name="您是70岁以上的老人吗？")).to_be_visible()
        page.get_by_role("button", name=re.compile("^是，走绿色通道")).click()
        departments = page.locator("#dept-list button")
        first, second = departments.nth(0).bounding_box(), departments.nth(1).bounding_box()
        assert first and second and first["x"] == second["x"] and first["width"] > 900
        page.get_by_role("button", name=re.compile("^税务局")).click()
        # the green channel needs the ID to show the age, even where the service does not
        expect(page.locator("#id-for")).to_contain_text("绿色通道")
        too_young = "11010519850312123" + idcard.check_digit("11010519850312123")
        page.keyboard.type(too_young)
        page.get_by_role("button", name="确定取号").click()
        expect(page.locator("#id-msg")).to_contain_text("绿色通道")
        page.get_by_role("button", name="清空").click()
        old = "11010519400101123" + idcard.check_digit("11010519400101123")
        page.keyboard.type(old)
        page.get_by_role("button", name="确定取号").click()
        expect(page.locator("#r-number")).to_have_text(re.compile(r"^[A-Z]\d{3}$"))
        expect(page.locator("#r-tags")).to_contain_text("绿色通道")
    finally:
        context.close()


def test_the_kiosk_rests_and_comes_back_home_by_itself(server: str, browser: Browser) -> None:
    from playwright.sync_api import expect

    context = kiosk(browser)
    try:
        page = context.new_page()
        page.clock.install()
        page.goto(f"{server}/kiosk")
        page.clock.run_for(61_000)  # a minute untouched on the first screen
        attract = page.locator("#attract")
        expect(attract).to_be_visible()
        expect(attract).to_contain_text("请触摸屏幕开始")
        attract.click()
        expect(attract).to_be_hidden()

        page.get_by_role("button", name="排队查询", exact=True).click()
        page.clock.run_for(36_000)
        still = page.get_by_role("alertdialog", name="还在吗？")
        expect(still).to_be_visible()
        page.get_by_role("button", name="我还在，继续").click()
        expect(still).to_be_hidden()
        page.clock.run_for(46_000)  # 45 s: the question, then back home
        expect(page.get_by_role("button", name="取号", exact=True)).to_be_visible()
        expect(page.locator("#s-lookup")).to_be_hidden()
    finally:
        context.close()


def take_a_number_unprinted(page: Page, server: str, reason: str, message: str) -> None:
    """Take a 医疗保障 number with the server's reply changed to "not printed, because
    ``reason``" (the printer here is the default dummy one, which always prints)."""

    def not_printed(route: Route) -> None:
        reply = route.fetch()
        body = reply.json()
        body.update(printed=False, printer={"reason": reason, "message": message})
        route.fulfill(response=reply, json=body)

    page.route(re.compile(r"/api/kiosk/tickets$"), not_printed)
    page.goto(f"{server}/kiosk")
    page.get_by_role("button", name="取号", exact=True).click()
    page.get_by_role("button", name=re.compile("^医疗保障局")).click()


def test_without_paper_the_number_stays_on_screen_and_can_be_printed_again(
    server: str, browser: Browser
) -> None:
    """The printer's refusal of the first job (paper out) is stood in for; the reprint is
    real."""
    from playwright.sync_api import expect

    message = "打印机缺纸，请记下屏幕上的号码，或扫码保存，您的排队不受影响。"
    context = kiosk(browser)
    try:
        page = context.new_page()
        take_a_number_unprinted(page, server, "paper_out", message)
        notice = page.locator("#r-paper")
        expect(notice).to_be_visible()
        expect(notice).to_contain_text(message)
        expect(page.locator("#r-number")).to_have_text(re.compile(r"^C\d{3}$"))
        page.wait_for_function(QR_LOADED)
        page.get_by_role("button", name="重新打印").click()
        expect(page.locator("#r-printed")).to_have_text("已重新打印，请取走出票口的排队小票")
        expect(notice).to_be_hidden()
    finally:
        context.close()


def test_a_kiosk_without_a_ticket_printer_offers_no_reprint(server: str, browser: Browser) -> None:
    """A kiosk BANSHI_KIOSK_PRINTER gives no printer: the number and the notice stay, the
    重新打印 button does not (it could only fail)."""
    from playwright.sync_api import expect

    message = "本机没有连接小票打印机，请记下屏幕上的号码，或扫码保存，您的排队不受影响。"
    context = kiosk(browser)
    try:
        page = context.new_page()
        take_a_number_unprinted(page, server, "not_configured", message)
        expect(page.locator("#r-paper")).to_contain_text(message)
        expect(page.locator("#r-number")).to_have_text(re.compile(r"^C\d{3}$"))
        expect(page.get_by_role("button", name="重新打印")).to_be_hidden()
    finally:
        context.close()


def test_a_clerk_calls_the_number_and_the_hall_and_the_residents_phone_show_it(
    server: str, browser: Browser
) -> None:
    from playwright.sync_api import expect

    token = SHARED.get("token")
    if token is None:  # run alone: take C001 over the API as the kiosk would
        context = browser.new_context()
        reply = context.request.post(
            f"{server}/api/kiosk/tickets", data={"service": "C", "print": False}
        )
        token = str(reply.json()["token"])
        context.close()
    clerk_ctx = new_context(browser, 1366, 768)
    phone_ctx = new_context(
        browser, 390, 844, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    hall_ctx = new_context(browser, 1920, 1080)
    try:
        hall = hall_ctx.new_page()  # the hall display, through the real SSE stream
        hall.goto(f"{server}/display")
        phone = phone_ctx.new_page()
        phone.goto(f"{server}/queue/{token}")
        expect(phone).to_have_title("排队进度")
        expect(phone.locator("#number")).to_have_text("C001")
        expect(phone.locator("#status")).to_have_text("排队中")

        clerk = clerk_ctx.new_page()
        clerk.goto(f"{server}/counter")
        expect(clerk).to_have_title("窗口叫号")
        clerk.get_by_label("用户名").fill(CLERK)
        clerk.get_by_label("密码").fill(PASSWORD)
        clerk.get_by_role("button", name="登录").click()
        clerk.get_by_role("button", name="B09号窗口").click()
        expect(clerk.locator("#where")).to_contain_text("B09号窗口")
        call = clerk.get_by_role("button", name=re.compile("^叫号"))
        expect(call).to_contain_text("F1")
        call.click()
        expect(clerk.locator("#c-number")).to_have_text("C001")
        expect(clerk.locator("#c-status")).to_contain_text("已叫号")
        expect(clerk.locator("#c-kind")).to_contain_text("现场号")
        expect(clerk.locator("#banner")).to_contain_text("已叫号 C001")
        expect(hall.locator("#latest-number")).to_contain_text("C001")
        expect(hall.locator("#latest-window")).to_contain_text("B09")

        phone.get_by_role("button", name="刷新").tap()  # or wait for its 10 s refresh
        expect(phone.locator("#status")).to_contain_text("已叫号")
        expect(phone.locator("#go")).to_have_text("请到 B09号窗口 办理")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390

        clerk.keyboard.press("F4")  # 办结
        expect(clerk.locator("#c-empty")).to_be_visible()
        expect(clerk.locator("#banner")).to_contain_text("C001 已办结")
        phone.get_by_role("button", name="刷新").tap()
        expect(phone.locator("#status")).to_have_text("已办结")
    finally:
        clerk_ctx.close()
        phone_ctx.close()
        hall_ctx.close()
