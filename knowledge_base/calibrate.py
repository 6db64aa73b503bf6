"""Fit the lexical weight and the confidence model on a labelled question set.

The set is JSON Lines: {"question": ..., "item_id": "<id>" | null}; null marks a question the
knowledge base must not answer. The lexical weight is chosen for top-1 accuracy on the
in-scope questions; the logistic model then learns P(top item is right) from the features,
with every must-not-answer question labelled "wrong".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from knowledge_base.confidence import Calibration, fit_logistic, save_calibration
from knowledge_base.retrieval import retrieve
from knowledge_base.service import KnowledgeBase

WEIGHTS = [round(x, 2) for x in np.arange(0.0, 1.01, 0.1)]


def read_labelled(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append({"question": row["question"], "item_id": row.get("item_id")})
    return rows


def calibrate(kb: KnowledgeBase, rows: list[dict[str, Any]], name: str) -> tuple[Calibration, str]:
    assert kb.index is not None
    normalized = [kb.text.normalize(r["question"]) for r in rows]
    in_scope = [i for i, r in enumerate(rows) if r["item_id"]]
    best_weight, best_acc = 0.5, -1.0
    for w in WEIGHTS:
        hits = 0
        for i in in_scope:
            found = retrieve(kb.index, normalized[i], w)
            hits += bool(found.items) and found.items[0].item_id == rows[i]["item_id"]
        acc = hits / max(len(in_scope), 1)
        if acc > best_acc + 1e-9:
            best_weight, best_acc = w, acc
    feats, labels = [], []
    for r, q in zip(rows, normalized, strict=True):
        found = retrieve(kb.index, q, best_weight)
        feats.append(found.features())
        labels.append(float(bool(found.items) and found.items[0].item_id == r["item_id"]))
    weights, bias = fit_logistic(np.asarray(feats), np.asarray(labels))
    cal = Calibration(kb.encoder.name, best_weight, [float(w) for w in weights], bias, name)
    return cal, f"lexical weight {best_weight} (in-scope top-1 {best_acc:.1%} on {name})"


def calibrate_from_file(kb: KnowledgeBase, path: Path) -> str:
    cal, summary = calibrate(kb, read_labelled(path), path.name)
    save_calibration(cal)
    return f"{kb.encoder.name}: {summary}; weights {np.round(cal.weights, 3).tolist()}, " \
           f"bias {cal.bias:.3f} saved"
