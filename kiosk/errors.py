"""Errors of the lobby kiosk; banshi.errors turns them into HTTP responses."""

from __future__ import annotations

from banshi.errors import BanshiError, Unavailable


class KioskError(BanshiError):
    pass


class PrinterUnavailable(Unavailable, KioskError):
    """The ticket was not printed (nothing of it was sent): the kiosk shows the number and
    its QR on screen instead, and staff are told ``detail``."""

    code = "printer_unavailable"

    def __init__(self, device: str, reason: str, message: str, detail: str) -> None:
        super().__init__(message, f"printer {device}: {detail}", reason=reason)
        self.device = device  # e.g. "network 192.0.2.10:9100"
        self.reason = reason  # a PrinterStatus value: paper_out, cover_open, …


class QueueConfigInvalid(KioskError):
    """queue.yml is wrong: the file and the field are named; the service does not start on it."""

    code = "queue_config_invalid"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(
            "取号配置有误，请联系管理员。", f"queue.yml {field}: {problem}", field=field
        )


class CannotIssue(KioskError):
    """No number was issued (closed, over quota, bad ID, one already waiting…): ``message``
    tells the resident why and what to do; ``reason`` is for statistics and the kiosk UI."""

    status_code = 409
    code = "cannot_issue"

    def __init__(self, reason: str, message: str, detail: str = "", **fields: object) -> None:
        super().__init__(message, detail or reason, reason=reason, **fields)
        self.reason = reason


class CounterError(KioskError):
    """A counter action that cannot be done now (nobody waiting, not your window…)."""

    status_code = 409
    code = "counter_conflict"


class SpeechUnavailable(Unavailable, KioskError):
    """No announcement audio (espeak-ng or pyttsx3 missing, or the engine failed): the
    display shows the call as text only."""

    code = "speech_unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__("语音播报暂不可用，请留意屏幕。", detail)


class FormInvalid(KioskError):
    """A form definition (样表) is wrong: the field is named; the old version keeps serving."""

    status_code = 422
    code = "form_invalid"

    def __init__(self, field: str, problem: str, source: str = "") -> None:
        where = f"{source} " if source else ""
        super().__init__(
            f"样表定义有误：{field}。", f"form definition {where}{field}: {problem}", field=field
        )
        self.field = field
        self.problem = problem


class A4PrinterUnavailable(Unavailable, KioskError):
    """The blank form was not printed on the A4 printer (none configured, or CUPS refused):
    the resident is told to scan the QR or ask at the 咨询台."""

    code = "a4_printer_unavailable"

    def __init__(self, reason: str, detail: str) -> None:
        message = (
            "本机未连接A4打印机，请扫码在手机上查看，或到咨询台领取空白表。"
            if reason == "not_configured"
            else "A4打印机暂时无法打印，请扫码在手机上查看，或到咨询台领取空白表。"
        )
        super().__init__(message, detail, reason=reason)
        self.reason = reason


class RenderUnavailable(Unavailable, KioskError):
    """The form sample cannot be drawn (cairo or a CJK font is missing, scripts/forms-setup):
    the page shows the field explanations without the image."""

    code = "render_unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__("样表图片暂时无法生成，请到咨询台询问。", detail)
