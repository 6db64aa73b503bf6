"""Hybrid retrieval: BM25 and dense hits fused per chunk, then aggregated to service items.

Retrieval is two steps. :func:`gather` does the costly work once per question (encoding,
BM25, FAISS) and returns chunk-level evidence; :func:`rank` fuses it with given weights,
which is cheap, so calibration can try many weights on the same evidence.

Scales: cosine similarity as it is; BM25 as the share of the question's IDF mass a chunk
matched (``BM25Index.query_weight``); an alias hit when the question contains one of an
item's names (居住证申领, 办暂住证 …). An item's score is the best fused score among its chunks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from knowledge_base.index import KnowledgeIndex

CANDIDATE_CHUNKS = 64
LONG_QUESTION_CHARS = 40


@dataclass
class Weights:
    lexical: float = 0.2  # share of BM25 in the fused chunk score
    alias: float = 0.0  # bonus for an item whose name or alias the question contains
    support: float = 0.0  # weight of the item's next-best chunks (several chunks agreeing)
    coverage: float = 0.0  # weight of the share of the question's words the item uses


@dataclass
class ItemHit:
    item_id: str
    score: float  # fused
    dense: float  # best cosine among the item's chunks
    lexical: float  # best BM25 share among the item's chunks
    chunk_id: int  # the chunk with the best fused score


@dataclass
class Evidence:
    normalized: str
    words: list[str]
    chunks: dict[int, tuple[str, float, float]]  # chunk id -> (item id, dense, lexical)
    alias_hits: set[str]
    unknown_share: float  # IDF share of the question's words the knowledge base never uses
    word_weight: float


@dataclass
class Retrieval:
    normalized: str
    items: list[ItemHit]
    unknown_share: float
    uncovered_share: float  # IDF share of the question's words the top item never uses
    word_count: int

    def features(self) -> list[float]:
        """Features of the top item, in the order of ``confidence.FEATURES``."""
        length = math.log1p(self.word_count)
        if not self.items:
            return [0.0, 0.0, 0.0, 0.0, self.unknown_share, 1.0, length]
        top = self.items[0]
        second = self.items[1].score if len(self.items) > 1 else 0.0
        return [
            top.score,
            top.dense,
            top.lexical,
            top.score - second,
            self.unknown_share,
            self.uncovered_share,
            length,
        ]


def _tail(normalized: str) -> str:
    """The last sentence of a long question: residents tell their story first and ask last."""
    parts = [p for p in re.split(r"[。！？!?；;，,\n]", normalized) if p.strip()]
    tail = "".join(parts[-2:]) if len(parts) > 2 else ""
    return tail if 4 <= len(tail) < len(normalized) else ""


def gather(
    index: KnowledgeIndex, normalized: str, aliases: dict[str, list[frozenset[str]]] | None = None
) -> Evidence:
    tokens = index.text.tokens(normalized)
    texts = [normalized]
    tail = _tail(normalized) if len(normalized) >= LONG_QUESTION_CHARS else ""
    if tail:
        texts.append(tail)
    with index.lock:
        queries = index.encoder.encode_queries(texts)
        dense: dict[int, float] = {}
        for q in queries:
            for cid, score in index.dense_search(q, CANDIDATE_CHUNKS):
                dense[cid] = max(dense.get(cid, -1.0), score)
        weight = index.bm25.query_weight(tokens)
        lexical = (
            {
                cid: min(score / weight, 1.0)
                for cid, score in index.bm25.search(tokens, CANDIDATE_CHUNKS)
            }
            if weight > 0
            else {}
        )
        # Exact dense scores for chunks found only lexically, so every candidate is fused
        # on both signals.
        for cid in lexical.keys() - dense.keys():
            vec = index.vector(cid)
            dense[cid] = max(float(np.dot(vec, q)) for q in queries)
        chunks = {
            cid: (index.chunks[cid].item_id, d, lexical.get(cid, 0.0))
            for cid, d in dense.items()
            if cid in index.chunks
        }
        # Key words the knowledge base never uses (护照, 出口退税) suggest it does not cover
        # the question; parts of such words may still match, so whole words are checked.
        words = list(dict.fromkeys(index.text.words(normalized)))
        word_weight = sum(index.bm25.idf(w) for w in words)
        unknown = sum(
            index.bm25.idf(w) for w in words if len(w) > 1 and index.bm25.document_frequency(w) == 0
        )
    # An item is named when every word of one of its names occurs in the question, in any
    # order: 新生儿怎么上户口 names 新生儿上户口.
    present = set(tokens) | set(words)
    hits = {
        item for item, names in (aliases or {}).items() if any(name <= present for name in names)
    }
    return Evidence(
        normalized,
        words,
        chunks,
        hits,
        unknown / word_weight if word_weight > 0 else 0.0,
        word_weight,
    )


def _coverage(index: KnowledgeIndex, ev: Evidence, item_id: str) -> float:
    """Share of the question's IDF mass in words the item's documents use."""
    if ev.word_weight <= 0:
        return 0.0
    vocabulary = index.item_terms(item_id)
    missing = sum(index.bm25.idf(w) for w in ev.words if w not in vocabulary)
    return 1.0 - missing / ev.word_weight


def rank(index: KnowledgeIndex, ev: Evidence, weights: Weights) -> Retrieval:
    per_item: dict[str, list[tuple[float, int, float, float]]] = {}
    for cid, (item_id, dense, lexical) in ev.chunks.items():
        fused = (1 - weights.lexical) * dense + weights.lexical * lexical
        per_item.setdefault(item_id, []).append((fused, cid, dense, lexical))
    items: list[ItemHit] = []
    coverage: dict[str, float] = {}
    with index.lock:
        for item_id, chunks in per_item.items():
            chunks.sort(reverse=True)
            score, cid = chunks[0][0], chunks[0][1]
            # An item whose several chunks match is likelier than one lucky chunk elsewhere.
            runners = [c[0] for c in chunks[1:3]]
            score += weights.support * (sum(runners) / 2)
            if item_id in ev.alias_hits:
                score += weights.alias
            coverage[item_id] = _coverage(index, ev, item_id)
            score += weights.coverage * coverage[item_id]
            items.append(
                ItemHit(item_id, score, max(c[2] for c in chunks), max(c[3] for c in chunks), cid)
            )
    items.sort(key=lambda h: h.score, reverse=True)
    uncovered_share = 1.0 - coverage[items[0].item_id] if items and ev.word_weight > 0 else 1.0
    return Retrieval(ev.normalized, items, ev.unknown_share, uncovered_share, len(ev.words))


def retrieve(
    index: KnowledgeIndex,
    normalized: str,
    weights: Weights,
    aliases: dict[str, list[frozenset[str]]] | None = None,
) -> Retrieval:
    return rank(index, gather(index, normalized, aliases), weights)
