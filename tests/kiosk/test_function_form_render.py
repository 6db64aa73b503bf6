"""The form is drawn from its definition: a one-page A4 PDF with real (extractable) Chinese
text and the same drawing as a PNG; the sample adds the values in blue ink and a red
numbered callout per field, the blank form has neither."""

from __future__ import annotations

import io
import re
import sys
from typing import Any

import numpy as np
import pytest
import yaml

from banshi.settings import SAMPLE_KB_DIR
from kiosk.errors import RenderUnavailable
from kiosk.forms import render
from kiosk.forms.definition import FormDefinition, parse_definition

pypdf = pytest.importorskip("pypdf", reason="pypdf comes with the dev extra")

RESIDENCE = SAMPLE_KB_DIR / "forms" / "residence-permit-application.yml"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHINESE_DIGITS = "〇一二三四五六七八九"


@pytest.fixture(scope="module")
def renderer() -> None:
    health = render.renderer_health()
    if health["status"] != "ok":
        pytest.skip(f"the renderer is down: {health['reason']} (scripts/forms-setup)")


@pytest.fixture(scope="module")
def residence(renderer: None) -> FormDefinition:
    return parse_definition(yaml.safe_load(RESIDENCE.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def sample_pdf(residence: FormDefinition) -> bytes:
    return render.render_pdf(residence, filled=True)


@pytest.fixture(scope="module")
def blank_pdf(residence: FormDefinition) -> bytes:
    return render.render_pdf(residence, filled=False)


def pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def placed_texts(data: bytes) -> list[tuple[str, float, float, float]]:
    """Every text the PDF shows: (text, x, y, size), the origin in page space (points, y
    up) and the font size in points."""
    placed: list[tuple[str, float, float, float]] = []

    def visit(text: str, cm: list[float], tm: list[float], *_: Any) -> None:
        if text.strip():
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            size = abs(tm[3] * cm[3] + tm[2] * cm[1])
            placed.append((text.strip(), x, y, size))

    pypdf.PdfReader(io.BytesIO(data)).pages[0].extract_text(visitor_text=visit)
    return placed


def pixels(png: bytes) -> np.ndarray:
    """The PNG decoded by cairo, as rows x columns x (R, G, B)."""
    import cairocffi

    surface = cairocffi.ImageSurface.create_from_png(io.BytesIO(png))
    h, w, stride = surface.get_height(), surface.get_width(), surface.get_stride()
    data = np.frombuffer(bytes(surface.get_data()), dtype=np.uint8).reshape(h, stride)
    bgra = data[:, : w * 4].reshape(h, w, 4)  # cairo's pixels are B, G, R, A in memory
    return bgra[:, :, 2::-1].astype(int)


def red_and_blue(png: bytes) -> tuple[int, int]:
    rgb = pixels(png)
    r, g, b = rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2]
    red = (r > 170) & (g < 90) & (b < 90)  # the callouts (the watermark is far lighter)
    blue = (b > 160) & (r < 90) & (g < 130)  # the ink, #1a4fd6
    return int(red.sum()), int(blue.sum())


def chinese_number(n: int) -> str:
    return "".join(CHINESE_DIGITS[int(d)] for d in str(n))


def synthetic(count: int, notes: bool = True) -> FormDefinition:
    """A form of ``count`` fields of all kinds without a single ASCII digit in its text,
    mostly half width, in sections of ten."""
    kinds = ["text", "choice", "text", "checkbox", "text", "multiline", "signature", "text"]
    fields: list[dict[str, Any]] = []
    for i in range(count):
        kind = kinds[i % len(kinds)] if i < 40 else "text"  # the last 20: short rows
        f: dict[str, Any] = {
            "key": f"f{i + 1}",
            "label": f"事项{chinese_number(i + 1)}",
            "kind": kind,
            "sample": "按实际情况填写",
            "how": "照实填写。",
        }
        if kind in ("choice", "checkbox"):
            f["options"] = ["是", "否", "不确定"]
            f["sample"] = "是" if kind == "choice" else ["是", "不确定"]
        fields.append(f)
    sections = [
        {"title": f"第{chinese_number(s + 1)}部分", "fields": fields[s * 10 : s * 10 + 10]}
        for s in range((count + 9) // 10)
    ]
    data: dict[str, Any] = {
        "id": "synthetic-form",
        "title": "综合信息采集表",
        "department": "police",
        "services": ["residence-permit"],
        "tags": ["测试"],
        "summary": "很多字段的表。",
        "issuer": "区政务服务中心",
        "sections": sections,
    }
    if notes:
        data["notes"] = ["请用黑色签字笔填写。", "最后一条说明：本表一式两份。"]
    return parse_definition(data)


def test_the_sample_pdf_is_one_a4_page_with_the_values_as_real_text(sample_pdf: bytes) -> None:
    reader = pypdf.PdfReader(io.BytesIO(sample_pdf))
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert abs(float(box.width) - 595) <= 1
    assert abs(float(box.height) - 842) <= 1
    text = pdf_text(sample_pdf)
    for expected in ("居住证申领登记表", "区公安分局户政管理科", "申请人基本信息", "公民身份号码"):
        assert expected in text
    for value in ("张晓明", "110105199003071239", "河南省信阳市平桥区明港镇新集村三组"):
        assert value in text
    assert "样表 仅供参考" in text
    assert "填表说明" in text
    assert "本表一式一份，与身份证、居住证明材料一并交窗口。" in text


def test_the_blank_pdf_has_the_labels_and_options_but_none_of_the_values(
    blank_pdf: bytes,
) -> None:
    text = pdf_text(blank_pdf)
    assert len(pypdf.PdfReader(io.BytesIO(blank_pdf)).pages) == 1
    for printed in ("居住证申领登记表", "*公民身份号码", "工作单位", "投靠亲属", "三、申请人承诺"):
        assert printed in text
    for value in ("张晓明", "110105199003071239", "13812345678", "汉族"):
        assert value not in text
    assert "样表" not in text
    assert not re.search(r"\d{2,}", text)  # nor the callouts 10..13 (the notes have "1．")


def test_the_blank_and_the_sample_have_the_same_table(blank_pdf: bytes, sample_pdf: bytes) -> None:
    blank = placed_texts(blank_pdf)
    sample = set(placed_texts(sample_pdf))
    assert len(blank) > 25  # title, issuer, notes, bands, 13 labels, options, 年 月 日
    assert all(t in sample for t in blank)  # every label and option at the same place


def test_required_fields_are_starred_and_optional_ones_are_not(blank_pdf: bytes) -> None:
    text = pdf_text(blank_pdf)
    assert "*姓名" in text
    assert "*工作单位" not in text  # required: false


def test_the_sample_numbers_every_field_with_its_callout(renderer: None) -> None:
    form = synthetic(24, notes=False)
    numbers = re.findall(r"\d+", pdf_text(render.render_pdf(form, filled=True)))
    assert sorted(int(n) for n in numbers) == list(range(1, 25))
    assert re.findall(r"\d+", pdf_text(render.render_pdf(form, filled=False))) == []


def test_the_residence_callouts_run_from_one_to_thirteen_beside_the_labels(
    sample_pdf: bytes,
) -> None:
    placed = placed_texts(sample_pdf)
    # the callouts are the small numbers (about 7 pt); the written values are 10.5 pt
    callouts = [
        (int(n), x, y)
        for text, x, y, size in placed
        if size < 9
        for n in text.split()
        if n.isdigit()
    ]
    assert sorted(n for n, _, _ in callouts) == list(range(1, 14))
    labels = {text.lstrip("*"): (x, y) for text, x, y, _ in placed}
    _, x, y = next(c for c in callouts if c[0] == 3)
    label_x, label_y = labels["公民身份号码"]
    assert x < label_x < x + 40  # just left of its label, on the same line
    assert abs(y - label_y) < 6


def test_the_png_is_the_requested_width_in_a4_proportions(residence: FormDefinition) -> None:
    for width in (1240, 600):
        png = render.render_png(residence, filled=True, width_px=width)
        assert png.startswith(PNG_SIGNATURE)
        rows, columns, _ = pixels(png).shape
        assert columns == width
        assert abs(rows / columns - 841.89 / 595.28) < 0.003
    thumb = render.render_thumbnail(residence)
    assert thumb.startswith(PNG_SIGNATURE)
    assert pixels(thumb).shape[:2] == (339, 240)  # 240 x 841.89 / 595.28
    with pytest.raises(ValueError, match="width_px"):
        render.render_png(residence, filled=True, width_px=0)


def test_the_sample_png_has_red_callouts_and_blue_ink_the_blank_neither(
    residence: FormDefinition,
) -> None:
    red, blue = red_and_blue(render.render_png(residence, filled=True))
    assert red > 2000  # 13 circles of ~12 px radius
    assert blue > 500
    assert red_and_blue(render.render_png(residence, filled=False)) == (0, 0)
    page = pixels(render.render_png(residence, filled=False))
    assert (page.sum(axis=2) < 200).sum() > 10_000  # and it is not empty: lines and labels


def test_sixty_fields_still_fit_one_page_with_nothing_cut_off(renderer: None) -> None:
    form = synthetic(60)
    data = render.render_pdf(form, filled=True)
    assert len(pypdf.PdfReader(io.BytesIO(data)).pages) == 1
    text = pdf_text(data)
    assert "*事项六〇" in text  # the last field
    assert "最后一条说明：本表一式两份。" in text
    placed = placed_texts(data)
    assert len(placed) > 120
    for shown, x, y, size in placed:
        assert 0 < x < 595 and 20 < y < 842, (shown, x, y)
        assert size >= 5.5 or shown == "样表 仅供参考", (shown, size)  # still legible
    png = render.render_png(form, filled=True)
    assert pixels(png).shape[:2] == (1754, 1240)


def test_long_values_wrap_inside_their_cell_and_nothing_is_lost(
    residence: FormDefinition,
) -> None:
    data = yaml.safe_load(RESIDENCE.read_text(encoding="utf-8"))
    long = "本区长安街道幸福路十八号三栋二单元五〇一室星河科技有限公司职工宿舍楼北侧门卫室旁"
    data["sections"][0]["fields"][0]["sample"] = long  # 姓名: a half-width cell
    text = pdf_text(render.render_pdf(parse_definition(data), filled=True))
    assert long not in text  # on more than one line …
    assert long in text.replace("\n", "")  # … and every character of it there


def test_without_a_cjk_font_the_renderer_is_down_and_refuses(
    monkeypatch: pytest.MonkeyPatch, residence: FormDefinition
) -> None:
    render._fonts.cache_clear()
    monkeypatch.setattr(render, "SANS_FAMILIES", ("No Such Font Family",))
    try:
        health = render.renderer_health()
        assert health["status"] == "down"
        assert "no CJK font found" in health["reason"]
        with pytest.raises(RenderUnavailable) as caught:
            render.render_png(residence, filled=True)
    finally:
        render._fonts.cache_clear()
    assert caught.value.code == "render_unavailable"
    assert caught.value.status_code == 503
    assert caught.value.message == "样表图片暂时无法生成，请到咨询台询问。"
    assert "fonts-noto-cjk" in caught.value.detail


def test_without_cairo_the_renderer_is_down(
    monkeypatch: pytest.MonkeyPatch, residence: FormDefinition
) -> None:
    monkeypatch.setitem(sys.modules, "cairocffi", None)  # import fails as when not installed
    health = render.renderer_health()
    assert health["status"] == "down"
    assert health["reason"].startswith("cairo missing")
    with pytest.raises(RenderUnavailable, match="cairo missing"):
        render.render_pdf(residence, filled=False)


def test_the_health_names_the_cjk_font_on_this_machine(residence: FormDefinition) -> None:
    health = render.renderer_health()
    assert health["status"] == "ok"
    assert "CJK" in health["font"] or "Han" in health["font"]
