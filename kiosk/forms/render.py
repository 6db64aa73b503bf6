"""Draws a form (样表) from its definition: the blank form (空白表) and the filled-in sample,
each as a one-page A4 PDF and as a PNG, plus a small thumbnail of the sample.

One drawing function (:func:`_draw`) paints onto a cairo context in PDF points; the PDF
surface gets it as vectors with real, extractable text (cairo embeds a subset of the CJK
font with a ToUnicode map: printed sharp, and its text can be copied and searched), the image
surface gets the same drawing scaled to the requested width.

The layout is the one of a paper form: the title and the issuer centred on top, a ruled
table (a grey band per section, fields as label and value cells in two columns), and the
notes (填表说明) at the foot. The layout is always computed from the sample values, so the
blank and the sample have the same table and the same numbered cells. The sample adds the
values in a blue "pen" ink, a light diagonal watermark and a red numbered callout at each
field's label, matching the numbered field explanations shown beside the image.

Needs cairo (cairocffi over Debian's libcairo2) and a CJK font (fonts-noto-cjk), both
installed by ``scripts/forms-setup``; without them the functions raise
:class:`RenderUnavailable` and :func:`renderer_health` says why.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kiosk.errors import RenderUnavailable
from kiosk.forms.definition import FormDefinition, FormField

PAGE_W, PAGE_H = 595.28, 841.89  # A4 portrait in PDF points (1/72 in)
LEFT = 40.0
TABLE_W = PAGE_W - 2 * LEFT
TOP, BOTTOM = 40.0, PAGE_H - 36.0

BLACK = (0.08, 0.08, 0.08)
GREY_TEXT = (0.25, 0.25, 0.25)
BAND = (0.88, 0.88, 0.88)
INK = (0x1A / 255, 0x4F / 255, 0xD6 / 255)  # "ballpoint" blue of the written values
CALLOUT = (0.84, 0.11, 0.11)
WATERMARK = (0.84, 0.11, 0.11, 0.10)  # so light it never reads as a callout

# Tried in order; the first one that has the CJK glyphs wins. "sans-serif" last: on a
# machine set up for Chinese fontconfig may map it to some CJK font.
SANS_FAMILIES = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "sans-serif",
)
SERIF_FAMILIES = ("Noto Serif CJK SC", "Source Han Serif SC", "Source Han Serif CN")
PROBE = "居住证申领登记表样仅供参考填说明"

SCALES = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)  # 0.6: 6 pt labels, still legible
ROOM = (1.0, 0.85, 0.7)  # rows and padding, tried tighter before the print gets smaller
COMPACT = (0.6, 0.55, 0.5, 0.45)  # tall cells less tall, then the print gets small
GROWTHS = (1.6, 1.5, 1.4, 1.3, 1.2, 1.1)  # taller rows when a short form leaves the page empty

# Punctuation that must not start a line: it hangs at the end of the previous one.
_CLOSING = frozenset("，。、；：！？）》」』”’,.;:!?)%")
# Runs of Latin letters and digits stay together (an ID number, a phone number); every
# CJK character is a break opportunity of its own.
_TOKEN = re.compile(r"[A-Za-z0-9@._+\-/#]+|\s+|.", re.S)
_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?|年(?:(\d{1,2})月(?:(\d{1,2})日)?)?)")


def render_pdf(form: FormDefinition, filled: bool) -> bytes:
    """The form as a one-page A4 PDF: the sample when ``filled``, else the blank form."""
    cairo = _cairo()
    fonts = _fonts()
    out = io.BytesIO()
    surface = cairo.PDFSurface(out, PAGE_W, PAGE_H)
    if hasattr(surface, "set_metadata"):  # cairo >= 1.16
        surface.set_metadata(cairo.PDF_METADATA_TITLE, form.title + ("（样表）" if filled else ""))
        surface.set_metadata(cairo.PDF_METADATA_CREATOR, "banshi")
    _draw(cairo, cairo.Context(surface), fonts, form, filled)
    surface.finish()
    return out.getvalue()


def render_png(form: FormDefinition, filled: bool, width_px: int = 1240) -> bytes:
    """The same drawing as :func:`render_pdf`, rasterised ``width_px`` wide (1240 is A4 at
    150 dpi: 1240 x 1754)."""
    if not 16 <= width_px <= 5000:
        raise ValueError(f"width_px must be 16..5000, not {width_px}")
    cairo = _cairo()
    fonts = _fonts()
    scale = width_px / PAGE_W
    surface = cairo.ImageSurface(cairo.FORMAT_RGB24, width_px, round(PAGE_H * scale))
    ctx = cairo.Context(surface)
    ctx.set_source_rgb(1, 1, 1)
    ctx.paint()
    ctx.scale(scale, scale)
    _draw(cairo, ctx, fonts, form, filled)
    surface.flush()
    data: bytes = surface.write_to_png()
    return data


def render_thumbnail(form: FormDefinition, width_px: int = 240) -> bytes:
    """A small PNG of the filled-in sample, for lists and search results."""
    return render_png(form, filled=True, width_px=width_px)


def renderer_health() -> dict[str, Any]:
    """``{"status": "ok", "cairo": …, "font": …}`` or ``{"status": "down", "reason": …}``."""
    try:
        cairo = _cairo()
        fonts = _fonts()
    except RenderUnavailable as exc:
        return {"status": "down", "reason": exc.detail}
    return {
        "status": "ok",
        "cairo": cairo.cairo_version_string(),
        "font": fonts.sans,
        "title_font": fonts.serif,
    }


# -- cairo and fonts ---------------------------------------------------------------------


def _cairo() -> Any:
    # Imported here: the API process starts without cairo and only drawing needs it.
    try:
        import cairocffi
    except (ImportError, OSError) as exc:  # OSError: the package is there, libcairo2 is not
        raise RenderUnavailable(
            f"cairo missing ({exc}); install the kiosk extra and run scripts/forms-setup"
        ) from exc
    return cairocffi


@dataclass(frozen=True)
class _Fonts:
    sans: str
    serif: str  # the title's; the sans family when no CJK serif is installed


@functools.cache  # only successes are kept: a failure is checked again next time
def _fonts() -> _Fonts:
    cairo = _cairo()
    # Cairo's toy font API silently falls back to a Latin font, so each family is checked
    # by the glyphs it maps the probe to: glyph 0 is "missing".
    sans = next((f for f in SANS_FAMILIES if _has_cjk(cairo, f)), None)
    if sans is None:
        raise RenderUnavailable(
            f"no CJK font found (tried {', '.join(SANS_FAMILIES)}); "
            "install fonts-noto-cjk (scripts/forms-setup)"
        )
    serif = next((f for f in SERIF_FAMILIES if _has_cjk(cairo, f)), sans)
    return _Fonts(sans, serif)


def _has_cjk(cairo: Any, family: str) -> bool:
    ctx = cairo.Context(cairo.ImageSurface(cairo.FORMAT_A8, 1, 1))
    ctx.select_font_face(family, cairo.FONT_SLANT_NORMAL, cairo.FONT_WEIGHT_NORMAL)
    glyphs = ctx.get_scaled_font().text_to_glyphs(0, 0, PROBE, False)
    return bool(glyphs) and all(g[0] != 0 for g in glyphs)


class _Pen:
    """The context's fonts by name ("sans", "bold", "title", "ink") with cached widths."""

    def __init__(self, cairo: Any, ctx: Any, fonts: _Fonts) -> None:
        self.cairo = cairo
        self.ctx = ctx
        options = cairo.FontOptions()
        # Unhinted metrics: the layout in points is the same on the PDF and on any raster
        # size, so the thumbnail is the sample made small, not a different wrap.
        options.set_hint_metrics(cairo.HINT_METRICS_OFF)
        options.set_hint_style(cairo.HINT_STYLE_NONE)
        ctx.set_font_options(options)
        normal, bold = cairo.FONT_WEIGHT_NORMAL, cairo.FONT_WEIGHT_BOLD
        upright = cairo.FONT_SLANT_NORMAL
        self.faces = {
            "sans": cairo.ToyFontFace(fonts.sans, upright, normal),
            "bold": cairo.ToyFontFace(fonts.sans, upright, bold),
            "title": cairo.ToyFontFace(fonts.serif, upright, bold),
            "ink": cairo.ToyFontFace(fonts.sans, upright, normal),
        }
        self._current: tuple[str, float] | None = None
        self._widths: dict[tuple[str, float, str], float] = {}

    def use(self, face: str, size: float) -> None:
        if self._current == (face, size):
            return
        self.ctx.set_font_face(self.faces[face])
        if face == "ink":  # leaning a little, like a hand; no handwriting font is installed
            self.ctx.set_font_matrix(self.cairo.Matrix(size, 0, -0.18 * size, size, 0, 0))
        else:
            self.ctx.set_font_size(size)
        self._current = (face, size)

    def forget(self) -> None:
        """After ctx.restore(), which also restores the font."""
        self._current = None

    def width(self, face: str, size: float, text: str) -> float:
        key = (face, size, text)
        w = self._widths.get(key)
        if w is None:
            self.use(face, size)
            w = self._widths[key] = float(self.ctx.text_extents(text)[4])
        return w

    def measure(self, face: str, size: float) -> Callable[[str], float]:
        return lambda text: self.width(face, size, text)

    def text(
        self, face: str, size: float, x: float, baseline: float, text: str, rgb: tuple[float, ...]
    ) -> None:
        self.use(face, size)
        self.ctx.set_source_rgb(*rgb)
        self.ctx.move_to(x, baseline)
        self.ctx.show_text(text)


