"""Issuing numbers: consecutive per service and day, opening hours, quotas, ID numbers,
priority groups, one unserved ticket per person; concurrently on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from queue_builders import MONDAY, at, id_number, make_desk, sample_config

from banshi.db import Database
from kiosk.errors import CannotIssue, QueueConfigInvalid
from kiosk.queue import idcard
from kiosk.queue.config import QueueConfig


def test_numbers_are_consecutive_per_service_and_start_again_the_next_day(db: Database) -> None:
    desk = make_desk(db)
    first = desk.issue("C", now=at("09:05"))
    second = desk.issue("C", now=at("09:06"))
    other = desk.issue("J", now=at("09:06"))
    assert (first["number"], second["number"], other["number"]) == ("C001", "C002", "J001")
    assert first["service_name"] == "医疗保障"
    assert first["windows"] == "B09—B12号窗口"
    assert (first["ahead"], second["ahead"]) == (0, 1)
    # one ahead × 9 typical minutes over the 4 windows of the service, rounded up
    assert second["wait_minutes"] == 3
    tuesday = MONDAY.replace(day=8)
    assert desk.issue("C", now=at("09:00", tuesday))["number"] == "C001"


def test_outside_opening_hours_and_in_the_last_half_hour_nothing_is_issued(db: Database) -> None:
    desk = make_desk(db)
    with pytest.raises(CannotIssue) as closed:
        desk.issue("C", now=at("12:30"))  # lunch break
    assert closed.value.reason == "closed"
    assert "现在不是取号时间" in closed.value.message and "13:30" in closed.value.message
    with pytest.raises(CannotIssue) as closing:
        desk.issue("C", now=at("16:31"))
    assert closing.value.reason == "closing"
    assert "结束前30分钟停止现场取号" in closing.value.message
    sunday = MONDAY.replace(day=6)
    with pytest.raises(CannotIssue) as weekend:
        desk.issue("C", now=at("10:00", sunday))
    assert weekend.value.reason == "closed"
    assert desk.services(now=at("12:30"))[0]["walk_in_left"] == 240  # nothing was used


def test_services_that_need_an_id_refuse_without_one_or_with_a_wrong_one(db: Database) -> None:
    desk = make_desk(db)
    with pytest.raises(CannotIssue) as missing:
        desk.issue("A", now=at("09:00"))
    assert missing.value.message == "办理“身份证、户籍、居住证”需要先刷身份证，或输入身份证号码。"
    wrong = id_number()[:-1] + ("0" if id_number()[-1] != "0" else "1")
    with pytest.raises(CannotIssue) as bad:
        desk.issue("A", id_number=wrong, now=at("09:00"))
    assert bad.value.message == "身份证号码校验不通过，可能有一位输错了，请核对。"
    with pytest.raises(CannotIssue) as short:
        desk.issue("A", id_number="11010519850312", now=at("09:00"))
    assert short.value.message == "身份证号码应为18位，您输入了14位。"
    ticket = desk.issue("A", id_number=" " + id_number().lower(), now=at("09:00"))
    assert ticket["number"] == "A001"
    assert ticket["id_masked"] == "110105********123" + id_number()[-1]


def test_one_unserved_ticket_per_person_and_service(db: Database) -> None:
    desk = make_desk(db)
    person = id_number()
    first = desk.issue("A", id_number=person, now=at("09:00"))
    with pytest.raises(CannotIssue) as again:
        desk.issue("A", id_number=person, now=at("09:10"))
    assert again.value.message == (
        "您已经取过“身份证、户籍、居住证”的号（A001），还没有办理。请留意叫号，不用重复取号。"
    )
    assert desk.issue("B", id_number=person, now=at("09:10"))["number"] == "B001"  # another service
    # served: a new number is fine
    desk.open_counter("A01", "clerk1")
    desk.call_next("A01", "clerk1", now=at("09:20"))
    desk.finish("A01", "clerk1")
    assert desk.issue("A", id_number=person, now=at("09:40"))["number"] == "A002"
    assert desk.status(first["token"])["status_label"] == "已办结"


def test_walk_in_quota_is_never_exceeded_and_appointment_numbers_are_counted_apart(
    tmp_path: Path, db: Database
) -> None:
    desk = make_desk(db)
    service = desk.config.services["Z"]
    desk.config.services["Z"] = type(service)(**{**service.__dict__, "walk_in_quota": 2})
    desk.issue("Z", now=at("09:00"))
    desk.issue("Z", now=at("09:01"))
    with pytest.raises(CannotIssue) as full:
        desk.issue("Z", now=at("09:02"))
    assert full.value.reason == "quota"
    assert "今天“综合咨询、“办不成事”反映”的现场号已经发完了" in full.value.message
    assert desk.services(now=at("09:03"))[-1]["walk_in_left"] == 0


def test_elderly_priority_needs_an_id_showing_seventy_or_more(db: Database) -> None:
    desk = make_desk(db)
    with pytest.raises(CannotIssue) as young:
        desk.issue("C", id_number=id_number("19850312"), priority_group="elderly", now=at("09:00"))
    assert young.value.reason == "not_elderly"
    old = desk.issue(
        "C", id_number=id_number("19520101"), priority_group="elderly", now=at("09:00")
    )
    assert old["priority_group"] == "elderly"
    with pytest.raises(CannotIssue):
        desk.issue("C", priority_group="vip", now=at("09:00"))


def issue_race(db: Database, kiosks: int = 8, each: int = 5) -> list[str]:
    desk = make_desk(db)
    barrier = threading.Barrier(kiosks)
    numbers: list[str] = []
    errors: list[BaseException] = []

    def kiosk(k: int) -> None:  # B needs an ID: each issue its own person
        barrier.wait()
        for i in range(each):
            person = id_number(serial=f"{k}{i:02d}"[-3:])
            try:
                ticket = desk.issue("B", id_number=person, kiosk=f"k{k}", now=at("10:00"))
                numbers.append(ticket["number"])
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=kiosk, args=(k,)) for k in range(kiosks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return numbers


def test_concurrent_kiosks_get_consecutive_unique_numbers(db: Database) -> None:
    numbers = issue_race(db)
    assert sorted(numbers) == [f"B{i:03d}" for i in range(1, 41)]


@pytest.mark.postgres
def test_concurrent_kiosks_get_consecutive_unique_numbers_on_postgresql(pg_url: str) -> None:
    database = Database(pg_url)
    database.upgrade()
    try:
        numbers = issue_race(database)
    finally:
        database.dispose()
    assert sorted(numbers) == [f"B{i:03d}" for i in range(1, 41)]


def same_person_race(db: Database) -> tuple[list[str], list[str]]:
    desk = make_desk(db)
    person = id_number()
    barrier = threading.Barrier(6)
    got: list[str] = []
    refused: list[str] = []

    def kiosk() -> None:
        barrier.wait()
        try:
            got.append(desk.issue("A", id_number=person, now=at("10:00"))["number"])
        except CannotIssue as exc:
            refused.append(exc.reason)

    threads = [threading.Thread(target=kiosk) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got, refused


def test_the_same_person_at_six_kiosks_at_once_gets_one_number(db: Database) -> None:
    got, refused = same_person_race(db)
    assert got == ["A001"] and refused == ["already_waiting"] * 5


@pytest.mark.postgres
def test_the_same_person_at_six_kiosks_at_once_gets_one_number_on_postgresql(
    pg_url: str,
) -> None:
    database = Database(pg_url)
    database.upgrade()
    try:
        got, refused = same_person_race(database)
        # the refused attempts rolled their sequence back: the next number follows on
        assert (
            make_desk(database).issue("A", id_number=id_number(serial="999"), now=at("10:01"))[
                "number"
            ]
            == "A002"
        )
    finally:
        database.dispose()
    assert got == ["A001"] and refused == ["already_waiting"] * 5


def test_id_numbers_check_digit_mask_and_age() -> None:
    assert idcard.check_digit("11010519491231002") == "X"
    assert idcard.problem("11010519491231002X") is None
    assert (
        idcard.problem("110105194912310021") == "身份证号码校验不通过，可能有一位输错了，请核对。"
    )
    assert idcard.problem("11010519491331002X") == "身份证号码中的出生日期不对，请核对。"
    assert idcard.problem("1101051949123100AX") == "身份证号码只能是数字，最后一位可以是X。"
    assert idcard.normalise("１１０１０５ １９４９１２３１００２ｘ") == "11010519491231002X"
    assert idcard.age_on("11010519491231002X", MONDAY) == 76
    a = idcard.fingerprint("11010519491231002X", "k1")
    assert (
        a
        == idcard.fingerprint("11010519491231002X", "k1")
        != idcard.fingerprint("11010519491231002X", "k2")
    )
    assert "19491231" not in a


def test_a_malformed_queue_file_is_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(QueueConfigInvalid) as unknown_item:
        QueueConfig.parse(
            {
                "services": [
                    {
                        "code": "A",
                        "name": "x",
                        "department": "police",
                        "items": ["nope"],
                        "windows": ["A01"],
                        "quota": {"walk_in": 1, "appointment": 0},
                    }
                ]
            },
            departments={"police"},
            items={"id-card-first"},
        )
    assert "services[0].items" in unknown_item.value.detail
    assert "nope" in unknown_item.value.detail
    with pytest.raises(QueueConfigInvalid) as bad_window:
        QueueConfig.parse(
            {
                "services": [
                    {
                        "code": "A",
                        "name": "x",
                        "department": "police",
                        "windows": ["一号"],
                        "quota": {"walk_in": 1, "appointment": 0},
                    }
                ]
            }
        )
    assert "services[0].windows" in bad_window.value.detail
    with pytest.raises(QueueConfigInvalid) as twice:
        config = sample_config()
        rows = [
            {
                "code": "A",
                "name": "x",
                "department": "police",
                "windows": ["A01"],
                "quota": {"walk_in": 1, "appointment": 0},
            }
        ] * 2
        QueueConfig.parse({"services": rows})
    assert "'A' is used twice" in twice.value.detail
    assert config.windows["Z01"] == ("Z",)
    broken = tmp_path / "queue.yml"
    broken.write_text("services: [\n", encoding="utf-8")
    with pytest.raises(QueueConfigInvalid) as yaml_error:
        QueueConfig.load(broken)
    assert yaml_error.value.message == "取号配置有误，请联系管理员。"


def issue_in_a_process(url: str, kiosk: int, count: int, start_at: float) -> list[str]:
    """One API process's worth of kiosks: its own engine and connection pool, starting at
    the same wall-clock moment as the others (spawned processes take a while to start)."""
    import time

    database = Database(url)
    try:
        desk = make_desk(database)
        time.sleep(max(0.0, start_at - time.time()))
        return [desk.issue("J", kiosk=f"p{kiosk}", now=at("10:00"))["number"] for _ in range(count)]
    finally:
        database.dispose()


def issue_from_processes(url: str) -> list[str]:
    import multiprocessing
    import time

    start_at = time.time() + 5  # after the three have imported the engine
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        parts = pool.starmap(issue_in_a_process, [(url, k, 15, start_at) for k in range(3)])
    return [n for part in parts for n in part]


def test_three_processes_issue_consecutive_numbers(db: Database) -> None:
    numbers = issue_from_processes(db.url)
    assert sorted(numbers) == [f"J{i:03d}" for i in range(1, 46)]


@pytest.mark.postgres
def test_three_processes_issue_consecutive_numbers_on_postgresql(pg_url: str) -> None:
    database = Database(pg_url)
    database.upgrade()
    database.dispose()
    numbers = issue_from_processes(pg_url)
    assert sorted(numbers) == [f"J{i:03d}" for i in range(1, 46)]
