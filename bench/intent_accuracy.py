"""Intent accuracy and macro-F1 of the trained Rasa model on the held-out set
(bench/data/intent_heldout.jsonl, written apart from the training data and never trained on).

    .venv/bin/python bench/intent_accuracy.py [--data-dir DIR] [--errors]

Uses the current model under <data-dir>/rasa: by default the one the test command trained
(.test-data), else the operator's (data). An
utterance sent to nlu_fallback counts as wrong: it did not get its intent.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from _common import BENCH_DATA, current_rasa_model

from assistant.rasa_project import RasaProject, parse_lines
from banshi.settings import Settings


def scores(gold: list[str], predicted: list[str]) -> tuple[float, float, dict[str, float]]:
    labels = sorted(set(gold))
    per: dict[str, float] = {}
    for label in labels:
        tp = sum(g == p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(p == label != g for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label != p for g, p in zip(gold, predicted, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        per[label] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)
    return accuracy, sum(per.values()) / len(per), per


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--errors", action="store_true", help="list the misclassified utterances")
    args = ap.parse_args()
    rows = [
        json.loads(line) for line in (BENCH_DATA / "intent_heldout.jsonl").open(encoding="utf-8")
    ]
    model = current_rasa_model()
    data_dir = args.data_dir or (model.parent.parent.parent if model else Path("data"))
    project = RasaProject(Settings(data_dir=data_dir))
    parsed = parse_lines(project, [r["text"] for r in rows])
    gold = [r["intent"] for r in rows]
    predicted = [p["intent"] for p in parsed]
    accuracy, macro, per = scores(gold, predicted)
    print(f"model: {project.require_model().name}   held-out utterances: {len(rows)}")
    print(f"accuracy {accuracy:.3f}   macro-F1 {macro:.3f}   (goal macro-F1 >= 0.90)")
    for label, f1 in sorted(per.items(), key=lambda kv: kv[1]):
        print(f"  {label:<14} F1 {f1:.3f}")
    fallback = Counter(predicted)["nlu_fallback"]
    print(f"sent to nlu_fallback: {fallback}")
    if args.errors:
        for r, p in zip(rows, parsed, strict=True):
            if r["intent"] != p["intent"]:
                print(
                    f"  {r['intent']:>14} -> {p['intent']:<14} {p['confidence']:.2f}  {r['text']}"
                )


if __name__ == "__main__":
    main()