def _wrap(text: str, max_w: float, width: Callable[[str], float]) -> list[str]:
    """Greedy line breaking by measured width; never returns a line wider than ``max_w``
    except for hanging closing punctuation."""
    lines: list[str] = []
    for paragraph in text.splitlines():
        line, line_w = "", 0.0
        for token in _TOKEN.findall(paragraph):
            token_w = width(token)
            if line_w + token_w <= max_w or (line and token in _CLOSING):
                line, line_w = line + token, line_w + token_w
                continue
            if line.strip():
                lines.append(line.rstrip())
            line, line_w = "", 0.0
            if token.isspace():
                continue
            pieces = list(token) if token_w > max_w else [token]  # a run too long: any char
            for piece in pieces:
                piece_w = width(piece)
                if line and line_w + piece_w > max_w:
                    lines.append(line)
                    line, line_w = "", 0.0
                line, line_w = line + piece, line_w + piece_w
        if line.strip():
            lines.append(line.rstrip())
    return lines


def _wrap_balanced(text: str, max_w: float, width: Callable[[str], float]) -> list[str]:
    """As :func:`_wrap`, with lines of about equal length (a label of two lines, not a
    line and one character)."""
    lines = _wrap(text, max_w, width)
    if len(lines) < 2:
        return lines
    narrow = max_w
    while narrow > max_w / 2:
        tighter = _wrap(text, narrow - 2, width)
        if len(tighter) > len(lines):
            break
        lines, narrow = tighter, narrow - 2
    return lines


