"""The voice hotline's menu (knowledge_base/sample/ivr.yml, read by assistant/voice/menu.py):
the sample centre's menu as issue #7 describes it, prompts with their placeholders filled,
and broken files refused with the field named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from assistant.voice.menu import (
    AskNode,
    CollectDigitsNode,
    HangupNode,
    IvrConfig,
    IvrConfigInvalid,
    MenuNode,
    NodeKind,
    RecordNode,
    TransferNode,
    VoicemailNode,
)
from banshi.errors import BanshiError
from banshi.settings import SAMPLE_KB_DIR

IVR_YML = SAMPLE_KB_DIR / "ivr.yml"


@pytest.fixture(scope="module")
def config() -> IvrConfig:
    return IvrConfig.load(IVR_YML)


@pytest.fixture(scope="module")
def sample_data() -> dict[str, Any]:
    return dict(yaml.safe_load(IVR_YML.read_text(encoding="utf-8")))


@pytest.fixture
def raw(sample_data: dict[str, Any]) -> dict[str, Any]:
    """The sample file's data, to break one field at a time."""
    return copy.deepcopy(sample_data)


def refused(data: dict[str, Any]) -> IvrConfigInvalid:
    with pytest.raises(IvrConfigInvalid) as caught:
        IvrConfig.parse(data)
    return caught.value


def menu_text(config: IvrConfig, node_id: str) -> str:
    return "".join(config.prompts[p].text for p in config.node(node_id).prompt)


# -- the sample centre's menu ------------------------------------------------------------
def test_the_welcome_differs_in_and_out_of_opening_hours(config: IvrConfig) -> None:
    assert config.welcome(open_now=True) == ("welcome_in_hours",)
    assert config.welcome(open_now=False) == ("welcome_out_of_hours",)
    assert config.prompt_text("welcome_in_hours", centre="青禾区政务服务中心") == (
        "您好，欢迎致电青禾区政务服务中心。"
    )
    assert config.prompt_text(
        "welcome_out_of_hours", centre="青禾区政务服务中心", next_open="明天（周一）上午9:00"
    ) == (
        "您好，欢迎致电青禾区政务服务中心。现在是非工作时间，工作人员明天（周一）上午9:00上班。"
        "您可以使用自助咨询、留言或查询办理进度。"
    )
    assert config.start == "main"


def test_the_main_menu_keys_go_where_the_issue_says(config: IvrConfig) -> None:
    main = config.node("main")
    assert isinstance(main, MenuNode)
    assert sorted(main.keys) == ["0", "1", "2", "3", "4"]
    text = menu_text(config, "main")
    for words in (
        "人工服务请按1",
        "自助咨询请按2",
        "投诉、建议或留言请按3",
        "查询办理进度请按4",
        "重听请按0",
    ):
        assert words in text
    # 1 人工: the agents in opening hours, voicemail outside them
    assert main.keys["1"].goto(open_now=True) == "agent"
    assert main.keys["1"].goto(open_now=False) == "voicemail"
    agent, voicemail = config.node("agent"), config.node("voicemail")
    assert isinstance(agent, TransferNode) and agent.queue == "agents"
    assert "人工" in menu_text(config, "agent")
    assert isinstance(voicemail, VoicemailNode) and voicemail.action == "create_ticket"
    assert agent.fallback.goto(open_now=True) == "voicemail"
    assert [main.keys[k].goto(True) for k in "2340"] == ["consult", "message", "progress", "repeat"]
    assert main.timeout_s == 5.0


def test_self_service_asks_then_offers_replay_agent_and_back(config: IvrConfig) -> None:
    consult = config.node("consult")
    assert isinstance(consult, AskNode)
    assert consult.action == "answer_question"
    assert consult.unavailable.goto(True) == "main"  # no speech model: keys only
    assert consult.unavailable.prompt == ("consult_unavailable",)
    after = config.node(consult.next.goto(True))
    assert isinstance(after, MenuNode) and after.prompt == ("consult_answer", "consult_after")
    assert config.prompt_text("consult_answer", answer="居住证在1楼A区办理。") == (
        "居住证在1楼A区办理。"
    )
    assert (
        config.prompt_text("consult_after") == "重听请按1；转人工服务请按2；返回主菜单请按#号键。"
    )
    assert after.keys["1"].goto(True) == "repeat"
    assert (after.keys["2"].goto(True), after.keys["2"].goto(False)) == ("agent", "voicemail")
    assert after.keys["#"].goto(True) == "main"


