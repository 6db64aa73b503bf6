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
from knowledge_base.retrieval import Weights, gather, rank
from knowledge_base.service import KnowledgeBase

GRID = [
    Weights(lexical, alias, support, coverage)
    for lexical in (0.1, 0.2, 0.3, 0.4, 0.6)
    for alias in (0.0, 0.05, 0.1, 0.15)
    for support in (0.0, 0.1, 0.2)
    for coverage in (0.0, 0.1, 0.2, 0.3)
]


def read_labelled(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append({"question": row["question"], "item_id": row.get("item_id")})
    return rows


def calibrate(kb: KnowledgeBase, rows: list[dict[str, Any]], name: str) -> tuple[Calibration, str]:
    assert kb.index is not None
    evidence = [
        gather(kb.index, kb.text.normalize(r["question"], question=True), kb.aliases) for r in rows
    ]
    in_scope = [i for i, r in enumerate(rows) if r["item_id"]]
    best_weight, best_acc = Weights(), -1.0
    for w in GRID:  # the first of equally good weights wins: the grid starts small
        hits = 0
        for i in in_scope:
            found = rank(kb.index, evidence[i], w)
            hits += bool(found.items) and found.items[0].item_id == rows[i]["item_id"]
        acc = hits / max(len(in_scope), 1)
        if acc > best_acc + 1e-9:
            best_weight, best_acc = w, acc
    feats, labels = [], []
    for r, ev in zip(rows, evidence, strict=True):
        found = rank(kb.index, ev, best_weight)
        feats.append(found.features())
        labels.append(float(bool(found.items) and found.items[0].item_id == r["item_id"]))
    weights, bias = fit_logistic(np.asarray(feats), np.asarray(labels))
    cal = Calibration(kb.encoder.name, best_weight, [float(w) for w in weights], bias, name)
    return cal, (f"fusion weights {best_weight} (in-scope top-1 {best_acc:.1%} on {name})")


def calibrate_from_file(kb: KnowledgeBase, path: Path) -> str:
    cal, summary = calibrate(kb, read_labelled(path), path.name)
    save_calibration(cal)
    return (
        f"{kb.encoder.name}: {summary}; weights {np.round(cal.weights, 3).tolist()}, "
        f"bias {cal.bias:.3f} saved"
    )