# -- layout ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sizes:
    """Every size of the page: ``s`` scales the print (1.0: 10 pt labels), ``r`` the room
    around it (rows get tighter before the print gets smaller), ``grow`` makes the rows of a
    short form taller, and ``compact`` makes multiline and signature cells less tall."""

    s: float
    r: float = 1.0
    grow: float = 1.0
    compact: bool = False

    @property
    def label(self) -> float:
        return 10.0 * self.s

    @property
    def value(self) -> float:
        return 10.5 * self.s

    @property
    def label_lh(self) -> float:
        return self.label * 1.3

    @property
    def value_lh(self) -> float:
        return self.value * (1.2 + 0.3 * self.r)

    @property
    def pad(self) -> float:
        return 4.0 * self.s * self.r

    @property
    def row(self) -> float:
        return 24.0 * self.s * self.r * self.grow

    @property
    def band(self) -> float:
        return 10.5 * self.s

    @property
    def band_h(self) -> float:
        return 19.0 * self.s * self.r

    @property
    def signature(self) -> float:
        return 14.0 * self.s

    @property
    def note(self) -> float:
        return 9.0 * max(self.s, 0.75)  # the notes stay readable: they are few lines

    @property
    def radius(self) -> float:
        # the callout's number stays readable too, but the circle keeps within the row
        return min(6.2 * max(self.s, 0.85), max(self.row, self.label_lh + 2 * self.pad) / 2 - 1)

    @property
    def label_w(self) -> float:
        return TABLE_W * 0.175

    @property
    def gutter(self) -> float:
        # room for the callout on the left of the label, in the blank too: same table
        return 2 * self.radius + 6.0 * self.s