def test_a_message_is_recorded_reviewed_and_its_number_read_back_twice(config: IvrConfig) -> None:
    message = config.node("message")
    assert isinstance(message, RecordNode)
    assert (message.max_record_s, message.end_key) == (120, "#")
    assert config.prompt_text("message_record", seconds=message.max_record_s) == (
        "请在提示音后留言，说明您的投诉或建议，最长120秒，说完请按#号键。"
    )
    review = config.node(message.next.goto(True))
    assert isinstance(review, MenuNode)
    assert config.prompt_text("message_review") == "确认提交请按1；重听留言请按2；重新录音请按3。"
    confirm, replay, redo = review.keys["1"], review.keys["2"], review.keys["3"]
    assert (confirm.action, confirm.goto(True)) == ("create_ticket", "message_done")
    assert (replay.action, replay.goto(True)) == ("play_recording", "repeat")
    assert (redo.action, redo.goto(True)) == (None, "message")
    done = config.node("message_done")
    assert isinstance(done, HangupNode)
    spoken = config.prompt_text("message_done", number="2 0 2 6 0 0 0 1")
    assert spoken.count("2 0 2 6 0 0 0 1") == 2
    assert spoken.startswith("您的留言已提交，受理号是：2 0 2 6 0 0 0 1。再报一遍")


def test_progress_takes_eight_digits_confirms_and_reads_the_status(config: IvrConfig) -> None:
    progress = config.node("progress")
    assert isinstance(progress, CollectDigitsNode)
    assert (progress.length, progress.end_key, progress.timeout_s) == (8, "#", 10.0)
    assert config.prompt_text("progress_enter") == "请输入8位受理号，输完请按#号键。"
    confirm = config.node("progress_confirm")
    assert isinstance(confirm, MenuNode)
    assert (confirm.keys["1"].action, confirm.keys["1"].goto(True)) == (
        "lookup_ticket",
        "progress_status",
    )
    assert confirm.keys["2"].goto(True) == "progress"
    assert config.prompt_text("progress_status", number="20260001", status="已办结") == (
        "受理号20260001的办理进度：已办结。"
    )


def test_three_failures_end_the_call_politely(config: IvrConfig) -> None:
    d = config.defaults
    assert (d.timeout_s, d.max_attempts) == (5.0, 3)
    assert config.prompt_text(d.no_input) == "抱歉，没有收到您的按键。"
    assert config.prompt_text(d.invalid) == "抱歉，您的按键有误。"
    give_up = config.node(d.give_up)
    assert isinstance(give_up, HangupNode) and give_up.kind is NodeKind.HANGUP
    assert config.prompt_text("give_up", hotline="12345") == (
        "抱歉，没有收到您的有效选择。如需帮助，请在工作时间再次来电，或拨打12345。感谢您的来电，再见。"
    )


def test_a_placeholder_without_a_value_is_an_error(config: IvrConfig) -> None:
    assert config.prompts["voicemail_record"].placeholders == {"hours", "seconds"}
    with pytest.raises(ValueError, match="'voicemail_record' needs hours, seconds"):
        config.prompt_text("voicemail_record")


def test_a_recorded_prompt_file_replaces_tts_when_present(tmp_path: Path) -> None:
    (tmp_path / "ivr.yml").write_text(IVR_YML.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "main_menu.wav").write_bytes(b"RIFF")
    config = IvrConfig.load(tmp_path / "ivr.yml")
    assert config.recorded_prompt("main_menu") == tmp_path / "prompts" / "main_menu.wav"
    assert config.recorded_prompt("goodbye") is None


# -- broken files ------------------------------------------------------------------------
def test_an_unknown_target_is_refused_naming_the_key(raw: dict[str, Any]) -> None:
    raw["menu"]["main"]["keys"][5] = "nowhere"
    error = refused(raw)
    assert error.field == "menu.main.keys.5"
    assert error.detail.startswith("ivr.yml menu.main.keys.5: goes to 'nowhere', which is not a")
    assert isinstance(error, BanshiError)
    assert error.message == "语音热线菜单配置有误，请联系管理员。"


def test_a_key_no_phone_has_is_refused(raw: dict[str, Any]) -> None:
    raw["menu"]["main"]["keys"]["x"] = "main"
    error = refused(raw)
    assert error.field == "menu.main.keys.x"
    assert "is not a key on a phone" in error.detail


