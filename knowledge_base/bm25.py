"""An incremental BM25 index over integer chunk ids.

Postings live in dicts so that one document can be added or removed without a rebuild; a
term's postings are frozen into numpy arrays on first use after a change, so a query is a few
vector operations per term even over tens of thousands of chunks.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

K1 = 1.2
B = 0.75


class BM25Index:
    def __init__(self) -> None:
        self._postings: dict[str, dict[int, int]] = {}
        self._frozen: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._lengths: dict[int, int] = {}
        self._total_length = 0

    def __len__(self) -> int:
        return len(self._lengths)

    @property
    def vocabulary(self) -> set[str]:
        return set(self._postings)

    def document_frequency(self, term: str) -> int:
        return len(self._postings.get(term, ()))

    def add(self, chunk_id: int, tokens: list[str]) -> None:
        if chunk_id in self._lengths:
            self.remove(chunk_id)
        counts = Counter(tokens)
        for term, tf in counts.items():
            self._postings.setdefault(term, {})[chunk_id] = tf
            self._frozen.pop(term, None)
        self._lengths[chunk_id] = len(tokens)
        self._total_length += len(tokens)

    def remove(self, chunk_id: int, tokens: list[str] | None = None) -> None:
        length = self._lengths.pop(chunk_id, None)
        if length is None:
            return
        self._total_length -= length
        terms = set(tokens) if tokens is not None else list(self._postings)
        for term in terms:
            posting = self._postings.get(term)
            if posting and posting.pop(chunk_id, None) is not None:
                self._frozen.pop(term, None)
                if not posting:
                    del self._postings[term]

    def idf(self, term: str) -> float:
        n = len(self._lengths)
        df = len(self._postings.get(term, ()))
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def _arrays(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        arrays = self._frozen.get(term)
        if arrays is None:
            posting = self._postings[term]
            ids = np.fromiter(posting.keys(), dtype=np.int64, count=len(posting))
            tfs = np.fromiter(posting.values(), dtype=np.float32, count=len(posting))
            lengths = np.fromiter(
                (self._lengths[i] for i in posting), dtype=np.float32, count=len(posting)
            )
            # Store tf already divided by its length normaliser; avgdl is applied at query.
            arrays = (ids, np.stack([tfs, lengths]))
            self._frozen[term] = arrays
        return arrays

    def search(self, tokens: list[str], top_k: int = 50) -> list[tuple[int, float]]:
        """Chunks by BM25 score for the query terms (each distinct term counted once)."""
        if not self._lengths:
            return []
        avgdl = self._total_length / len(self._lengths)
        acc_ids: list[np.ndarray] = []
        acc_scores: list[np.ndarray] = []
        for term in dict.fromkeys(tokens):
            if term not in self._postings:
                continue
            ids, (tfs, lengths) = self._arrays(term)
            denom = tfs + K1 * (1 - B + B * lengths / avgdl)
            acc_ids.append(ids)
            acc_scores.append(self.idf(term) * tfs * (K1 + 1) / denom)
        if not acc_ids:
            return []
        all_ids = np.concatenate(acc_ids)
        all_scores = np.concatenate(acc_scores)
        uniq, inverse = np.unique(all_ids, return_inverse=True)
        summed = np.bincount(inverse, weights=all_scores, minlength=len(uniq))
        k = min(top_k, len(uniq))
        best = np.argpartition(-summed, k - 1)[:k]
        best = best[np.argsort(-summed[best])]
        scores = {int(uniq[i]): float(summed[i]) for i in best}
        return list(scores.items())

    def query_weight(self, tokens: list[str]) -> float:
        """The score of a chunk of average length holding every term once. Dividing by it
        expresses a BM25 score as the share of the question that was matched; terms the
        index has never seen count with the highest IDF, so they lower that share."""
        return sum(self.idf(t) for t in dict.fromkeys(tokens))