@dataclass
class _Cell:
    field: FormField
    x: float
    w: float
    label: list[str]
    value: list[str] = dataclasses.field(default_factory=list)  # the sample, wrapped (text kinds)
    # choice and checkbox: (option, x from the value's left, line)
    options: list[tuple[str, float, int]] = dataclasses.field(default_factory=list)
    date: tuple[str, str, str] | None = None  # the sample's 年, 月, 日 (date kind)
    need: float = 0.0


@dataclass
class _Row:
    y: float
    h: float
    band: list[str] = dataclasses.field(default_factory=list)  # a section title band…
    cells: list[_Cell] = dataclasses.field(default_factory=list)  # …or a row of fields


# A line of the title, the issuer or the notes: face, size, x, baseline, text, rgb.
_Text = tuple[str, float, float, float, str, tuple[float, ...]]


@dataclass
class _Page:
    z: _Sizes
    texts: list[_Text]  # the title, the issuer and the notes
    rows: list[_Row]
    bottom: float
    fit: float = 1.0  # < 1: drawn smaller than the smallest scale (a very tall form)


def _baseline(top: float, line_h: float, size: float) -> float:
    # Noto CJK's ideographic em box spans 0.88 above to 0.12 below the baseline: this puts
    # the em box in the middle of its line.
    return top + (line_h - size) / 2 + size * 0.88


def _layout(pen: _Pen, form: FormDefinition, z: _Sizes) -> _Page:
    texts: list[_Text] = []

    def centred(face: str, size: float, text: str, top: float, line_h: float, rgb: Any) -> float:
        for line in _wrap(text, TABLE_W, pen.measure(face, size)):
            x = LEFT + (TABLE_W - pen.width(face, size, line)) / 2
            texts.append((face, size, x, _baseline(top, line_h, size), line, rgb))
            top += line_h
        return top

    title_size = 20.0 * max(z.s, 0.8)
    y = centred("title", title_size, form.title, TOP, title_size * 1.35, BLACK)
    if form.issuer:
        size = 10.5 * z.s
        y = centred("sans", size, form.issuer, y + 2 * z.s, size * 1.4, GREY_TEXT)
    y += 10 * z.s

    rows: list[_Row] = []
    for n, section in enumerate(form.sections, 1):
        band = _wrap(
            f"{_ordinal(n)}、{section.title}", TABLE_W - 4 * z.pad, pen.measure("bold", z.band)
        )
        h = max(z.band_h, len(band) * z.band * 1.35 + z.pad)
        rows.append(_Row(y, h, band=band))
        y += h
        for group in _rows_of(section.fields):
            w = TABLE_W / len(group)
            cells = [_cell(pen, z, f, LEFT + i * w, w) for i, f in enumerate(group)]
            h = max(z.row, *(c.need for c in cells))
            rows.append(_Row(y, h, cells=cells))
            y += h

    if form.notes:
        y += 8 * z.s
        line_h = z.note * 1.5
        texts.append(("bold", z.note, LEFT, _baseline(y, line_h, z.note), "填表说明：", BLACK))
        y += line_h
        for i, note in enumerate(form.notes, 1):
            prefix = f"{i}．"
            indent = pen.width("sans", z.note, prefix)
            lines = _wrap(note, TABLE_W - indent, pen.measure("sans", z.note))
            for j, line in enumerate(lines):
                base = _baseline(y, line_h, z.note)
                if j == 0:
                    texts.append(("sans", z.note, LEFT, base, prefix, BLACK))
                texts.append(("sans", z.note, LEFT + indent, base, line, BLACK))
                y += line_h
    return _Page(z, texts, rows, y)


