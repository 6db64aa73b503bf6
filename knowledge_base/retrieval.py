"""Hybrid retrieval: BM25 and dense hits fused per chunk, then aggregated to service items.

Both signals are put on a 0..1-ish scale before fusing: cosine similarity as it is, and BM25
as the share of the question's IDF mass a chunk matched (``BM25Index.query_weight``). An
item's score is the best fused score among its chunks; the features of the top item feed
the calibrated confidence in :mod:`knowledge_base.confidence`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knowledge_base.index import KnowledgeIndex

CANDIDATE_CHUNKS = 64


@dataclass
class ItemHit:
    item_id: str
    score: float  # fused
    dense: float  # best cosine among the item's chunks
    lexical: float  # best BM25 share among the item's chunks
    chunk_id: int  # the chunk with the best fused score


@dataclass
class Retrieval:
    normalized: str
    tokens: list[str]
    items: list[ItemHit]
    unknown_share: float  # IDF share of question terms the knowledge base never uses

    def features(self) -> list[float]:
        """Features of the top item, in the order of ``confidence.FEATURES``."""
        if not self.items:
            return [0.0, 0.0, 0.0, 0.0, self.unknown_share]
        top = self.items[0]
        second = self.items[1].score if len(self.items) > 1 else 0.0
        return [top.score, top.dense, top.lexical, top.score - second, self.unknown_share]


def retrieve(index: KnowledgeIndex, normalized: str, lexical_weight: float) -> Retrieval:
    tokens = index.text.tokens(normalized)
    with index.lock:
        query = index.encoder.encode_queries([normalized])[0]
        dense_hits = dict(index.dense_search(query, CANDIDATE_CHUNKS))
        weight = index.bm25.query_weight(tokens)
        lexical_hits = {
            cid: min(score / weight, 1.0)
            for cid, score in index.bm25.search(tokens, CANDIDATE_CHUNKS)
        } if weight > 0 else {}
        # Exact dense scores for chunks found only lexically, so every candidate is fused
        # on both signals.
        for cid in lexical_hits.keys() - dense_hits.keys():
            dense_hits[cid] = float(np.dot(index.vector(cid), query))
        unknown = sum(index.bm25.idf(t) for t in dict.fromkeys(tokens)
                      if len(t) > 1 and index.bm25.document_frequency(t) == 0)
        unknown_share = unknown / weight if weight > 0 else 0.0
        best: dict[str, ItemHit] = {}
        for cid, dense in dense_hits.items():
            chunk = index.chunks.get(cid)
            if chunk is None:
                continue
            lexical = lexical_hits.get(cid, 0.0)
            fused = (1 - lexical_weight) * dense + lexical_weight * lexical
            hit = best.get(chunk.item_id)
            if hit is None:
                best[chunk.item_id] = ItemHit(chunk.item_id, fused, dense, lexical, cid)
                continue
            hit.dense = max(hit.dense, dense)
            hit.lexical = max(hit.lexical, lexical)
            if fused > hit.score:
                hit.score, hit.chunk_id = fused, cid
    items = sorted(best.values(), key=lambda h: h.score, reverse=True)
    return Retrieval(normalized, tokens, items, unknown_share)
