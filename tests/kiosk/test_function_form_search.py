"""Search over the shipped form samples as residents type at a kiosk: Chinese, full
pinyin with or without tones, pinyin initials, mixtures, traditional characters."""

from __future__ import annotations

import pytest
from forms_builders import FORMS_DIR, catalogue

from kiosk.forms.definition import parse_definition
from kiosk.forms.library import definitions_in
from kiosk.forms.search import FormIndex, initial, pinyin_query, syllables_match, to_syllables


@pytest.fixture(scope="module")
def index() -> FormIndex:
    departments, items = catalogue()
    ix = FormIndex()
    for _path, data in definitions_in(FORMS_DIR):
        f = parse_definition(data, departments, items)
        ix.add(
            f.id,
            f.title,
            f.tags,
            names=[departments[f.department], *(items[i] for i in f.services)],
            details=[f.summary, *(x.label for x in f.fields)],
        )
    return ix


def titles(index: FormIndex, query: str, **kw: object) -> list[str]:
    return [index.forms[h.form_id].title for h in index.search(query, **kw)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "query",
    ["居住证", "jzz", "juzhuzheng", "jūzhùzhèng", "Ju2 Zhu4 Zheng4", "juzz", "jzzheng", "居住證"],
)
def test_every_way_of_typing_juzhuzheng_finds_the_residence_permit_form_first(
    index: FormIndex, query: str
) -> None:
    assert titles(index, query)[0] == "居住证申领登记表"


def test_pinyin_initials_of_a_tag_find_the_form_by_its_everyday_name(index: FormIndex) -> None:
    assert any("社会保障卡" in t for t in titles(index, "sbk")[:2])
    assert any("社会保障卡" in t for t in titles(index, "shebaoka")[:2])
    assert any("最低生活保障" in t for t in titles(index, "dibao")[:2])


def test_a_chinese_query_in_another_order_still_finds_the_form(index: FormIndex) -> None:
    found = titles(index, "提取公积金")
    assert found and "公积金" in found[0] and "提取" in found[0]


def test_the_title_ranks_above_a_field_label(index: FormIndex) -> None:
    hits = index.search("公民身份号码")  # a label on most forms, in no title
    assert len(hits) >= 5 and {h.score for h in hits} == {30}


def test_more_viewed_forms_come_first_among_equals(index: FormIndex) -> None:
    tied = [h.form_id for h in index.search("姓名")]
    index.set_views({tied[-1]: 50})
    try:
        assert index.search("姓名")[0].form_id == tied[-1]
    finally:
        index.set_views({})


def test_a_department_limits_the_search(index: FormIndex) -> None:
    police = {fid for fid in index.forms if fid.startswith(("residence", "hukou", "id-card"))}
    hits = index.search("sq", among=police)
    assert {h.form_id for h in hits} <= police


def test_nonsense_finds_nothing(index: FormIndex) -> None:
    assert titles(index, "xyzq") == []
    assert titles(index, "  ") == []
    assert titles(index, "%%%") == []


def test_pinyin_helpers() -> None:
    assert to_syllables("居住证") == ("ju", "zhu", "zheng")
    assert pinyin_query("lǜ shī") == "lvshi"
    assert syllables_match("zzsl", ("ju", "zhu", "zheng", "shen", "ling")) == 1
    assert syllables_match("jx", ("ju", "zhu", "zheng")) is None
    assert initial("公安分局") == "G" and initial("政务服务中心") == "Z"