def _rows_of(fields: tuple[FormField, ...]) -> list[list[FormField]]:
    """Fields in order, two halves side by side; a half alone (before a full field or at
    the section's end) takes the whole row."""
    rows: list[list[FormField]] = []
    pending: FormField | None = None
    for f in fields:
        if f.width == "half":
            if pending is None:
                pending = f
                continue
            rows.append([pending, f])
            pending = None
            continue
        if pending is not None:
            rows.append([pending])
            pending = None
        rows.append([f])
    if pending is not None:
        rows.append([pending])
    return rows


def _cell(pen: _Pen, z: _Sizes, f: FormField, x: float, w: float) -> _Cell:
    label = _wrap_balanced(
        ("*" if f.required else "") + f.label,
        z.label_w - z.gutter - z.pad,
        pen.measure("sans", z.label),
    )
    cell = _Cell(f, x, w, label)
    value_w = w - z.label_w - 2.5 * z.pad  # from _value_left, and room for the ink's lean
    if f.options:
        box = z.label * 0.9
        dx, line = 0.0, 0
        for option in f.options:
            item_w = box + z.label * 0.35 + pen.width("sans", z.label, option)
            if dx > 0 and dx + item_w > value_w:
                dx, line = 0.0, line + 1
            cell.options.append((option, dx, line))
            dx += item_w + z.label * 1.3
        value_h = (line + 1) * z.value_lh
    elif f.kind == "date" and (parts := _date_parts(f.sample)):
        cell.date = parts
        value_h = z.value_lh
    elif f.kind == "signature":
        cell.value = _wrap(f.sample, value_w, pen.measure("ink", z.signature))
        tall = 1.3 if z.compact else 2.0
        value_h = max(tall * z.row, len(cell.value) * z.signature * 1.4)
    else:
        cell.value = _wrap(f.sample, value_w, pen.measure("ink", z.value))
        least = 2 if z.compact else 3
        lines = max(least, len(cell.value)) if f.kind == "multiline" else len(cell.value)
        value_h = lines * z.value_lh * (z.grow if f.kind == "multiline" else 1.0)
    cell.need = max(len(label) * z.label_lh, value_h) + 2 * z.pad
    return cell


def _date_parts(sample: str) -> tuple[str, str, str] | None:
    """``2026-03-01`` or ``2026年3月1日`` as ("2026", "3", "1"), for the 年 月 日 guides."""
    m = _DATE.fullmatch(sample)
    if not m:
        return None
    year, month, day = m[1], m[2] or m[4] or "", m[3] or m[5] or ""
    return year, str(int(month)) if month else "", str(int(day)) if day else ""


def _ordinal(n: int) -> str:
    digits = "零一二三四五六七八九"
    if n <= 10:
        return "十" if n == 10 else digits[n]
    tens, ones = divmod(n, 10)
    return (digits[tens] if tens > 1 else "") + "十" + (digits[ones] if ones else "")


def _fit(pen: _Pen, form: FormDefinition) -> _Page:
    """The roomiest sizes at which the form fits the page; a short form gets taller rows."""
    page = _layout(pen, form, _Sizes(1.0))
    if page.bottom <= BOTTOM:
        for grow in GROWTHS:
            taller = _layout(pen, form, _Sizes(1.0, grow=grow))
            if taller.bottom <= BOTTOM:
                return taller
        return page
    # From roomy to tight (the page's height shrinks along it): bisect for the first that
    # fits, a handful of layouts instead of one per step.
    steps = [_Sizes(s, r) for s in SCALES for r in ROOM][1:]
    steps += [_Sizes(s, ROOM[-1], compact=True) for s in COMPACT]
    low, high, best = 0, len(steps) - 1, None
    while low <= high:
        middle = (low + high) // 2
        candidate = _layout(pen, form, steps[middle])
        if candidate.bottom <= BOTTOM:
            best, high = candidate, middle - 1
        else:
            low, page = middle + 1, candidate
    if best is not None:
        return best
    # Beyond the smallest sizes (60 fields of long multiline text): the whole drawing
    # smaller, still one page and nothing cut off. ``page`` is the smallest step's layout.
    page.fit = (BOTTOM - TOP) / (page.bottom - TOP)
    return page


