"""The knowledge base as the rest of banshi sees it: ask a question, manage documents.

Documents live in the database; the index under the data directory is derived from them.
On start the saved index is loaded and brought up to date by re-embedding only changed
documents. Every serving process checks a revision counter (at most once a second) and
catches up when another process has changed a document.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from banshi.db import Database
from banshi.errors import Conflict, NotFound
from banshi.settings import Settings
from knowledge_base.answer import Answer, compose_answer, not_found
from knowledge_base.confidence import Calibration, load_calibration
from knowledge_base.encoders import Encoder, make_encoder
from knowledge_base.errors import KnowledgeBaseNotReady
from knowledge_base.index import KnowledgeIndex, SyncReport
from knowledge_base.models import KbDocument, KbState
from knowledge_base.retrieval import Retrieval, retrieve
from knowledge_base.source import Catalog, Document, Kind, LoadResult, load_folder, parse_source
from knowledge_base.text import TextPipeline

log = logging.getLogger(__name__)
REVISION_CHECK_SECONDS = 1.0
CANDIDATES = 5


def _to_document(row: KbDocument) -> Document:
    return Document(
        id=row.id,
        kind=cast(Kind, row.kind),
        item_id=row.item_id,
        title=row.title,
        data=row.data,
        source=row.source,
        items=list(row.items),
    )


class KnowledgeBase:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        encoder: Encoder | None = None,
        text: TextPipeline | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.catalog = Catalog.load(settings.kb_source_dir)
        self.text = text or TextPipeline()
        self._encoder = encoder
        self.index: KnowledgeIndex | None = None
        self.docs: dict[str, Document] = {}
        self._faq_by_item: dict[str, list[Document]] = {}
        # item id -> its names (title, aliases), each as the set of its words
        self.aliases: dict[str, list[frozenset[str]]] = {}
        self.revision = -1
        self._checked_at = 0.0
        self._write_lock = threading.Lock()
        self.calibration: Calibration | None = None
        self.calibrated = False
        self.error = ""

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = make_encoder(self.settings.kb_encoder)
        return self._encoder

    @property
    def ready(self) -> bool:
        return self.index is not None

    def start(self) -> SyncReport:
        """Load documents and index; import the source folder when the database is empty."""
        try:
            with self.db.session() as s:
                empty = not s.scalar(select(func.count()).select_from(KbDocument))
            if empty:
                result = self.import_folder(
                    self.settings.kb_source_dir, user="bootstrap", sync=False
                )
                for e in result.errors:
                    log.warning("%s", e.detail)
            self.calibration, self.calibrated = load_calibration(self.encoder.name)
            if not self.calibrated:
                log.warning(
                    "encoder %s has no calibration: answers use a conservative "
                    "default; run `banshi kb calibrate`",
                    self.encoder.name,
                )
            self.index = self.index or KnowledgeIndex.load(
                self.settings.kb_index_dir, self.encoder, self.text
            )
            return self._sync()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            raise

    def _sync(self) -> SyncReport:
        with self.db.session() as s:
            revision = self._current_revision(s)
            docs = {r.id: _to_document(r) for r in s.scalars(select(KbDocument))}
        index = self.index or KnowledgeIndex(self.encoder, self.text)
        faq: dict[str, list[Document]] = {}
        for d in docs.values():
            if d.kind == "faq" and d.item_id:
                faq.setdefault(d.item_id, []).append(d)
        started = time.perf_counter()
        # Questions hold the index lock from retrieval to answer, so they never see chunks
        # of a document whose text the map below no longer has, or the other way round.
        with index.lock:
            report = index.sync(list(docs.values()), self.catalog)
            # After the sync: it taught the tokenizer the service names these are cut with.
            aliases = self._alias_words(docs)
            self.index, self.docs, self._faq_by_item, self.aliases = index, docs, faq, aliases
        if report.changed:
            index.save(self.settings.kb_index_dir)
            log.info("index synced in %.1fs: %s", time.perf_counter() - started, report)
        self.revision = revision
        self._checked_at = time.monotonic()
        return report

    def _alias_words(self, docs: dict[str, Document]) -> dict[str, list[frozenset[str]]]:
        aliases: dict[str, list[frozenset[str]]] = {}
        for d in docs.values():
            if d.kind == "guide" and d.item_id:
                names = [d.title, *d.data.get("aliases", [])]
                words = (frozenset(self.text.words(self.text.normalize(n))) for n in names)
                aliases[d.item_id] = [w for w in words if w]
        return aliases

    @staticmethod
    def _current_revision(s: Session) -> int:
        return s.scalar(select(KbState.revision).where(KbState.id == 1)) or 0

    def refresh_now(self) -> None:
        with self._write_lock:
            self._sync()

    def refresh_if_stale(self) -> None:
        if time.monotonic() - self._checked_at < REVISION_CHECK_SECONDS:
            return
        self._checked_at = time.monotonic()
        with self.db.session() as s:
            current = self._current_revision(s)
        if current != self.revision:
            with self._write_lock:
                self._sync()

    # -- questions -----------------------------------------------------------------------
    def ask(self, question: str) -> Answer:
        if self.index is None or self.calibration is None:
            raise KnowledgeBaseNotReady(
                "知识库正在准备中，请稍后再试。", "knowledge base not loaded"
            )
        self.refresh_if_stale()
        question = question if isinstance(question, str) else ""
        notice = ""
        limit = self.settings.kb_max_question_chars
        if len(question) > limit:
            question = question[:limit]
            notice = f"您的问题较长，只按前{limit}个字理解。"
        normalized = self.text.normalize(question, question=True)
        if not any(ch.isalnum() for ch in normalized) or self.text.is_generic(normalized):
            # Nothing to search for, or nothing that says which service: any answer would
            # be a guess, so ask which service instead.
            return Answer(
                question=question,
                answered=False,
                item_id=None,
                confidence=0.0,
                answer="请告诉我您要办理的具体事项，例如：“社保卡丢了怎么补办？”“居住证要带什么材料？”",
                notice=notice,
            )
        with self.index.lock:
            found = retrieve(self.index, normalized, self.calibration.fusion, self.aliases)
            confidence = self.calibration.confidence(found.features())
            answer = self._answer(question, found, confidence)
        answer.notice = notice
        return answer

    def _answer(self, question: str, found: Retrieval, confidence: float) -> Answer:
        assert self.index is not None
        candidates = [
            {"item_id": h.item_id, "score": round(h.score, 4)} for h in found.items[:CANDIDATES]
        ]
        if not found.items or confidence < self.settings.kb_answer_threshold:
            nearest = [h.item_id for h in found.items[:3]]
            answer = not_found(
                question,
                confidence,
                nearest,
                self.catalog,
                str(self.catalog.centre.get("hotline", "12345")),
            )
            answer.candidates = candidates
            return answer
        top = found.items[0]
        chunk = self.index.chunks[top.chunk_id]
        suggestions = [
            d.data["question"]
            for d in self._faq_by_item.get(top.item_id, [])
            if d.id != chunk.doc_id
        ][:3]
        answer = compose_answer(
            question, top.item_id, confidence, chunk, self.docs, self.catalog, suggestions
        )
        answer.candidates = candidates
        return answer

    # -- documents -----------------------------------------------------------------------
    def import_folder(self, folder: Path, user: str = "cli", sync: bool = True) -> LoadResult:
        """Validate every file; store the valid ones. Invalid files keep their old version."""
        result = load_folder(folder, self.catalog)
        self.store(result.documents, user)
        if sync and self.index is not None:
            with self._write_lock:
                self._sync()
        return result

    def store(self, documents: list[Document], user: str) -> int:
        changed = 0
        documents = list({d.id: d for d in documents}.values())  # one row per id
        with self.db.session() as s:
            existing = {
                r.id: r
                for r in s.scalars(
                    select(KbDocument).where(KbDocument.id.in_([d.id for d in documents]))
                )
            }
            for d in documents:
                row = existing.get(d.id)
                if row is not None and row.content_hash == d.content_hash:
                    continue
                changed += 1
                if row is None:
                    s.add(
                        KbDocument(
                            id=d.id,
                            kind=d.kind,
                            item_id=d.item_id,
                            title=d.title,
                            data=d.data,
                            items=d.items,
                            source=d.source,
                            content_hash=d.content_hash,
                            updated_by=user,
                        )
                    )
                else:
                    row.kind, row.item_id, row.title, row.data = d.kind, d.item_id, d.title, d.data
                    row.items, row.source, row.content_hash = d.items, d.source, d.content_hash
                    row.version += 1
                    row.updated_by = user
            if changed:
                self._bump_revision(s)
        return changed

    @staticmethod
    def _bump_revision(s: Session) -> None:
        bump = update(KbState).where(KbState.id == 1).values(revision=KbState.revision + 1)
        result = cast(CursorResult[Any], s.execute(bump))
        if result.rowcount == 0:  # first change ever: create the counter
            s.add(KbState(id=1, revision=1))

    def create_document(self, kind: str, source_text: str, user: str) -> Document:
        """Like :meth:`save_document`, but refuses a document that already exists."""
        doc = parse_source(kind, source_text, f"{kind} (API)", self.catalog)
        self.refresh_if_stale()
        if doc.id in self.docs:
            raise Conflict(
                "这份文档已经存在，请用修改功能。", f"document {doc.id} exists; use PUT", id=doc.id
            )
        return self._save(doc, user)

    def save_document(
        self, kind: str, source_text: str, user: str, expected_id: str | None = None
    ) -> Document:
        """Validate and store one document (create or replace), then update the index."""
        doc = parse_source(kind, source_text, f"{kind} (API)", self.catalog)
        if expected_id is not None and doc.id != expected_id:
            from knowledge_base.errors import DocumentInvalid

            field = "question" if kind == "faq" else "id"
            raise DocumentInvalid(
                doc.source,
                field,
                f"修改后文档编号变为 {doc.id}，与要修改的 {expected_id} 不一致；"
                "如需更换，请先删除再新建",
            )
        return self._save(doc, user)

    def _save(self, doc: Document, user: str) -> Document:
        with self._write_lock:
            self.store([doc], user)
            if self.index is not None:
                self._sync()
        return doc

    def delete_document(self, doc_id: str, user: str) -> None:
        with self._write_lock:
            with self.db.session() as s:
                row = s.get(KbDocument, doc_id)
                if row is None:
                    raise NotFound("没有找到这份文档。", f"document {doc_id!r} does not exist")
                s.delete(row)
                self._bump_revision(s)
            log.info("document %s deleted by %s", doc_id, user)
            if self.index is not None:
                self._sync()

    def get_document(self, doc_id: str) -> Document:
        self.refresh_if_stale()
        doc = self.docs.get(doc_id)
        if doc is None:
            raise NotFound("没有找到这份文档。", f"document {doc_id!r} does not exist")
        return doc

    # -- health --------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        if self.index is None:
            return {"status": "down", "error": self.error or "not loaded"}
        return {
            "status": "ok" if self.calibrated else "degraded",
            "documents": len(self.docs),
            "chunks": len(self.index),
            "encoder": self.encoder.name,
            "calibrated": self.calibrated,
            "revision": self.revision,
        }
