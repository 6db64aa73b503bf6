"""The incremental BM25 index."""

from __future__ import annotations

import pytest

from knowledge_base.bm25 import BM25Index

DOCS: dict[int, list[str]] = {
    1: ["社保卡", "挂失", "补办", "窗口"],
    2: ["居住证", "申领", "材料", "身份证"],
    3: ["公积金", "租房", "提取", "材料"],
    4: ["身份证", "换领", "过期", "材料", "材料"],
    5: ["结婚", "登记", "户口簿", "身份证"],
}
QUERIES = [
    ["身份证", "材料"],
    ["社保卡", "补办"],
    ["公积金", "提取", "租房"],
    ["材料"],
    ["结婚", "社保卡", "不存在的词"],
]


def build(docs: dict[int, list[str]]) -> BM25Index:
    index = BM25Index()
    for cid, tokens in docs.items():
        index.add(cid, tokens)
    return index


def test_chunk_with_the_query_term_ranks_first() -> None:
    index = build(DOCS)
    assert index.search(["公积金"])[0][0] == 3
    assert index.search(["社保卡", "补办"])[0][0] == 1
    assert [cid for cid, _ in index.search(["公积金"])] == [3]


def test_more_matching_terms_rank_higher() -> None:
    ranked = [cid for cid, _ in build(DOCS).search(["身份证", "换领", "过期"])]
    assert ranked[0] == 4
    assert set(ranked) == {2, 4, 5}


def test_repeated_query_terms_count_once() -> None:
    index = build(DOCS)
    assert index.search(["公积金", "公积金", "公积金"]) == index.search(["公积金"])


def test_unknown_terms_and_empty_index_give_nothing() -> None:
    assert build(DOCS).search(["火星"]) == []
    assert BM25Index().search(["社保卡"]) == []
    assert build(DOCS).search([]) == []


def test_top_k_limits_results() -> None:
    assert len(build(DOCS).search(["材料"], top_k=2)) == 2


def test_removed_chunk_is_gone_from_results() -> None:
    index = build(DOCS)
    index.remove(3, DOCS[3])
    assert index.search(["公积金"]) == []
    assert 3 not in [cid for cid, _ in index.search(["材料"])]
    assert len(index) == 4
    assert "公积金" not in index.vocabulary
    assert index.document_frequency("材料") == 2


def test_remove_without_tokens_and_twice_is_safe() -> None:
    index = build(DOCS)
    index.remove(1)
    index.remove(1)
    index.remove(99)
    assert index.search(["社保卡"]) == []
    assert len(index) == 4


def test_idf_is_higher_for_rarer_terms() -> None:
    index = build(DOCS)
    assert index.idf("公积金") == index.idf("换领")  # both in one chunk
    assert index.idf("换领") > index.idf("材料") > 0  # 材料 is in three chunks
    # a term never seen has the highest IDF of all
    assert index.idf("从未出现") > index.idf("公积金")


def test_query_weight_is_the_sum_of_distinct_idfs() -> None:
    index = build(DOCS)
    assert index.query_weight(["公积金", "材料", "公积金"]) == pytest.approx(
        index.idf("公积金") + index.idf("材料")
    )


def test_incremental_changes_match_a_fresh_build() -> None:
    """GIVEN an index that was changed step by step (adds, removals, a chunk re-added with
    other tokens, queried in between so cached postings exist)
    THEN it scores every query exactly like an index built fresh from the final chunks."""
    incremental = build(DOCS)
    for q in QUERIES:
        incremental.search(q)  # freeze postings before changing them
    incremental.add(6, ["社保卡", "激活", "密码"])
    incremental.remove(2, DOCS[2])
    incremental.search(["材料"])
    incremental.add(4, ["身份证", "临时", "身份证"])  # replaces chunk 4
    incremental.add(7, ["材料", "居住证"])
    incremental.remove(6, ["社保卡", "激活", "密码"])

    final = {
        1: DOCS[1],
        3: DOCS[3],
        4: ["身份证", "临时", "身份证"],
        5: DOCS[5],
        7: ["材料", "居住证"],
    }
    fresh = build(final)
    assert len(incremental) == len(fresh) == 5
    assert incremental.vocabulary == fresh.vocabulary
    for q in [*QUERIES, ["临时"], ["激活"], ["居住证"]]:
        got = dict(incremental.search(q))
        want = dict(fresh.search(q))
        assert got.keys() == want.keys(), q
        for cid, score in want.items():
            assert got[cid] == pytest.approx(score, rel=1e-6), (q, cid)
        assert incremental.query_weight(q) == pytest.approx(fresh.query_weight(q))
