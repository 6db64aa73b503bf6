"""The KnowledgeBase service (hashing encoder): start-up, revisions, storing documents."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from builders import copy_sample, faq_entry, faq_json, make_guide_text, material
from sqlalchemy import func, select
from support import build_settings

from banshi.db import Database
from banshi.errors import NotFound
from banshi.settings import Settings
from knowledge_base import service
from knowledge_base.errors import DocumentInvalid, KnowledgeBaseNotReady
from knowledge_base.models import KbDocument, KbState
from knowledge_base.service import KnowledgeBase
from knowledge_base.text import TextPipeline

NEW_FAQ = faq_entry(question="居住证可以请亲戚代领吗？")


def _count_documents(kb: KnowledgeBase) -> int:
    with kb.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(KbDocument)) or 0)


def _revision(kb: KnowledgeBase) -> int:
    with kb.db.session() as s:
        return int(s.scalar(select(KbState.revision)) or 0)


def test_asking_before_start_is_not_ready(settings: Settings, db: Database) -> None:
    kb = KnowledgeBase(settings, db)
    assert kb.ready is False
    assert kb.health() == {"status": "down", "error": "not loaded"}
    with pytest.raises(KnowledgeBaseNotReady) as exc:
        kb.ask("社保卡丢了怎么办")
    assert exc.value.status_code == 503
    assert exc.value.message == "知识库正在准备中，请稍后再试。"


def test_start_imports_the_sample_into_an_empty_database(hashing_kb: KnowledgeBase) -> None:
    assert hashing_kb.ready
    assert _count_documents(hashing_kb) == len(hashing_kb.docs) == 304
    assert hashing_kb.health()["chunks"] == len(hashing_kb.index)  # type: ignore[arg-type]


def test_restart_over_the_saved_index_embeds_nothing(
    hashing_kb: KnowledgeBase, hashing_encoder, shared_text
) -> None:  # type: ignore[no-untyped-def]
    again = KnowledgeBase(
        hashing_kb.settings, hashing_kb.db, encoder=hashing_encoder, text=shared_text
    )
    report = again.start()
    assert (report.added, report.updated, report.removed, report.chunks_embedded) == (0, 0, 0, 0)
    assert report.unchanged == 304


SMALL_SET = {
    "residence-permit",
    "social-card-lost",
    "social-card-apply",
    "disability-card",
    "hall-info",
    "id-card-renewal",
}


@pytest.fixture
def small_kb_settings(tmp_path: Path) -> Settings:
    """Settings over a copy of the sample reduced to six guides (quick to index from
    scratch) and an empty data directory."""
    source = copy_sample(tmp_path / "kb")
    for extra in [
        *source.glob("faq/*.yml"),
        *source.glob("policies/*.md"),
        *(g for g in source.glob("guides/*.md") if g.stem not in SMALL_SET),
    ]:
        extra.unlink()
    return build_settings(tmp_path / "data", kb_source_dir=source)


def test_damaged_saved_index_is_rebuilt_on_start(
    small_kb_settings: Settings, hashing_encoder, shared_text
) -> None:  # type: ignore[no-untyped-def]
    s = small_kb_settings
    db = Database(s.resolved_database_url)
    db.upgrade()
    try:
        first = KnowledgeBase(s, db, encoder=hashing_encoder, text=shared_text).start()
        assert first.added == len(SMALL_SET)
        (s.kb_index_dir / "CURRENT").write_text("99")
        again = KnowledgeBase(s, db, encoder=hashing_encoder, text=shared_text)
        report = again.start()
        assert (report.added, report.unchanged) == (len(SMALL_SET), 0)
        assert again.ask("社会保障卡挂失与补换").item_id == "social-card-lost"
        assert (s.kb_index_dir / "CURRENT").read_text() == "100"
    finally:
        db.dispose()


def test_restarted_knowledge_base_understands_questions_like_the_one_that_built_it(
    small_kb_settings: Settings, hashing_encoder, shared_text
) -> None:  # type: ignore[no-untyped-def]
    """GIVEN a knowledge base built from scratch (its tokenizer learnt every guide's title and
    aliases while indexing), and the same data opened by a new process — a new text
    pipeline — from the saved index
    WHEN both are asked the same questions
    THEN both tokenise and answer them the same way: a restart must not change answers."""
    s = small_kb_settings
    db = Database(s.resolved_database_url)
    db.upgrade()
    try:
        built = KnowledgeBase(s, db, encoder=hashing_encoder, text=shared_text)
        built.start()  # builds from scratch: every document is "changed"
        restarted = KnowledgeBase(s, db, encoder=hashing_encoder, text=TextPipeline())
        assert restarted.start().chunks_embedded == 0
        for q in ["暂住证怎么办", "juzhuzheng zenme ban", "补办社保卡", "残疾人证怎么办"]:
            n = built.text.normalize(q)
            assert restarted.text.normalize(q) == n, q
            assert restarted.text.tokens(n) == built.text.tokens(n), q
            a, b = built.ask(q), restarted.ask(q)
            assert (b.item_id, b.confidence) == (a.item_id, a.confidence), q
    finally:
        db.dispose()


def test_save_document_is_served_at_once_and_bumps_the_revision(hashing_kb: KnowledgeBase) -> None:
    revision = _revision(hashing_kb)
    doc = hashing_kb.save_document("faq", faq_json(**NEW_FAQ), "tester")
    assert _revision(hashing_kb) == revision + 1
    assert hashing_kb.get_document(doc.id).data["answer"] == NEW_FAQ["answer"]
    answer = hashing_kb.ask(NEW_FAQ["question"])
    assert answer.item_id == "residence-permit"
    assert answer.sources[0]["id"] == doc.id
    assert "代领人" in answer.answer


def test_saving_the_same_document_again_changes_nothing(hashing_kb: KnowledgeBase) -> None:
    hashing_kb.save_document("faq", faq_json(**NEW_FAQ), "tester")
    revision = _revision(hashing_kb)
    hashing_kb.save_document("faq", faq_json(**NEW_FAQ), "tester")
    assert _revision(hashing_kb) == revision


def test_replace_with_another_id_is_refused(hashing_kb: KnowledgeBase) -> None:
    doc = hashing_kb.save_document("faq", faq_json(**NEW_FAQ), "tester")
    other = faq_entry(question="完全不同的问题？")
    with pytest.raises(DocumentInvalid) as exc:
        hashing_kb.save_document("faq", faq_json(**other), "tester", expected_id=doc.id)
    assert exc.value.field == "question"
    assert doc.id in exc.value.problem


def test_delete_document(hashing_kb: KnowledgeBase) -> None:
    doc = hashing_kb.save_document("faq", faq_json(**NEW_FAQ), "tester")
    hashing_kb.delete_document(doc.id, "tester")
    with pytest.raises(NotFound):
        hashing_kb.get_document(doc.id)
    assert doc.id not in hashing_kb.index.doc_chunks  # type: ignore[union-attr]
    with pytest.raises(NotFound) as exc:
        hashing_kb.delete_document(doc.id, "tester")
    assert exc.value.message == "没有找到这份文档。"


def test_another_process_change_is_picked_up(
    hashing_kb: KnowledgeBase, hashing_encoder, shared_text, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """GIVEN two serving processes on one database
    WHEN one of them stores a new FAQ
    THEN the other notices the revision change on its next question and answers it."""
    other = KnowledgeBase(
        hashing_kb.settings,
        Database(hashing_kb.settings.resolved_database_url),
        encoder=hashing_encoder,
        text=shared_text,
    )
    other.start()
    try:
        doc = hashing_kb.save_document("faq", faq_json(**NEW_FAQ), "tester")
        assert doc.id not in other.docs
        monkeypatch.setattr(service, "REVISION_CHECK_SECONDS", 0.0)
        answer = other.ask(NEW_FAQ["question"])
        assert doc.id in other.docs
        assert other.revision == hashing_kb.revision
        assert answer.sources[0]["id"] == doc.id
    finally:
        other.db.dispose()


def test_import_folder_keeps_the_previous_version_of_a_broken_file(
    hashing_kb: KnowledgeBase, tmp_path: Path
) -> None:
    """GIVEN a source folder where one guide was edited validly and another was broken
    WHEN it is imported
    THEN the valid edit is served, the broken file is reported and its old version stays."""
    folder = copy_sample(tmp_path / "kb")
    lost = folder / "guides" / "social-card-lost.md"
    lost.write_text(
        lost.read_text(encoding="utf-8").replace("8123 4522", "8123 9999"), encoding="utf-8"
    )
    (folder / "guides" / "residence-permit.md").write_text(
        make_guide_text(materials=[material(form="传真件")]), encoding="utf-8"
    )
    old_permit = hashing_kb.get_document("guide:residence-permit").data

    result = hashing_kb.import_folder(folder, user="tester")

    assert [(e.source, e.field) for e in result.errors] == [
        ("guides/residence-permit.md", "materials[1].form")
    ]
    assert hashing_kb.get_document("guide:social-card-lost").data["phone"] == "8123 9999"
    assert hashing_kb.get_document("guide:residence-permit").data == old_permit
    with hashing_kb.db.session() as s:
        assert s.get(KbDocument, "guide:social-card-lost").version == 2  # type: ignore[union-attr]


def test_question_is_cut_to_the_configured_length(hashing_kb: KnowledgeBase) -> None:
    answer = hashing_kb.ask("社保卡丢了怎么办" + "。" * 1000)
    assert len(answer.question) == 500
    assert answer.notice == "您的问题较长，只按前500个字理解。"


def test_start_fails_clearly_with_an_unknown_encoder(settings: Settings, db: Database) -> None:
    kb = KnowledgeBase(settings.model_copy(update={"kb_encoder": "bogus"}), db)
    with pytest.raises(Exception, match="unknown encoder 'bogus'"):
        kb.start()
    assert kb.health()["status"] == "down"
    assert "bogus" in kb.health()["error"]


@pytest.mark.postgres
def test_knowledge_base_on_postgres(
    pg_url: str, tmp_path: Path, hashing_template: Path, hashing_encoder, shared_text
) -> None:  # type: ignore[no-untyped-def]
    """GIVEN an empty PostgreSQL database (and the saved hashing index of the sample)
    WHEN the knowledge base starts, stores, replaces and deletes documents
    THEN it behaves as on SQLite, with the revision row kept in PostgreSQL."""
    s = build_settings(tmp_path / "data", database_url=pg_url)
    shutil.copytree(hashing_template / "kb_index", s.kb_index_dir)
    db = Database(pg_url)
    db.upgrade()
    try:
        kb = KnowledgeBase(s, db, encoder=hashing_encoder, text=shared_text)
        report = kb.start()
        assert report.chunks_embedded == 0  # same documents as the saved index
        assert _count_documents(kb) == 304
        assert kb.ask("社保卡丢了怎么办").item_id == "social-card-lost"
        doc = kb.save_document("faq", faq_json(**NEW_FAQ), "tester")
        changed = dict(NEW_FAQ, answer="可以，委托书加代领人身份证。")
        kb.save_document("faq", faq_json(**changed), "tester", expected_id=doc.id)
        assert kb.ask(NEW_FAQ["question"]).answer.startswith("可以，委托书加代领人身份证。")
        with db.session() as sess:
            assert sess.get(KbDocument, doc.id).version == 2  # type: ignore[union-attr]
        kb.delete_document(doc.id, "tester")
        assert _count_documents(kb) == 304
        assert _revision(kb) == 4  # bootstrap import, create, replace, delete
    finally:
        db.dispose()


def test_questions_while_an_administrator_edits_never_fail(hashing_kb: KnowledgeBase) -> None:
    """GIVEN a resident asking over and over while an administrator adds and deletes an FAQ
    THEN every question is answered or refused normally: no question sees the chunks of a
    document that the document map no longer holds (a half-synced index)."""
    import threading

    errors: list[BaseException] = []
    answers: list[str | None] = []
    stop = threading.Event()

    def resident() -> None:
        while not stop.is_set():
            try:
                answers.append(hashing_kb.ask("居住证可以请亲戚代领吗").item_id)
            except BaseException as exc:  # recorded, then the test fails on it
                errors.append(exc)
                return

    thread = threading.Thread(target=resident)
    thread.start()
    try:
        for _ in range(6):
            doc = hashing_kb.save_document("faq", faq_json(**NEW_FAQ), "tester")
            hashing_kb.delete_document(doc.id, "tester")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert errors == []
    assert answers, "the resident thread asked nothing"
