"""The search index: chunks, their BM25 postings and their vectors in FAISS, kept in step.

``sync`` brings the index to a set of documents by re-embedding only the documents whose
content changed; ``save`` writes a new generation of files and then flips a ``CURRENT``
pointer with an atomic rename, so a crash mid-write leaves the previous index intact.
Several API processes may share one data directory (the production topology): a file lock
on the folder keeps one writer at a time and readers off a generation being pruned.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from knowledge_base.bm25 import BM25Index
from knowledge_base.chunking import CHUNKER_VERSION, Chunk, chunk_document
from knowledge_base.encoders import Encoder
from knowledge_base.source import Catalog, Document
from knowledge_base.text import TextPipeline

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
ENCODE_BATCH = 64


@dataclass
class IndexedChunk:
    id: int
    doc_id: str
    item_id: str
    kind: str
    section: str
    display: str
    dense: str
    tokens: list[str] = field(repr=False)


@dataclass
class SyncReport:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks_embedded: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


class KnowledgeIndex:
    def __init__(self, encoder: Encoder, text: TextPipeline) -> None:
        # One question is one query vector: FAISS's OpenMP threads only add overhead there,
        # and they spin badly when API processes share the cores. One thread per search.
        faiss.omp_set_num_threads(1)
        self.encoder = encoder
        self.text = text
        self.chunks: dict[int, IndexedChunk] = {}
        self.doc_chunks: dict[str, list[int]] = {}
        self.doc_hashes: dict[str, str] = {}
        self.bm25 = BM25Index()
        # faiss' generated stubs do not match its numpy API; treat the index as untyped.
        self.vectors: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(encoder.dim))
        self._next_id = 1
        self._item_terms: dict[str, set[str]] | None = None
        self.lock = threading.RLock()

    def __len__(self) -> int:
        return len(self.chunks)

    # -- building ------------------------------------------------------------------------
    def sync(self, documents: list[Document], catalog: Catalog) -> SyncReport:
        report = SyncReport()
        wanted = {d.id: d for d in documents}
        # The tokenizer must know every service name and alias, also after a restart that
        # loaded a saved index, or questions would be cut differently from the index.
        self.text.add_words(
            w for d in documents if d.kind == "guide" for w in [d.title, *d.data["aliases"]]
        )
        with self.lock:
            for doc_id in [d for d in self.doc_hashes if d not in wanted]:
                self._remove(doc_id)
                report.removed += 1
            changed = [d for d in documents if self.doc_hashes.get(d.id) != d.content_hash]
            report.unchanged = len(documents) - len(changed)
            # Vectors of chunks about to be replaced are reused when their text is unchanged.
            reusable: dict[str, Any] = {}
            for d in changed:
                for cid in self.doc_chunks.get(d.id, []):
                    reusable[self.chunks[cid].dense] = self.vectors.reconstruct(cid)
            pending: list[tuple[Document, list[Chunk]]] = []
            for d in changed:
                pending.append((d, chunk_document(d, catalog)))
            to_embed = sorted({c.dense for _, cs in pending for c in cs} - reusable.keys())
            report.chunks_embedded = len(to_embed)
            fresh = self._embed(to_embed)
            reusable.update(zip(to_embed, fresh, strict=True))
            for d, chunks in pending:
                if d.id in self.doc_hashes:
                    self._remove(d.id)
                    report.updated += 1
                else:
                    report.added += 1
                self._add(d, chunks, reusable)
        return report

    def item_terms(self, item_id: str) -> set[str]:
        """Every BM25 term used by an item's chunks (built on first use after a change)."""
        if self._item_terms is None:
            terms: dict[str, set[str]] = {}
            for c in self.chunks.values():
                terms.setdefault(c.item_id, set()).update(c.tokens)
            self._item_terms = terms
        return self._item_terms.get(item_id, set())

    def _embed(self, texts: list[str]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for start in range(0, len(texts), ENCODE_BATCH):
            batch = [self.text.normalize(t) for t in texts[start : start + ENCODE_BATCH]]
            out.extend(self.encoder.encode_passages(batch))
        return out

    def _add(self, doc: Document, chunks: list[Chunk], vectors: dict[str, np.ndarray]) -> None:
        ids = []
        for c in chunks:
            cid = self._next_id
            self._next_id += 1
            tokens = self.text.tokens(self.text.normalize(c.lexical))
            self.chunks[cid] = IndexedChunk(
                cid, c.doc_id, c.item_id, c.kind, c.section, c.display, c.dense, tokens
            )
            self.bm25.add(cid, tokens)
            ids.append(cid)
        if ids:
            mat = np.stack([vectors[self.chunks[i].dense] for i in ids]).astype(np.float32)
            self.vectors.add_with_ids(mat, np.asarray(ids, dtype=np.int64))
        self.doc_chunks[doc.id] = ids
        self.doc_hashes[doc.id] = doc.content_hash
        self._item_terms = None

    def _remove(self, doc_id: str) -> None:
        ids = self.doc_chunks.pop(doc_id, [])
        for cid in ids:
            chunk = self.chunks.pop(cid)
            self.bm25.remove(cid, chunk.tokens)
        if ids:
            self.vectors.remove_ids(np.asarray(ids, dtype=np.int64))
        self.doc_hashes.pop(doc_id, None)
        self._item_terms = None

    # -- querying helpers ----------------------------------------------------------------
    def dense_search(self, query_vec: np.ndarray, k: int) -> list[tuple[int, float]]:
        if self.vectors.ntotal == 0:
            return []
        scores, ids = self.vectors.search(
            query_vec.reshape(1, -1).astype(np.float32), min(k, self.vectors.ntotal)
        )
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def vector(self, chunk_id: int) -> np.ndarray:
        return np.asarray(self.vectors.reconstruct(chunk_id))

    # -- persistence ---------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with self.lock, _folder_lock(folder, fcntl.LOCK_EX):
            current = _read_current(folder)
            gen = (current or 0) + 1
            manifest = {
                "format": FORMAT_VERSION,
                "chunker": CHUNKER_VERSION,
                "encoder": self.encoder.name,
                "dim": self.encoder.dim,
                "next_id": self._next_id,
                "doc_hashes": self.doc_hashes,
                "doc_chunks": self.doc_chunks,
                "chunks": [asdict(c) for c in self.chunks.values()],
            }
            _write_atomic(
                folder / f"manifest-{gen}.json", json.dumps(manifest, ensure_ascii=False).encode()
            )
            tmp = folder / f"vectors-{gen}.faiss.tmp"
            faiss.write_index(self.vectors, str(tmp))
            _fsync_file(tmp)
            os.replace(tmp, folder / f"vectors-{gen}.faiss")
            _write_atomic(folder / "CURRENT", str(gen).encode())
            for old in folder.iterdir():
                kind = old.name.split("-", 1)[0]
                if kind in {"manifest", "vectors"} and f"-{gen}." not in old.name:
                    old.unlink(missing_ok=True)

    @classmethod
    def load(cls, folder: Path, encoder: Encoder, text: TextPipeline) -> KnowledgeIndex | None:
        """The saved index, or None when absent, unreadable or built with another encoder."""
        if not folder.is_dir():
            return None
        with _folder_lock(folder, fcntl.LOCK_SH):
            return cls._load(folder, encoder, text)

    @classmethod
    def _load(cls, folder: Path, encoder: Encoder, text: TextPipeline) -> KnowledgeIndex | None:
        gen = _read_current(folder)
        if gen is None:
            return None
        try:
            manifest = json.loads((folder / f"manifest-{gen}.json").read_text(encoding="utf-8"))
            if not isinstance(manifest, dict):
                raise ValueError("manifest is not an object")
            built_by = (manifest.get("format"), manifest.get("chunker"), manifest.get("encoder"))
            if built_by != (FORMAT_VERSION, CHUNKER_VERSION, encoder.name):
                log.info("index in %s was built differently; it will be rebuilt", folder)
                return None
            vectors = faiss.read_index(str(folder / f"vectors-{gen}.faiss"))
            index = cls(encoder, text)
            index.vectors = vectors
            index._next_id = int(manifest["next_id"])
            index.doc_hashes = dict(manifest["doc_hashes"])
            index.doc_chunks = {k: list(v) for k, v in manifest["doc_chunks"].items()}
            for raw in manifest["chunks"]:
                chunk = IndexedChunk(**raw)
                index.chunks[chunk.id] = chunk
                index.bm25.add(chunk.id, chunk.tokens)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError) as exc:
            log.warning("index in %s is unreadable (%s); it will be rebuilt", folder, exc)
            return None
        if vectors.ntotal != len(index.chunks):
            log.warning("index in %s is inconsistent; it will be rebuilt", folder)
            return None
        return index


@contextmanager
def _folder_lock(folder: Path, kind: int) -> Iterator[None]:
    with open(folder / ".lock", "a+b") as f:
        fcntl.flock(f.fileno(), kind)  # released when the file is closed
        yield


def _read_current(folder: Path) -> int | None:
    try:
        return int((folder / "CURRENT").read_text().strip())
    except (OSError, ValueError):
        return None


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
