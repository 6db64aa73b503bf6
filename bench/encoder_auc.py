"""How well each encoder tells paraphrases apart, next to BM25 alone.

    python bench/encoder_auc.py [--pairs 2000]

Reads the first N labelled pairs of LCQMC dev (../shared/eval-data/paraphrase/lcqmc_dev.tsv,
real Chinese question paraphrases) and prints the ROC AUC of each similarity for "same
question or not", plus encoding speed. Skips cleanly when the evaluation data is absent.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import EVAL_DATA
from knowledge_base.bm25 import BM25Index
from knowledge_base.encoders import EncoderUnavailable, make_encoder
from knowledge_base.text import TextPipeline


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney form: the chance a random positive outscores a random negative."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for s in np.unique(scores):  # average ranks of ties
        tie = scores == s
        ranks[tie] = ranks[tie].mean()
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bm25_similarity(a: list[str], b: list[str], text: TextPipeline) -> np.ndarray:
    """BM25 of each sentence against its partner, IDF over all sentences, both directions
    averaged, each as the share of the query's IDF mass (as the knowledge base uses it)."""
    index = BM25Index()
    toks = [text.tokens(text.normalize(s)) for s in a + b]
    for i, t in enumerate(toks):
        index.add(i, t)
    n = len(a)
    out = np.zeros(n)
    for i in range(n):
        both = []
        for q, d in ((i, n + i), (n + i, i)):
            weight = index.query_weight(toks[q])
            hits = dict(index.search(toks[q], top_k=len(toks)))
            both.append(min(hits.get(d, 0.0) / weight, 1.0) if weight else 0.0)
        out[i] = sum(both) / 2
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--encoders", default="use-m3,e5-small,hashing")
    args = ap.parse_args()
    path = EVAL_DATA / "paraphrase" / "lcqmc_dev.tsv"
    if not path.exists():
        print(f"skipped: {path} is not here (evaluation data ships beside the repo only)")
        return
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if len(r) >= 3 and r[2].strip() in {"0", "1"}][: args.pairs]
    a, b = [r[0] for r in rows], [r[1] for r in rows]
    labels = np.array([int(r[2]) for r in rows])
    print(f"LCQMC dev, first {len(rows)} pairs ({labels.mean():.0%} paraphrases)")
    text = TextPipeline()
    print(f"  {'BM25 alone (jieba)':<28} AUC {roc_auc(bm25_similarity(a, b, text), labels):.3f}")
    for spec in args.encoders.split(","):
        try:
            enc = make_encoder(spec)
        except EncoderUnavailable as exc:
            print(f"  {spec:<28} not installed ({exc.detail})")
            continue
        enc.encode_queries(["热身"])
        started = time.perf_counter()
        va = enc.encode_queries([text.normalize(s) for s in a])
        vb = enc.encode_queries([text.normalize(s) for s in b])
        ms = (time.perf_counter() - started) * 1000 / (2 * len(a))
        sims = np.sum(va * vb, axis=1)
        print(f"  {enc.name:<28} AUC {roc_auc(sims, labels):.3f}   {ms:.1f} ms a sentence")


if __name__ == "__main__":
    main()
