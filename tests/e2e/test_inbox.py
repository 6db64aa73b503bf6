"""The staff inbox, the resident's widget and the progress page together, in a real browser
(Debian's Chromium, driven by Playwright) against one ``banshi serve``: a resident asks for a
person, an agent takes the conversation at /agent, they talk live, the agent closes it with a
ticket, the resident rates it in the chat and looks it up at /progress; a supervisor sees the
agents online; a change without the CSRF header is refused.

People answer at any hour here (BANSHI_AGENT_HOURS=always), so asking for one queues the chat
whatever the time of day. Needs /usr/bin/chromium (``scripts/browser-setup``) and the
``playwright`` package; ``playwright install`` is never used."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from browser import needs_chromium, new_context
from serving import Served, add_user, serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

pytestmark = pytest.mark.e2e

AGENT, SUPERVISOR = "wang", "zhang"
PASSWORD = {AGENT: "pw-wang-12345", SUPERVISOR: "pw-zhang-12345"}
REPLY = "您好，我是工作人员小王，请问还需要什么帮助？"
BOT = "#log .msg.bot:not(#intro):not(#typing)"
SHARED: dict[str, str] = {}  # what a later test needs from an earlier one (the 受理号)


@pytest.fixture(scope="module", autouse=True)
def _needs_chromium() -> None:
    needs_chromium()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("inbox") / "data"
    env = {"BANSHI_RASA_TIMEOUT_S": "1", "BANSHI_AGENT_HOURS": "always"}
    served: Served
    with serve(data_dir, env=env) as served:
        add_user(data_dir, AGENT, "agent", PASSWORD[AGENT])
        add_user(data_dir, SUPERVISOR, "supervisor", PASSWORD[SUPERVISOR])
        yield served.base
    assert "Traceback" not in served.log_path.read_text(errors="replace"), (
        "the server logged an error"
    )


def log_in(page: Page, base: str, username: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/agent")
    expect(page).to_have_title("坐席工作台")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD[username])
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("button", name="退出")).to_be_visible()
    page.wait_for_selector("html[data-socket=open]", state="attached")


def test_resident_agent_ticket_rating_and_progress(server: str, browser: Browser) -> None:
    from playwright.sync_api import expect

    resident_ctx = new_context(browser, 1024, 800)
    agent_ctx = new_context(browser, 1366, 768)
    try:
        # the resident asks the bot, then for a person, and waits in the queue
        resident = resident_ctx.new_page()
        resident.goto(f"{server}/chat")
        resident.wait_for_selector("html[data-socket=open]", state="attached")
        box = resident.get_by_role("textbox", name="输入您的问题")
        box.fill("居住证怎么办？")
        box.press("Enter")
        expect(resident.locator(BOT).first).to_contain_text("居住证")
        box.fill("转人工")
        box.press("Enter")
        expect(resident.locator(BOT).nth(1)).to_contain_text("正在为您转接工作人员")
        queue_line = resident.locator("#queue")
        expect(queue_line).to_be_visible()
        expect(queue_line).to_contain_text("排队中")
        resident.evaluate("window.__stillHere = true")  # gone if the page reloads

        # the agent logs in, sees the chat waiting, goes online
        agent = agent_ctx.new_page()
        log_in(agent, server, AGENT)
        waiting = agent.locator("#queue-list .item")
        expect(waiting).to_have_count(1)
        expect(waiting.first).to_contain_text("转人工")
        agent.get_by_role("button", name="在线", exact=True).click()
        expect(agent.get_by_role("button", name="在线", exact=True)).to_have_attribute(
            "aria-pressed", "true"
        )
        # going online may give the waiting chat to the agent at once; if not, claim it
        if agent.locator("#capacity").inner_text().startswith("接待 0/"):
            waiting.first.get_by_role("button", name="接入").click()
        mine = agent.locator("#mine-list .item")
        expect(mine).to_have_count(1)
        expect(agent.locator("#capacity")).to_have_text(re.compile(r"^接待 1/\d+$"))
        mine.first.click()

        # the whole conversation so far, then a reply that reaches the resident live
        transcript = agent.locator("#transcript")
        expect(transcript.locator(".msg.resident").first).to_contain_text("居住证怎么办？")
        expect(transcript.locator(".msg.bot").first).to_contain_text("居住证")
        expect(transcript.locator(".msg.system").first).to_contain_text("工作人员已接入")
        reply = agent.get_by_role("textbox", name="回复内容")
        reply.fill(REPLY)
        reply.press("Enter")
        expect(transcript.locator(".msg.agent")).to_contain_text(REPLY)
        expect(reply).to_have_value("")

        staff = resident.locator("#log .msg.agent")
        expect(staff).to_have_count(1)
        expect(staff.locator(".who")).to_have_text("工作人员")
        expect(staff.locator(".text")).to_have_text(REPLY)
        expect(resident.locator("#log .msg.system").first).to_contain_text("工作人员已接入")
        expect(queue_line).to_be_hidden()
        assert resident.evaluate("window.__stillHere") is True

        # the resident answers: the bot stays silent, the agent sees it at once
        bots = resident.locator(BOT).count()
        box.fill("好的，需要带户口本吗？")
        box.press("Enter")
        expect(transcript.locator(".msg.resident").last).to_have_text(
            re.compile("好的，需要带户口本吗？$")
        )
        expect(resident.locator("#typing")).to_be_hidden()
        assert resident.locator(BOT).count() == bots

        # the knowledge base beside the conversation
        search = agent.get_by_label("知识库搜索")
        search.fill("居住证怎么办")
        search.press("Enter")
        expect(agent.locator("#kb-answer")).to_contain_text("居住证")
        expect(agent.locator("#kb-out")).to_contain_text("来源：")
        expect(agent.get_by_role("button", name="引用到回复")).to_be_enabled()

        agent.screenshot(path="/tmp/inbox.png")

        # the agent closes the chat with a ticket solved on the spot
        agent.get_by_role("button", name="结束并登记工单").click()
        dialog = agent.get_by_role("dialog", name="结束对话并登记工单")
        expect(dialog).to_be_visible()
        dialog.get_by_label("咨询", exact=True).check()
        dialog.get_by_label("即时办结").check()
        dialog.get_by_label("答复内容").fill("已告知居住证的办理地点、材料和时限。")
        dialog.get_by_label("联系电话").fill("13812345678")
        dialog.get_by_role("button", name="登记工单", exact=True).click()
        expect(dialog).to_be_hidden()
        expect(agent.locator("#conv-done")).to_contain_text("已登记工单，受理号")
        number_el = agent.locator("#done-number")
        expect(number_el).to_have_text(re.compile(r"^\d{8}$"))
        number = number_el.inner_text()
        SHARED["number"] = number
        expect(mine).to_have_count(0)
        expect(agent.get_by_role("textbox", name="回复内容")).to_be_disabled()

        # the resident is asked to rate, taps 满意 and is thanked
        notice = resident.locator("#log .msg.system").last
        expect(notice).to_contain_text(f"受理号{number}")
        notice.get_by_role("button", name="满意", exact=True).click()
        expect(resident.locator(BOT).last.locator(".text")).to_have_text(
            "感谢您的评价！祝您生活愉快。"
        )
        assert resident.evaluate("window.__stillHere") is True

        # and finds it at /progress with the last four digits of the phone
        resident.goto(f"{server}/progress?number={number}")
        expect(resident.get_by_label(re.compile("^受理号"))).to_have_value(number)
        resident.get_by_label(re.compile("^手机号后四位")).fill("5678")
        resident.get_by_role("button", name="查询", exact=True).click()
        expect(resident.locator("#status")).to_have_text("已审核办结")
        expect(resident.locator("#r-number")).to_have_text(number)
        expect(resident.get_by_role("button", name="满意", exact=True)).to_be_hidden()
    finally:
        resident_ctx.close()
        agent_ctx.close()


def test_supervisor_monitor_tickets_and_canned(server: str, browser: Browser) -> None:
    from playwright.sync_api import expect

    context = new_context(browser, 1366, 768)
    try:
        page = context.new_page()
        # an agent online (the test before leaves one; this one does not depend on it)
        agent = browser.new_context()
        agent.request.post(
            f"{server}/api/auth/login",
            data={"username": AGENT, "password": PASSWORD[AGENT], "cookie": True},
        )
        csrf = agent.request.get(f"{server}/api/auth/me").json()["csrf"]
        put = agent.request.put(
            f"{server}/api/agent/state",
            data={"status": "online"},
            headers={"X-CSRF-Token": csrf},
        )
        assert put.ok, put.text()
        agent.close()

        log_in(page, server, SUPERVISOR)
        page.get_by_role("tab", name="监控").click()
        expect(page.locator("#m-online")).to_have_text(re.compile(r"^[1-9]\d*$"))
        expect(page.locator(".card", has_text="在线坐席")).to_be_visible()
        expect(page.locator("#m-agents tr", has_text=AGENT)).to_contain_text("在线")
        page.screenshot(path="/tmp/inbox-monitor.png")

        # the ticket of the first test, with its history, and a note added to it
        number = SHARED.get("number")
        if number:
            page.get_by_role("tab", name="工单").click()
            page.locator("#f-status").select_option("")  # 全部: closed ones too
            row = page.locator("#ticket-rows tr", has_text=number)
            expect(row).to_contain_text("已审核办结")
            row.click()
            detail = page.locator("#ticket-detail")
            expect(detail).to_contain_text(f"受理号 {number}")
            expect(detail).to_contain_text("138****5678")
            expect(detail).not_to_contain_text("13812345678")
            detail.get_by_role("button", name=re.compile("^显示完整号码")).click()
            expect(detail).to_contain_text("13812345678（已记录查看）")
            events = detail.locator("table.events tbody tr")
            expect(events).to_have_count(3)
            expect(events.nth(0)).to_contain_text("登记")
            expect(events.nth(1)).to_contain_text("即时办结")
            expect(events.nth(2)).to_contain_text("回访")
            expect(detail.locator(".mini-transcript")).to_contain_text(REPLY)
            # exactly the actions the API allows for a closed ticket
            buttons = detail.locator(".act-bar button")
            assert sorted(buttons.all_inner_texts()) == sorted(["备注", "回访"])
            detail.get_by_role("button", name="备注", exact=True).click()
            detail.get_by_role("button", name="确认备注").click()
            expect(detail.locator(".form-error")).to_have_text("备注需要填写说明。")
            detail.get_by_label(re.compile("^备注内容")).fill("居民对答复满意。")
            detail.get_by_role("button", name="确认备注").click()
            expect(events).to_have_count(4)
            expect(events.nth(3)).to_contain_text("居民对答复满意。")
            page.screenshot(path="/tmp/inbox-tickets.png")

        # 常用语: a supervisor adds one
        page.get_by_role("tab", name="常用语").click()
        page.get_by_label("标题", exact=True).fill("办理时间")
        page.get_by_label("内容", exact=True).fill("中心工作日上午9:00至下午5:00办理业务。")
        page.get_by_role("button", name="保存").click()
        expect(page.locator("#canned-rows")).to_contain_text("办理时间")
    finally:
        context.close()


def test_a_change_without_the_csrf_header_is_refused(server: str, browser: Browser) -> None:
    context = new_context(browser, 1024, 768)
    try:
        login = context.request.post(
            f"{server}/api/auth/login",
            data={"username": AGENT, "password": PASSWORD[AGENT], "cookie": True},
        )
        assert login.ok, login.text()
        csrf = login.json()["csrf"]
        assert login.json().get("token") == ""  # the page holds no token: the cookie is the login
        # the session cookie alone (what a page of another site could make a browser send)
        forged = context.request.post(f"{server}/api/agent/chats/999999/claim")
        assert forged.status == 403
        assert forged.json()["error"]["message"] == "页面已过期，请刷新后重试。"
        forged = context.request.put(f"{server}/api/agent/state", data={"status": "away"})
        assert forged.status == 403
        # with the header it gets through to the claim itself (there is no such chat)
        real = context.request.post(
            f"{server}/api/agent/chats/999999/claim", headers={"X-CSRF-Token": csrf}
        )
        assert real.status in (404, 409), real.text()
        # reading needs no header
        assert context.request.get(f"{server}/api/agent/queue").ok
    finally:
        context.close()


def test_progress_page_on_a_phone(server: str, browser: Browser) -> None:
    from playwright.sync_api import expect

    context = new_context(browser, 390, 844, device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(f"{server}/progress")
        expect(page).to_have_title("办理进度查询")
        number = page.get_by_label(re.compile("^受理号"))
        last4 = page.get_by_label(re.compile("^手机号后四位"))
        go = page.get_by_role("button", name="查询", exact=True)
        for field in (number, last4):
            assert field.get_attribute("inputmode") == "numeric"
        for control in (number, last4, go):
            bounding = control.bounding_box()
            assert bounding is not None and bounding["height"] >= 48
            assert bounding["x"] >= 0 and bounding["x"] + bounding["width"] <= 390

        # checked in the page first, then the server's own words
        number.fill("1234")
        go.tap()
        expect(page.get_by_role("alert")).to_have_text("受理号是8位数字，请核对后再输入。")
        number.fill(SHARED.get("number", "20990101"))
        last4.fill("0000")
        go.tap()
        expect(page.get_by_role("alert")).to_have_text(
            "没有找到这个受理号，或手机号后四位不对。请核对后再试。"
        )

        # a ticket that may be rated (the server's answers stood in for: every real ticket
        # here is rated already)
        ticket = {
            "number": "12345678",
            "status": "closed",
            "status_label": "已审核办结",
            "created_at": "2026-03-02T01:30:00+00:00",
            "updated_at": "2026-03-02T06:10:00+00:00",
            "closed": True,
            "can_rate": True,
        }
        rated: list[dict[str, str]] = []

        def lookup(route: Route) -> None:
            route.fulfill(json=ticket)

        def rating(route: Route) -> None:
            rated.append(json.loads(route.request.post_data or "{}"))
            route.fulfill(json={**ticket, "can_rate": False})

        page.route(re.compile(r"/api/progress/lookup$"), lookup)
        page.route(re.compile(r"/api/progress/rating$"), rating)
        number.fill("12345678")
        last4.fill("5678")
        go.tap()
        expect(page.locator("#status")).to_have_text("已审核办结")
        expect(page.get_by_role("alert")).to_be_hidden()
        buttons = [
            page.get_by_role("button", name=r, exact=True) for r in ("非常满意", "满意", "不满意")
        ]
        for b in buttons:
            expect(b).to_be_visible()
            bounding = b.bounding_box()
            assert bounding is not None and bounding["height"] >= 56
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path="/tmp/progress.png", full_page=True)
        buttons[0].tap()
        expect(page.get_by_text("感谢您的评价！祝您生活愉快。")).to_be_visible()
        assert rated == [{"number": "12345678", "phone_last4": "5678", "rating": "非常满意"}]
        expect(buttons[0]).to_be_hidden()
    finally:
        context.close()