def test_a_duplicate_prompt_id_is_refused(tmp_path: Path) -> None:
    text = IVR_YML.read_text(encoding="utf-8").replace(
        "prompts:\n", "prompts:\n  goodbye: 再见。\n", 1
    )
    (tmp_path / "ivr.yml").write_text(text, encoding="utf-8")
    with pytest.raises(IvrConfigInvalid) as caught:
        IvrConfig.load(tmp_path / "ivr.yml")
    assert caught.value.field == "prompts.goodbye"
    assert "is given twice" in caught.value.detail


def test_the_same_phone_key_twice_is_refused(tmp_path: Path) -> None:
    text = IVR_YML.read_text(encoding="utf-8").replace(
        "      0: repeat\n", '      0: repeat\n      "0": main\n', 1
    )
    (tmp_path / "ivr.yml").write_text(text, encoding="utf-8")
    with pytest.raises(IvrConfigInvalid) as caught:
        IvrConfig.load(tmp_path / "ivr.yml")
    assert caught.value.field == "menu.main.keys.0"


def test_a_missing_welcome_is_refused(raw: dict[str, Any]) -> None:
    del raw["welcome"]
    error = refused(raw)
    assert (error.field, error.problem) == ("welcome", "is missing")


def test_an_unknown_placeholder_is_refused(raw: dict[str, Any]) -> None:
    raw["prompts"]["goodbye"] = "感谢您致电{centr}，再见。"
    error = refused(raw)
    assert error.field == "prompts.goodbye"
    assert "{centr} is not a placeholder" in error.detail


def test_a_recording_over_300_seconds_is_refused(raw: dict[str, Any]) -> None:
    raw["menu"]["message"]["max_record_s"] = 301
    error = refused(raw)
    assert error.field == "menu.message.max_record_s"
    assert "at most 300" in error.detail


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r["prompts"].update(goodbye="  "), "prompts.goodbye"),
        (lambda r: r["menu"]["agent"].update(prompt="no_such_prompt"), "menu.agent.prompt"),
        (lambda r: r["menu"]["main"].update(kind="menus"), "menu.main.kind"),
        (lambda r: r["menu"]["main"].update(kyes={}), "menu.main.kyes"),
        (lambda r: r["menu"]["voicemail"].update(action="send_fax"), "menu.voicemail.action"),
        (lambda r: r["defaults"].update(give_up="main"), "defaults.give_up"),
        (lambda r: r.update(start="begin"), "start"),
        (lambda r: r["welcome"].pop("out_of_hours"), "welcome.out_of_hours"),
        (lambda r: r["menu"]["main"].update(timeout_s=0), "menu.main.timeout_s"),
        (lambda r: r["menu"]["main"].update(timeout_s=61), "menu.main.timeout_s"),
        (lambda r: r["defaults"].update(max_attempts=2.5), "defaults.max_attempts"),
        (lambda r: r["menu"]["progress"].update(end_key="5"), "menu.progress.end_key"),
        (
            lambda r: r["menu"]["main"]["keys"].update(
                {1: {"in_hours": "agent", "out_of_hours": "voicemial"}}
            ),
            "menu.main.keys.1.out_of_hours",
        ),
        (
            lambda r: r["menu"]["main"]["keys"].update({1: {"in_hours": "agent"}}),
            "menu.main.keys.1.out_of_hours",
        ),
        (lambda r: r["menu"].update(repeat={"kind": "hangup", "prompt": "goodbye"}), "menu.repeat"),
        (lambda r: r["prompts"].update({"Main-Menu": "x"}), "prompts.Main-Menu"),
        (lambda r: r["menu"]["main"]["words"].update(传真=7), "menu.main.words.传真"),
        (lambda r: r["menu"]["main"].update(words=["人工"]), "menu.main.words"),
    ],
)
def test_other_mistakes_name_their_field(raw: dict[str, Any], change: Any, field: str) -> None:
    change(raw)
    assert refused(raw).field == field


def test_spoken_words_stand_for_keys_of_their_menu(config: IvrConfig) -> None:
    main = config.node("main")
    assert isinstance(main, MenuNode)
    assert main.words["转人工"] == "1" and main.words["进度"] == "4" and main.words["重听"] == "0"
    assert set(main.words.values()) <= set(main.keys)
