"""Paper widths, display width and wrapping, and text written in the printer's Chinese mode.

Text is never sent through python-escpos's ``text()``: its magic encoder picks single-byte
code pages (``ESC t n``) and has none for Chinese. Chinese thermal printers instead have a
double-byte Chinese mode: ``FS &`` enters it, ``FS .`` leaves it, and inside it GB18030
bytes print as Chinese characters while ASCII bytes still print as ASCII. So a line with
anything but ASCII goes out as GB18030 between those two commands, written with ``_raw``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from escpos.escpos import Escpos

FS_CHINESE_ON = b"\x1c\x26"  # FS &: enter the Chinese (double-byte) character mode
FS_CHINESE_OFF = b"\x1c\x2e"  # FS .: leave it
LF = b"\n"

PaperWidth = Literal[58, 80]


@dataclass(frozen=True)
class Paper:
    mm: int
    columns: int  # ASCII characters per line at normal size (font A); a Chinese one takes 2
    dots: int  # printable width
    qr_module: int  # dots per QR module: a phone reads it from a hand's length, and it fits


PAPERS: dict[int, Paper] = {
    58: Paper(mm=58, columns=32, dots=384, qr_module=5),
    80: Paper(mm=80, columns=48, dots=576, qr_module=6),
}


def paper(mm: int) -> Paper:
    try:
        return PAPERS[mm]
    except KeyError:
        raise ValueError(f"paper width must be 58 or 80 mm, not {mm!r}") from None


def display_width(text: str) -> int:
    """Columns the text takes on the printer: in Chinese mode every character that is not
    ASCII (Chinese, full-width punctuation, “—”) is drawn from the double-width font."""
    return sum(1 if ord(c) < 0x80 else 2 for c in text)


# A line must not start with a closing mark nor end with an opening one (标点禁则).
_NO_LINE_START = set("，。、；：？！）》」』】〕〉”’…—～·%‰,.;:!?)]}")
_NO_LINE_END = set("（《「『【〔〈“‘([{")
# an ASCII word (kept whole), a run of spaces, or one character that is not ASCII
_TOKEN = re.compile(r"[!-~]+| +|[^\x00-\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def wrap(text: str, columns: int) -> list[str]:
    """Break text into lines of at most ``columns`` display columns. Chinese may break
    between any two characters, ASCII words only at spaces (a word longer than a line is
    cut), and punctuation stays on the right line. An empty paragraph stays an empty line.

    >>> wrap("请带身份证，拨打12345。", 10)
    ['请带身份', '证，拨打', '12345。']
    """
    if columns < 2:
        raise ValueError("a line needs at least 2 columns (one Chinese character)")
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        lines.extend(_wrap_paragraph(paragraph, columns))
    return lines


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    opening = ""
    for tok in _TOKEN.findall(_CONTROL.sub(" ", text)):
        if tok[0] in _NO_LINE_END and len(tok) == 1:
            opening += tok
            continue
        tok, opening = opening + tok, ""
        if (
            tokens
            and not tokens[-1].isspace()
            and not tok.isspace()
            and all(c in _NO_LINE_START for c in tok)
        ):
            tokens[-1] += tok
        else:
            tokens.append(tok)
    if opening:
        tokens.append(opening)
    return tokens


def _wrap_paragraph(text: str, columns: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for tok in _tokens(text):
        if tok.isspace():
            line += " " if line else ""  # runs of spaces count once; none at a line's start
            continue
        if display_width(line + tok) <= columns:
            line += tok
            continue
        if line.strip():
            lines.append(line.rstrip())
        while display_width(tok) > columns:  # a token wider than a whole line
            head = _cut(tok, columns)
            lines.append(head)
            tok = tok[len(head) :]
        line = tok
    lines.append(line.rstrip())
    return lines if any(lines) else [""]


def _cut(text: str, columns: int) -> str:
    width = 0
    for i, c in enumerate(text):
        width += display_width(c)
        if width > columns:
            return text[: max(i, 1)]
    return text


def encode_text(text: str) -> bytes:
    """One line's bytes: ASCII as is, anything else as GB18030 in Chinese mode. Control
    characters become spaces, so text from data can never smuggle in printer commands."""
    clean = _CONTROL.sub(" ", text)
    if clean.isascii():
        return clean.encode("ascii")
    return FS_CHINESE_ON + clean.encode("gb18030", errors="replace") + FS_CHINESE_OFF


class Sheet:
    """Lines and styles on any python-escpos printer, sized for one paper width.

    Sizes use ``GS !`` (python-escpos ``set(custom_size=True)``): unlike ``ESC !`` it also
    scales Chinese characters on Chinese printers, and it resets them the same way."""

    def __init__(self, printer: Escpos, paper: Paper) -> None:
        self.printer = printer
        self.paper = paper

    def start(self) -> None:
        self.printer.hw("INIT")  # ESC @: no mode left over from an earlier, broken job

    def align(self, where: Literal["left", "center", "right"]) -> None:
        self.printer.set(align=where)

    def style(self, *, bold: bool = False, width: int = 1, height: int = 1) -> None:
        self.printer.set(bold=bold, custom_size=True, width=width, height=height)

    def line(self, text: str = "") -> None:
        if text:
            self.printer._raw(encode_text(text))
        self.printer._raw(LF)

    def paragraph(self, text: str, *, width: int = 1, indent: str = "", first: str = "") -> None:
        """Wrapped lines; ``first`` starts the first line, ``indent`` the others (a hanging
        indent for numbered items). ``width`` is the character width set by ``style``."""
        columns = self.paper.columns // width - display_width(first or indent)
        for i, part in enumerate(wrap(text, columns)):
            self.line((first if i == 0 and first else indent) + part)

    def rule(self) -> None:
        self.line("-" * self.paper.columns)

    def qr(self, content: str) -> None:
        from escpos.constants import QR_ECLEVEL_M

        # native: the printer draws it from a few dozen bytes instead of a bitmap; level M
        # survives a smudge or a fold on thermal paper
        self.printer.qr(content, ec=QR_ECLEVEL_M, size=self.paper.qr_module, native=True)
        self.printer._raw(LF)

    def cut(self) -> None:
        self.printer.cut()  # feeds past the cutter, then GS V
