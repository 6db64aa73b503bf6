"""Documents become chunks: what an answer may quote, what BM25 and the encoder see."""

from __future__ import annotations

import re

import pytest
from builders import faq_entry, make_guide_text, make_policy_text, policy_article

from banshi.settings import SAMPLE_KB_DIR
from knowledge_base.chunking import DENSE_CHARS, MAX_CHUNK_CHARS, chunk_document
from knowledge_base.source import Catalog, parse_faq_entry, parse_guide, parse_policy

ARTICLE = re.compile(r"第[一二三四五六七八九十百零〇\d]+条")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(SAMPLE_KB_DIR)


def test_guide_chunks_cover_item_materials_facts_basis_and_sections(catalog: Catalog) -> None:
    doc = parse_guide(make_guide_text(), "guides/residence-permit.md", catalog)
    chunks = chunk_document(doc, catalog)
    sections = [c.section for c in chunks]
    assert sections == ["事项", "申请材料", "办理时限与收费", "政策依据", "办理条件", "办理流程"]
    assert {c.doc_id for c in chunks} == {"guide:residence-permit"}
    assert {c.item_id for c in chunks} == {"residence-permit"}
    assert chunks[0].display == "居住证申领（公安分局）"
    assert "就业或就读证明（复印件2份，三者提供其一）" in chunks[1].display
    assert "办理窗口：1楼A区 A05—A06" in chunks[2].display
    assert all(len(c.dense) <= DENSE_CHARS for c in chunks)


def test_long_guide_section_is_split_at_sentences(catalog: Catalog) -> None:
    sentence = "居住证每年签注一次，有效期内连续居住的，可在小程序或窗口办理签注，不收费。"
    text = make_guide_text(sections={"办理条件": "居住满半年。", "办理流程": sentence * 20})
    chunks = [
        c
        for c in chunk_document(parse_guide(text, "guides/residence-permit.md", catalog), catalog)
        if c.section == "办理流程"
    ]
    assert len(chunks) > 1
    assert all(len(c.display) <= MAX_CHUNK_CHARS for c in chunks)
    assert all(c.display.endswith("。") for c in chunks)
    assert "".join(c.display for c in chunks) == sentence * 20


def test_faq_has_one_chunk_per_question_variant(catalog: Catalog) -> None:
    doc = parse_faq_entry(
        faq_entry(variants=["居住证能代领不", "别人能帮我领居住证吗"]), "faq/x.yml#1", catalog
    )
    chunks = chunk_document(doc, catalog)
    assert [c.dense for c in chunks] == [
        "居住证可以请亲戚代领吗？",
        "居住证能代领不",
        "别人能帮我领居住证吗",
    ]
    assert {c.display for c in chunks} == {doc.data["answer"]}
    assert {c.section for c in chunks} == {"常见问题"}


def _policy_chunks(catalog: Catalog, body: str) -> list[str]:
    doc = parse_policy(make_policy_text(body=body), "policies/test.md", catalog)
    return [c.display for c in chunk_document(doc, catalog)]


def _articles(labels: str, separator: str) -> str:
    return separator.join(f"{labels.format(n=n)} {policy_article(n)}" for n in ("一", "二", "三"))


def test_policy_articles_on_consecutive_lines_are_split_per_article(catalog: Catalog) -> None:
    chunks = _policy_chunks(catalog, _articles("第{n}条", "\n"))
    assert [ARTICLE.findall(c) for c in chunks] == [["第一条"], ["第二条"], ["第三条"]]


def test_policy_articles_separated_by_blank_lines_give_no_empty_chunks(catalog: Catalog) -> None:
    """GIVEN a policy in plain Markdown: articles ``第一条 …`` separated by blank lines
    THEN there is one chunk per article and no empty chunk (an empty chunk can be quoted
    as an answer that says "根据《…》：" and nothing more)."""
    chunks = _policy_chunks(catalog, _articles("第{n}条", "\n\n"))
    assert [c for c in chunks if not c.strip()] == []
    assert [ARTICLE.findall(c) for c in chunks] == [["第一条"], ["第二条"], ["第三条"]]


def test_policy_in_the_sample_style_is_split_per_article(catalog: Catalog) -> None:
    """GIVEN a policy written like the sample policies, with bold article labels
    (``**第一条** …``, see sample/policies/*.md)
    THEN each article becomes its own chunk, as the README promises
    ("按“第X条”或段落切分检索"), rather than articles being merged and cut by length."""
    chunks = _policy_chunks(catalog, _articles("**第{n}条**", "\n\n"))
    assert [ARTICLE.findall(c) for c in chunks] == [["第一条"], ["第二条"], ["第三条"]]
