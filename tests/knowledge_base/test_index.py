"""KnowledgeIndex with the hashing encoder: incremental sync, removal, save and load."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from banshi.settings import SAMPLE_KB_DIR
from knowledge_base.encoders import HashingEncoder
from knowledge_base.index import KnowledgeIndex
from knowledge_base.source import Catalog, Document, load_folder
from knowledge_base.text import TextPipeline

ITEMS = {"residence-permit", "social-card-lost", "hpf-withdraw-rent"}
QUESTIONS = ["居住证要带什么材料", "社保卡丢了怎么办", "租房提取公积金", "暂住证多久能办好"]


class CountingEncoder(HashingEncoder):
    """The hashing encoder, remembering every passage it was asked to embed."""

    def __init__(self) -> None:
        self.passages: list[str] = []

    def encode_passages(self, texts: list[str]) -> np.ndarray:  # type: ignore[override]
        self.passages.extend(texts)
        return self._encode(texts)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(SAMPLE_KB_DIR)


@pytest.fixture(scope="module")
def documents(catalog: Catalog) -> list[Document]:
    docs = [d for d in load_folder(SAMPLE_KB_DIR, catalog).documents if d.item_id in ITEMS]
    assert {d.kind for d in docs} == {"guide", "faq", "policy"}
    return docs


@pytest.fixture(scope="module")
def text(shared_text: TextPipeline) -> TextPipeline:
    return shared_text


@pytest.fixture
def encoder() -> CountingEncoder:
    return CountingEncoder()


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
    text: TextPipeline,
    documents: list[Document],
    catalog: Catalog,
) -> Path:
    """The documents indexed once and saved; each test loads its own copy."""
    idx = KnowledgeIndex(HashingEncoder(), text)
    report = idx.sync(documents, catalog)
    assert report.added == len(documents)
    folder = tmp_path_factory.mktemp("built-index")
    idx.save(folder)
    return folder


@pytest.fixture
def index(built: Path, encoder: CountingEncoder, text: TextPipeline) -> KnowledgeIndex:
    idx = KnowledgeIndex.load(built, encoder, text)
    assert idx is not None
    return idx


def edited(doc: Document, **data: object) -> Document:
    new = dataclasses.replace(doc, data=copy.deepcopy(doc.data))
    new.data.update(data)
    return new


def lexical(idx: KnowledgeIndex, question: str) -> list[tuple[str, float]]:
    """(item, score) of the BM25 hits for a question, best first."""
    tokens = idx.text.tokens(idx.text.normalize(question))
    return [(idx.chunks[cid].item_id, round(score, 6)) for cid, score in idx.bm25.search(tokens)]


def dense(idx: KnowledgeIndex, question: str) -> list[tuple[str, float]]:
    """(item, cosine) of the nearest chunks for a question, best first."""
    vec = idx.encoder.encode_queries([idx.text.normalize(question)])[0]
    return [(idx.chunks[cid].item_id, round(score, 5)) for cid, score in idx.dense_search(vec, 10)]


def test_sync_adds_every_document(index: KnowledgeIndex, documents: list[Document]) -> None:
    assert set(index.doc_chunks) == {d.id for d in documents}
    assert len(index) == sum(len(v) for v in index.doc_chunks.values())
    assert index.vectors.ntotal == len(index) == len(index.bm25)
    assert lexical(index, "社保卡丢了怎么办")[0][0] == "social-card-lost"
    assert dense(index, "社会保障卡挂失与补换")[0][0] == "social-card-lost"


def test_sync_with_nothing_changed_embeds_nothing(
    index: KnowledgeIndex, encoder: CountingEncoder, documents: list[Document], catalog: Catalog
) -> None:
    report = index.sync(documents, catalog)
    assert not report.changed
    assert (report.unchanged, report.chunks_embedded) == (len(documents), 0)
    assert encoder.passages == []


def test_edited_document_is_re_embedded_and_only_its_chunks_change(
    index: KnowledgeIndex, encoder: CountingEncoder, documents: list[Document], catalog: Catalog
) -> None:
    """GIVEN an index of three items' documents
    WHEN the 办理流程 section of one guide is rewritten
    THEN only that guide is updated, only the rewritten section's text is embedded again,
    and every other document keeps its chunks and vectors."""
    guide = next(d for d in documents if d.id == "guide:residence-permit")
    sections = copy.deepcopy(guide.data["sections"])
    process = next(s for s in sections if s["heading"] == "办理流程")
    process["text"] = "全程网办：在“青禾办”小程序提交申请，审核通过后邮寄到家。"
    new_guide = edited(guide, sections=sections)
    others = {d: list(ids) for d, ids in index.doc_chunks.items() if d != guide.id}
    other_vectors = {cid: index.vector(cid).copy() for ids in others.values() for cid in ids}
    old_guide_ids = set(index.doc_chunks[guide.id])

    report = index.sync([new_guide if d.id == guide.id else d for d in documents], catalog)

    assert (report.added, report.updated, report.removed) == (0, 1, 0)
    assert report.unchanged == len(documents) - 1
    assert report.chunks_embedded == 1
    assert len(encoder.passages) == 1
    assert "青禾办" in encoder.passages[0]
    assert {d: ids for d, ids in index.doc_chunks.items() if d != guide.id} == others
    for cid, vec in other_vectors.items():
        np.testing.assert_array_equal(index.vector(cid), vec)
    new_ids = set(index.doc_chunks[guide.id])
    assert not new_ids & old_guide_ids
    assert any("全程网办" in index.chunks[c].display for c in new_ids)
    assert not any(index.chunks.get(c) for c in old_guide_ids)
    assert index.vectors.ntotal == len(index)


def test_edited_faq_answer_reuses_the_question_vector(
    index: KnowledgeIndex, encoder: CountingEncoder, documents: list[Document], catalog: Catalog
) -> None:
    faq = next(d for d in documents if d.kind == "faq")
    new_faq = edited(faq, answer="新的答案：请到1楼B区咨询。")
    report = index.sync([new_faq if d.id == faq.id else d for d in documents], catalog)
    assert report.updated == 1
    assert report.chunks_embedded == 0  # the FAQ's dense texts are its questions, unchanged
    assert encoder.passages == []
    displays = {index.chunks[c].display for c in index.doc_chunks[faq.id]}
    assert displays == {"新的答案：请到1楼B区咨询。"}


def test_deleted_document_leaves_bm25_and_faiss(
    index: KnowledgeIndex, documents: list[Document], catalog: Catalog
) -> None:
    guide_ids = set(index.doc_chunks["guide:hpf-withdraw-rent"])
    before = index.vectors.ntotal
    remaining = [d for d in documents if d.id != "guide:hpf-withdraw-rent"]

    report = index.sync(remaining, catalog)

    assert (report.removed, report.added, report.updated) == (1, 0, 0)
    assert "guide:hpf-withdraw-rent" not in index.doc_chunks
    assert index.vectors.ntotal == before - len(guide_ids) == len(index)
    tokens = index.text.tokens(index.text.normalize("住房公积金提取（租房） 申请材料"))
    assert not {cid for cid, _ in index.bm25.search(tokens, 1000)} & guide_ids
    query = index.encoder.encode_queries([index.text.normalize("住房公积金提取（租房）")])[0]
    assert not {cid for cid, _ in index.dense_search(query, 1000)} & guide_ids
    # the item is still known through its FAQs
    assert any(c.item_id == "hpf-withdraw-rent" for c in index.chunks.values())


def test_save_then_load_gives_the_same_results(
    index: KnowledgeIndex,
    tmp_path: Path,
    text: TextPipeline,
    documents: list[Document],
    catalog: Catalog,
) -> None:
    index.save(tmp_path / "idx")
    loaded = KnowledgeIndex.load(tmp_path / "idx", HashingEncoder(), text)
    assert loaded is not None
    assert loaded.doc_hashes == index.doc_hashes
    assert loaded.doc_chunks == index.doc_chunks
    assert len(loaded) == len(index) == loaded.vectors.ntotal
    for q in QUESTIONS:
        assert lexical(loaded, q) == lexical(index, q)
        assert dense(loaded, q) == dense(index, q)
    # a loaded index keeps syncing incrementally
    assert loaded.sync(documents, catalog).chunks_embedded == 0


def test_save_leaves_only_the_newest_generation(
    index: KnowledgeIndex, tmp_path: Path, documents: list[Document], catalog: Catalog
) -> None:
    folder = tmp_path / "idx"
    index.save(folder)
    index.sync(documents[1:], catalog)
    index.save(folder)
    index.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        ".lock",  # the folder lock that API processes sharing the folder take turns on
        "CURRENT",
        "manifest-3.json",
        "vectors-3.faiss",
    ]
    assert (folder / "CURRENT").read_text() == "3"
    assert (
        len(json.loads((folder / "manifest-3.json").read_text())["doc_hashes"])
        == len(documents) - 1
    )


def test_load_of_an_absent_folder_is_none(tmp_path: Path, text: TextPipeline) -> None:
    assert KnowledgeIndex.load(tmp_path / "nothing-here", HashingEncoder(), text) is None


def _saved(index: KnowledgeIndex, folder: Path) -> Path:
    index.save(folder)
    return folder


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda f: (f / "CURRENT").write_text("7"), id="current-points-to-missing"),
        pytest.param(lambda f: (f / "CURRENT").write_text("abc"), id="current-garbage"),
        pytest.param(lambda f: (f / "vectors-1.faiss").unlink(), id="vectors-missing"),
        pytest.param(
            lambda f: (f / "vectors-1.faiss").write_bytes(b"\x00garbage" * 10), id="vectors-garbage"
        ),
        pytest.param(
            lambda f: (f / "manifest-1.json").write_bytes(b'{"format": 1, "enc'),
            id="manifest-truncated",
        ),
        pytest.param(
            lambda f: (f / "manifest-1.json").write_bytes(b"\xff\xfe\x00garbage"),
            id="manifest-garbage-bytes",
        ),
    ],
)
def test_damaged_save_loads_as_none(
    index: KnowledgeIndex, tmp_path: Path, text: TextPipeline, damage
) -> None:  # type: ignore[no-untyped-def]
    folder = _saved(index, tmp_path / "idx")
    damage(folder)
    assert KnowledgeIndex.load(folder, HashingEncoder(), text) is None


@pytest.mark.parametrize(
    "manifest",
    [
        pytest.param([], id="json-list"),
        pytest.param({"format": 1, "encoder": "hashing", "dim": 256}, id="missing-keys"),
    ],
)
def test_structurally_wrong_manifest_loads_as_none(
    index: KnowledgeIndex, tmp_path: Path, text: TextPipeline, manifest: object
) -> None:
    """GIVEN a save whose manifest is valid JSON of the wrong shape (hand-edited, or
    written by an incompatible build)
    THEN load reports "no usable index" (None) so that start-up rebuilds, instead of
    raising and keeping the knowledge base down."""
    folder = _saved(index, tmp_path / "idx")
    (folder / "manifest-1.json").write_text(json.dumps(manifest))
    assert KnowledgeIndex.load(folder, HashingEncoder(), text) is None


def test_manifest_and_vectors_out_of_step_load_as_none(
    index: KnowledgeIndex,
    tmp_path: Path,
    text: TextPipeline,
    documents: list[Document],
    catalog: Catalog,
) -> None:
    folder = _saved(index, tmp_path / "idx")
    stale_vectors = (folder / "vectors-1.faiss").read_bytes()
    index.sync(documents[:3], catalog)
    index.save(folder)
    (folder / "vectors-2.faiss").write_bytes(stale_vectors)
    assert KnowledgeIndex.load(folder, HashingEncoder(), text) is None


def test_index_built_with_another_encoder_is_not_loaded(
    index: KnowledgeIndex, tmp_path: Path, text: TextPipeline
) -> None:
    folder = _saved(index, tmp_path / "idx")

    class OtherEncoder(HashingEncoder):
        name = "other"

    assert KnowledgeIndex.load(folder, OtherEncoder(), text) is None