# -- drawing -----------------------------------------------------------------------------


def _draw(cairo: Any, ctx: Any, fonts: _Fonts, form: FormDefinition, filled: bool) -> None:
    """Draws the whole page in points onto ``ctx`` (a PDF page or a scaled image)."""
    pen = _Pen(cairo, ctx, fonts)
    page = _fit(pen, form)
    if page.fit < 1.0:
        ctx.translate(LEFT + TABLE_W * (1 - page.fit) / 2, TOP)
        ctx.scale(page.fit, page.fit)
        ctx.translate(-LEFT, -TOP)
    z = page.z
    for face, size, x, base, text, rgb in page.texts:
        pen.text(face, size, x, base, text, rgb)
    _draw_table(pen, page)
    if not filled:
        return
    _draw_watermark(pen)
    for row in page.rows:
        for cell in row.cells:
            _draw_ink(pen, z, cell, row)
    for row in page.rows:  # over the ink, so no value ever hides a number
        for cell in row.cells:
            _draw_callout(pen, z, cell, row)


def _draw_table(pen: _Pen, page: _Page) -> None:
    ctx, z = pen.ctx, page.z
    ctx.set_line_width(0.6)
    for row in page.rows:
        if row.band:
            ctx.rectangle(LEFT, row.y, TABLE_W, row.h)
            ctx.set_source_rgb(*BAND)
            ctx.fill_preserve()
            ctx.set_source_rgb(*BLACK)
            ctx.stroke()
            line_h = z.band * 1.35
            top = row.y + (row.h - len(row.band) * line_h) / 2
            for i, line in enumerate(row.band):
                base = _baseline(top + i * line_h, line_h, z.band)
                pen.text("bold", z.band, LEFT + 2 * z.pad, base, line, BLACK)
            continue
        for cell in row.cells:
            ctx.set_source_rgb(*BLACK)
            ctx.rectangle(cell.x, row.y, z.label_w, row.h)
            ctx.rectangle(cell.x + z.label_w, row.y, cell.w - z.label_w, row.h)
            ctx.stroke()
            _draw_label(pen, z, cell, row)
            _draw_printed(pen, z, cell, row)
    if page.rows:
        first, last = page.rows[0], page.rows[-1]
        ctx.set_source_rgb(*BLACK)
        ctx.set_line_width(1.3)
        ctx.rectangle(LEFT, first.y, TABLE_W, last.y + last.h - first.y)
        ctx.stroke()


def _draw_label(pen: _Pen, z: _Sizes, cell: _Cell, row: _Row) -> None:
    top = row.y + (row.h - len(cell.label) * z.label_lh) / 2
    room = z.label_w - z.gutter - z.pad
    for i, line in enumerate(cell.label):
        # centred right of the callout's gutter: the same place on the blank and the sample
        x = cell.x + z.gutter + (room - pen.width("sans", z.label, line)) / 2
        pen.text(
            "sans", z.label, x, _baseline(top + i * z.label_lh, z.label_lh, z.label), line, BLACK
        )


def _value_left(z: _Sizes, cell: _Cell) -> float:
    return cell.x + z.label_w + z.pad * 1.5


def _draw_printed(pen: _Pen, z: _Sizes, cell: _Cell, row: _Row) -> None:
    """What the blank form prints inside the value cell: option boxes, 年 月 日."""
    ctx = pen.ctx
    left = _value_left(z, cell)
    if cell.options:
        box = z.label * 0.9
        lines = max(o[2] for o in cell.options) + 1
        top = row.y + (row.h - lines * z.value_lh) / 2
        ctx.set_line_width(0.7)
        for option, dx, line in cell.options:
            line_top = top + line * z.value_lh
            base = _baseline(line_top, z.value_lh, z.label)
            ctx.set_source_rgb(*BLACK)
            ctx.rectangle(left + dx, base - box * 0.85, box, box)
            ctx.stroke()
            pen.text("sans", z.label, left + dx + box + z.label * 0.35, base, option, BLACK)
    elif cell.date:
        base = _baseline(row.y + (row.h - z.value_lh) / 2, z.value_lh, z.label)
        for char, x in zip("年月日", _date_slots(z, left)[1], strict=True):
            pen.text("sans", z.label, x, base, char, BLACK)


