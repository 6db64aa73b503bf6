"""The source format: the sample loads cleanly, and every problem names file and field."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from builders import (
    DROP,
    copy_sample,
    faq_entry,
    make_guide_text,
    make_policy_text,
    material,
)

from banshi.settings import SAMPLE_KB_DIR
from knowledge_base.errors import DocumentInvalid
from knowledge_base.source import (
    Catalog,
    faq_id,
    load_folder,
    parse_faq_entry,
    parse_faq_file,
    parse_guide,
    parse_policy,
    parse_source,
)

GUIDE = "guides/residence-permit.md"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(SAMPLE_KB_DIR)


@pytest.fixture(scope="module")
def sample():  # type: ignore[no-untyped-def]
    return load_folder(SAMPLE_KB_DIR)


def invalid(call, *args) -> DocumentInvalid:  # type: ignore[no-untyped-def]
    with pytest.raises(DocumentInvalid) as exc:
        call(*args)
    return exc.value


# -- the sample ----------------------------------------------------------------------------
def test_sample_loads_without_errors(sample) -> None:  # type: ignore[no-untyped-def]
    assert [e.message for e in sample.errors] == []


def test_sample_has_exactly_one_guide_per_catalog_item(sample, catalog: Catalog) -> None:  # type: ignore[no-untyped-def]
    guides = Counter(d.item_id for d in sample.documents if d.kind == "guide")
    assert len(catalog.items) == 38
    assert set(guides) == set(catalog.items)
    assert set(guides.values()) == {1}


def test_sample_has_enough_faqs_and_policies(sample) -> None:  # type: ignore[no-untyped-def]
    kinds = Counter(d.kind for d in sample.documents)
    assert kinds["faq"] >= 150
    assert kinds["policy"] >= 5


def test_sample_document_ids_are_unique_and_faqs_belong_to_catalog_items(
    sample, catalog: Catalog
) -> None:  # type: ignore[no-untyped-def]
    ids = [d.id for d in sample.documents]
    assert len(ids) == len(set(ids))
    for d in sample.documents:
        assert set(d.items) <= set(catalog.items), d.id
        if d.kind == "faq":
            assert d.id == faq_id(d.item_id, d.data["question"])


def test_sample_guide_content(sample) -> None:  # type: ignore[no-untyped-def]
    guide = next(d for d in sample.documents if d.id == "guide:residence-permit")
    assert guide.title == "居住证申领"
    assert guide.data["window"].startswith("1楼A区")
    assert guide.data["materials"][0] == {
        "name": "居民身份证",
        "form": "原件",
        "count": 1,
        "note": "未满16周岁的可提交居民户口簿原件",
    }
    headings = [s["heading"] for s in guide.data["sections"]]
    assert headings[:2] == ["办理条件", "办理流程"]


def test_catalog_has_departments_with_windows(catalog: Catalog) -> None:
    assert catalog.department_of("social-card-lost").zone == "1楼B区"  # type: ignore[union-attr]
    assert catalog.department_of("no-such-item") is None
    assert catalog.centre["hotline"] == 12345


# -- a valid guide from the builder -------------------------------------------------------
def test_builder_guide_is_valid(catalog: Catalog) -> None:
    doc = parse_guide(make_guide_text(), GUIDE, catalog)
    assert doc.id == "guide:residence-permit"
    assert doc.kind == "guide"
    assert doc.item_id == "residence-permit"
    assert [m["form"] for m in doc.data["materials"]] == ["原件", "原件及复印件", "复印件"]
    assert doc.data["aliases"] == ["办居住证", "暂住证"]


def test_content_hash_follows_content(catalog: Catalog) -> None:
    a = parse_guide(make_guide_text(), GUIDE, catalog)
    b = parse_guide(make_guide_text(), GUIDE, catalog)
    c = parse_guide(make_guide_text(fee="每张20元"), GUIDE, catalog)
    assert a.content_hash == b.content_hash
    assert a.content_hash != c.content_hash


# -- guide errors: each names the file and the field -------------------------------------
def test_missing_front_matter(catalog: Catalog) -> None:
    e = invalid(parse_guide, "## 办理条件\n\n没有YAML头。\n", GUIDE, catalog)
    assert (e.source, e.field) == (GUIDE, "(front matter)")
    assert GUIDE in e.message


def test_front_matter_that_is_not_a_mapping(catalog: Catalog) -> None:
    e = invalid(parse_guide, "---\n- 一\n- 二\n---\n正文\n", GUIDE, catalog)
    assert e.field == "(front matter)"


def test_bad_yaml_in_faq_file_reports_the_line(catalog: Catalog) -> None:
    text = (
        "- item: residence-permit\n"  # line 1
        "  question: 居住证多久办好？\n"  # line 2
        "  answer: 15个工作日: 含邮寄\n"
    )  # line 3: a second ": " is not allowed
    e = invalid(parse_faq_file, text, "faq/x.yml", catalog)
    assert e.source == "faq/x.yml"
    assert e.field == "第3行"
    assert "YAML" in e.problem


def test_bad_yaml_in_guide_front_matter_reports_the_file_line(catalog: Catalog) -> None:
    """GIVEN a guide whose front matter has a YAML error on the ``fee:`` line
    THEN the error names that line's number in the file — the line the editor shows — not
    a number counted from after the opening '---'."""
    lines = make_guide_text().split("\n")
    fee_line = next(i for i, line in enumerate(lines) if line.startswith("fee:"))
    lines[fee_line] = "fee: 首次申领免费: 换领20元"
    e = invalid(parse_guide, "\n".join(lines), GUIDE, catalog)
    assert e.field == f"第{fee_line + 1}行"


@pytest.mark.parametrize(
    "key", ["id", "title", "department", "audience", "time_limit", "fee", "window", "phone"]
)
def test_missing_required_field(catalog: Catalog, key: str) -> None:
    e = invalid(parse_guide, make_guide_text(**{key: DROP}), GUIDE, catalog)
    assert (e.source, e.field) == (GUIDE, key)
    assert e.problem == "必填，不能为空"
    assert f"字段“{key}”" in e.message


def test_blank_required_field(catalog: Catalog) -> None:
    e = invalid(parse_guide, make_guide_text(phone="   "), GUIDE, catalog)
    assert e.field == "phone"


def test_unknown_id(catalog: Catalog) -> None:
    e = invalid(parse_guide, make_guide_text(id="no-such-item"), "guides/no-such-item.md", catalog)
    assert e.field == "id"
    assert "no-such-item" in e.problem and "catalog.yml" in e.problem


def test_file_name_must_match_id(catalog: Catalog) -> None:
    e = invalid(parse_guide, make_guide_text(), "guides/residence.md", catalog)
    assert e.field == "id"
    assert "residence-permit.md" in e.problem


def test_title_mismatch(catalog: Catalog) -> None:
    e = invalid(parse_guide, make_guide_text(title="办居住证"), GUIDE, catalog)
    assert e.field == "title"
    assert "居住证申领" in e.problem


def test_unknown_department(catalog: Catalog) -> None:
    e = invalid(parse_guide, make_guide_text(department="aliens"), GUIDE, catalog)
    assert e.field == "department"
    assert "aliens" in e.problem


def test_material_with_invalid_form_names_its_position(catalog: Catalog) -> None:
    materials = [material(), material(name="租赁合同", form="扫描件"), material(name="照片")]
    e = invalid(parse_guide, make_guide_text(materials=materials), GUIDE, catalog)
    assert (e.source, e.field) == (GUIDE, "materials[2].form")
    assert "原件" in e.problem


@pytest.mark.parametrize("count", [0, -1, "1", 1.5, True, None])
def test_material_count_must_be_a_positive_integer(catalog: Catalog, count: object) -> None:
    materials = [material(), material(), material(name="照片", count=count)]
    e = invalid(parse_guide, make_guide_text(materials=materials), GUIDE, catalog)
    assert e.field == "materials[3].count"
    assert e.problem == "份数应为正整数"


def test_material_without_name(catalog: Catalog) -> None:
    e = invalid(parse_guide, make_guide_text(materials=[material(name=DROP)]), GUIDE, catalog)
    assert e.field == "materials[1].name"


@pytest.mark.parametrize("materials", [[], DROP, "身份证"])
def test_materials_list_required(catalog: Catalog, materials: object) -> None:
    e = invalid(parse_guide, make_guide_text(materials=materials), GUIDE, catalog)
    assert e.field == "materials"


def test_missing_process_section(catalog: Catalog) -> None:
    text = make_guide_text(sections={"办理条件": "居住满半年。", "注意事项": "按期签注。"})
    e = invalid(parse_guide, text, GUIDE, catalog)
    assert (e.source, e.field) == (GUIDE, "## 办理流程")
    assert e.problem == "正文缺少这一节"


def test_legal_basis_required(catalog: Catalog) -> None:
    e = invalid(parse_guide, make_guide_text(legal_basis=[]), GUIDE, catalog)
    assert e.field == "legal_basis"


# -- policies and FAQs --------------------------------------------------------------------
def test_valid_policy(catalog: Catalog) -> None:
    doc = parse_policy(make_policy_text(), "policies/test.md", catalog)
    assert doc.id == "policy:policy-test"
    assert doc.items == ["residence-permit"]


def test_policy_with_unknown_item(catalog: Catalog) -> None:
    e = invalid(
        parse_policy,
        make_policy_text(items=["residence-permit", "moon-landing"]),
        "policies/test.md",
        catalog,
    )
    assert e.field == "items"
    assert "moon-landing" in e.problem


def test_policy_with_empty_body(catalog: Catalog) -> None:
    e = invalid(parse_policy, make_policy_text(body="太短"), "policies/test.md", catalog)
    assert e.field == "(body)"


def test_faq_with_unknown_item(catalog: Catalog) -> None:
    e = invalid(parse_faq_entry, faq_entry(item="moon-landing"), "faq/x.yml#3", catalog)
    assert (e.source, e.field) == ("faq/x.yml#3", "item")
    assert "moon-landing" in e.problem


@pytest.mark.parametrize("key", ["question", "answer"])
def test_faq_without_question_or_answer(catalog: Catalog, key: str) -> None:
    e = invalid(parse_faq_entry, faq_entry(**{key: DROP}), "faq/x.yml#1", catalog)
    assert e.field == key


def test_faq_id_ignores_whitespace_only(catalog: Catalog) -> None:
    a = parse_faq_entry(faq_entry(question="居住证 可以代领吗？"), "a", catalog)
    b = parse_faq_entry(faq_entry(question="居住证可以代领吗？"), "b", catalog)
    c = parse_faq_entry(faq_entry(question="居住证可以代办吗？"), "c", catalog)
    assert a.id == b.id != c.id
    assert a.id.startswith("faq:residence-permit:")


def test_parse_source_takes_faq_as_json(catalog: Catalog) -> None:
    source = '{"item": "hall-info", "question": "有母婴室吗？", "answer": "有，在1楼。"}'
    doc = parse_source("faq", source, "faq (API)", catalog)
    assert doc.item_id == "hall-info"
    assert doc.data["answer"] == "有，在1楼。"


def test_parse_source_rejects_unknown_kind(catalog: Catalog) -> None:
    e = invalid(parse_source, "notice", "x", "notice (API)", catalog)
    assert e.field == "kind"


# -- folders -------------------------------------------------------------------------------
def test_duplicate_faq_question_across_files(tmp_path: Path, catalog: Catalog) -> None:
    folder = copy_sample(tmp_path / "kb")
    question = next(
        d
        for d in load_folder(SAMPLE_KB_DIR, catalog).documents
        if d.kind == "faq" and d.item_id == "hall-info"
    ).data["question"]
    (folder / "faq" / "zz_extra.yml").write_text(
        yaml.safe_dump(
            [faq_entry(item="hall-info", question=question, answer="重复的一条。")],
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    result = load_folder(folder, catalog)
    assert len(result.errors) == 1
    e = result.errors[0]
    assert (e.source, e.field) == ("faq/zz_extra.yml#1", "question")
    assert "重复" in e.problem and "faq/" in e.problem
    # the first one is kept, the duplicate is not
    kept = [d for d in result.documents if d.data.get("question") == question]
    assert len(kept) == 1
    assert kept[0].data["answer"] != "重复的一条。"


def test_one_broken_file_does_not_stop_the_others(tmp_path: Path, catalog: Catalog) -> None:
    folder = copy_sample(tmp_path / "kb")
    materials = [material(), material(name="合同", form="扫描件")]
    (folder / GUIDE).write_text(make_guide_text(materials=materials), encoding="utf-8")
    (folder / "faq" / "zz_bad.yml").write_text(
        yaml.safe_dump(
            [faq_entry(item="nope"), faq_entry(question="居住证能加急吗？")], allow_unicode=True
        ),
        encoding="utf-8",
    )
    result = load_folder(folder, catalog)
    problems = {(e.source, e.field) for e in result.errors}
    assert problems == {(GUIDE, "materials[2].form"), ("faq/zz_bad.yml#1", "item")}
    ids = {d.id for d in result.documents}
    assert "guide:residence-permit" not in ids
    assert "guide:social-card-lost" in ids
    assert any(d.title == "居住证能加急吗？" for d in result.documents)
    assert len(result.documents) == len(load_folder(SAMPLE_KB_DIR, catalog).documents)


def test_broken_yaml_file_is_reported_and_others_load(tmp_path: Path, catalog: Catalog) -> None:
    folder = copy_sample(tmp_path / "kb")
    (folder / "faq" / "zz_bad.yml").write_text(
        "- item: hall-info\n  question: [未闭合\n", encoding="utf-8"
    )
    result = load_folder(folder, catalog)
    assert [e.source for e in result.errors] == ["faq/zz_bad.yml"]
    assert result.errors[0].field.startswith("第")
    assert any(d.id == "guide:hall-info" for d in result.documents)


def test_faq_file_that_is_a_single_mapping_is_reported(tmp_path: Path, catalog: Catalog) -> None:
    """GIVEN an FAQ file whose author forgot the leading "- " (a mapping, not a list)
    THEN loading reports that file instead of silently ignoring its question."""
    folder = copy_sample(tmp_path / "kb")
    (folder / "faq" / "zz_single.yml").write_text(
        yaml.safe_dump(faq_entry(), allow_unicode=True), encoding="utf-8"
    )
    result = load_folder(folder, catalog)
    assert [e.source for e in result.errors] == ["faq/zz_single.yml"]


def test_file_not_saved_as_utf8_is_reported_not_fatal(tmp_path: Path, catalog: Catalog) -> None:
    """GIVEN a guide saved by a Windows editor in GBK instead of UTF-8
    THEN load_folder reports that file and still returns every other document."""
    folder = copy_sample(tmp_path / "kb")
    path = folder / GUIDE
    path.write_bytes(path.read_text(encoding="utf-8").encode("gbk"))
    result = load_folder(folder, catalog)
    assert [e.source for e in result.errors] == [GUIDE]
    assert any(d.id == "guide:social-card-lost" for d in result.documents)


def test_catalog_with_unknown_department_fails_loudly(tmp_path: Path) -> None:
    folder = copy_sample(tmp_path / "kb")
    catalog_file = folder / "catalog.yml"
    catalog_file.write_text(
        catalog_file.read_text(encoding="utf-8") + "- {id: moon, name: 登月, department: nasa}\n",
        encoding="utf-8",
    )
    with pytest.raises(DocumentInvalid) as exc:
        Catalog.load(folder)
    assert exc.value.source == "catalog.yml"
    assert exc.value.field == "[38].department"
