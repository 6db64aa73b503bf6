"""A field checklist (材料清单): a title and numbered lines, printed for a resident to take
along (issue #6 prints the materials of a service item with it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kiosk.printing.layout import PaperWidth, Sheet, display_width, paper

if TYPE_CHECKING:
    from escpos.escpos import Escpos


@dataclass(frozen=True)
class FieldChecklistPrint:
    title: str  # 居住证申领 所需材料
    lines: tuple[str, ...]  # one item each, numbered when printed
    note: str = ""  # under the list, e.g. where to ask

    def __post_init__(self) -> None:
        if not self.title.strip():
            raise ValueError("a checklist needs a title")


def render_checklist(
    printer: Escpos, checklist: FieldChecklistPrint, paper_mm: PaperWidth = 80
) -> None:
    sheet = Sheet(printer, paper(paper_mm))
    sheet.start()
    sheet.align("center")
    sheet.style(bold=True, height=2)
    sheet.paragraph(checklist.title)
    sheet.style()
    sheet.rule()
    sheet.align("left")
    digits = len(str(len(checklist.lines)))
    for n, text in enumerate(checklist.lines, start=1):
        number = f"{n}.".rjust(digits + 1) + " "
        # continuation lines start under the text, not under the number
        sheet.paragraph(text, first=number, indent=" " * display_width(number))
    if checklist.note.strip():
        sheet.rule()
        sheet.paragraph(checklist.note)
    sheet.cut()