def _date_slots(z: _Sizes, left: float) -> tuple[list[tuple[float, float]], list[float]]:
    """The (x, width) of the year, month and day slots and the x of 年, 月 and 日."""
    slots, chars, x = [], [], left
    for em in (3.0, 2.0, 2.0):
        slots.append((x, em * z.label))
        x += em * z.label
        chars.append(x)
        x += z.label * 1.2
    return slots, chars


def _draw_ink(pen: _Pen, z: _Sizes, cell: _Cell, row: _Row) -> None:
    """The sample's values, written in blue."""
    f, ctx = cell.field, pen.ctx
    left = _value_left(z, cell)
    if cell.options:
        box = z.label * 0.9
        lines = max(o[2] for o in cell.options) + 1
        top = row.y + (row.h - lines * z.value_lh) / 2
        ctx.set_source_rgb(*INK)
        ctx.set_line_width(1.5 * z.s)
        ctx.set_line_cap(pen.cairo.LINE_CAP_ROUND)
        ctx.set_line_join(pen.cairo.LINE_JOIN_ROUND)
        for option, dx, line in cell.options:
            if option not in f.chosen:
                continue
            bx = left + dx
            by = _baseline(top + line * z.value_lh, z.value_lh, z.label) - box * 0.85
            ctx.move_to(bx + box * 0.15, by + box * 0.5)  # a √ a little bigger than the box
            ctx.line_to(bx + box * 0.42, by + box * 0.88)
            ctx.line_to(bx + box * 1.1, by - box * 0.2)
            ctx.stroke()
        return
    if cell.date:
        base = _baseline(row.y + (row.h - z.value_lh) / 2, z.value_lh, z.value)
        for part, (x, w) in zip(cell.date, _date_slots(z, left)[0], strict=True):
            if part:
                px = x + (w - pen.width("ink", z.value, part)) / 2
                pen.text("ink", z.value, px, base, part, INK)
        return
    size, line_h = z.value, z.value_lh
    if f.kind == "signature":
        size, line_h = z.signature, z.signature * 1.4
    top = row.y + (row.h - len(cell.value) * line_h) / 2
    if f.kind == "multiline":  # written from the top, as a hand does
        top = row.y + z.pad
    for i, text in enumerate(cell.value):
        pen.text("ink", size, left, _baseline(top + i * line_h, line_h, size), text, INK)


def _draw_callout(pen: _Pen, z: _Sizes, cell: _Cell, row: _Row) -> None:
    """The red numbered circle in the label cell's gutter: the field's explanation number."""
    ctx, r = pen.ctx, z.radius
    cx, cy = cell.x + z.pad * 0.75 + r, row.y + row.h / 2
    ctx.set_source_rgb(*CALLOUT)
    ctx.arc(cx, cy, r, 0, 2 * math.pi)
    ctx.fill()
    number = str(cell.field.number)
    size = r * (1.25 if len(number) == 1 else 1.1)
    w = pen.width("bold", size, number)
    pen.text("bold", size, cx - w / 2, cy + size * 0.36, number, (1, 1, 1))


def _draw_watermark(pen: _Pen) -> None:
    ctx, size, text = pen.ctx, 66.0, "样表 仅供参考"
    w = pen.width("bold", size, text)
    ctx.save()
    ctx.translate(PAGE_W / 2, PAGE_H / 2)
    ctx.rotate(-math.radians(35))
    pen.use("bold", size)
    ctx.set_source_rgba(*WATERMARK)
    ctx.move_to(-w / 2, size * 0.38)
    ctx.show_text(text)
    ctx.restore()
    pen.forget()
