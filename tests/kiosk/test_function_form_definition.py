"""A form definition is checked field by field: a mistake is refused with the field named,
in words an administrator can act on."""

from __future__ import annotations

from typing import Any

import pytest
from forms_builders import FORMS_DIR, catalogue, residence_definition

from kiosk.errors import FormInvalid
from kiosk.forms.definition import parse_definition
from kiosk.forms.library import definitions_in


def parse(data: Any) -> Any:
    departments, items = catalogue()
    return parse_definition(data, departments, items, source="test.yml")


def refused(data: Any) -> FormInvalid:
    with pytest.raises(FormInvalid) as caught:
        parse(data)
    return caught.value


def test_the_sample_form_numbers_its_fields_across_sections() -> None:
    form = parse(residence_definition())
    assert form.title == "居住证申领登记表"
    numbers = [(f.number, f.label) for f in form.fields]
    assert numbers[:3] == [(1, "姓名"), (2, "性别"), (3, "公民身份号码")]
    assert numbers[-1] == (13, "填表日期")
    assert form.fields[7].section == "居住信息"
    assert form.fields[1].chosen == ("男",)
    assert (
        form.checklist_lines()[0]
        == "姓名：与居民身份证上的姓名一致。（注意：写简称、曾用名或英文名）"
    )


def test_every_shipped_definition_is_valid_and_ids_are_unique() -> None:
    ids = [parse(data).id for _path, data in definitions_in(FORMS_DIR)]
    assert len(ids) >= 25
    assert len(set(ids)) == len(ids)


def field(data: dict[str, Any], section: int, index: int) -> dict[str, Any]:
    return data["sections"][section]["fields"][index]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("change", "named", "problem"),
    [
        (lambda d: d.pop("title"), "title", "is missing"),
        (lambda d: d.update(titel="x"), "titel", "not a known key"),
        (lambda d: d.update(department="police-x"), "department", "not a department"),
        (lambda d: d.update(services=["no-such-item"]), "services[0]", "not a service item"),
        (lambda d: d.update(id="Bad ID"), "id", "lowercase"),
        (lambda d: field(d, 0, 0).update(kind="box"), "sections[0].fields[0].kind", "one of"),
        (
            lambda d: field(d, 0, 1).update(sample="未知"),
            "sections[0].fields[1].sample",
            "not one of the options",
        ),
        (
            lambda d: field(d, 0, 2).update(sample="11010519900307"),
            "sections[0].fields[2].sample",
            "18 characters",
        ),
        (
            lambda d: field(d, 0, 2).update(sample="110105199003071234"),
            "sections[0].fields[2].sample",
            "check digit should be 9",
        ),
        (lambda d: field(d, 1, 0).update(key="name"), "sections[1].fields[0].key", "used twice"),
        (lambda d: field(d, 1, 1).pop("options"), "sections[1].fields[1].options", "at least two"),
        (lambda d: field(d, 2, 0).update(sample=""), "sections[2].fields[0].sample", "non-empty"),
        (lambda d: d["sections"].append({"title": "空"}), "sections[3].fields", "is missing"),
    ],
)
def test_a_mistake_names_the_field(change: Any, named: str, problem: str) -> None:
    data = residence_definition()
    change(data)
    error = refused(data)
    assert error.field == named
    assert problem in error.detail and "test.yml" in error.detail
    assert error.message == f"样表定义有误：{named}。"


def test_not_a_mapping_is_refused() -> None:
    assert refused(["居住证"]).field == "(top level)"


def test_the_digest_follows_the_content() -> None:
    a = parse(residence_definition())
    b = parse(residence_definition(summary="另一种说明。"))
    assert a.digest == parse(residence_definition()).digest
    assert a.digest != b.digest
