"""Answer accuracy of the knowledge base on labelled question sets.

    python bench/kb_accuracy.py [--encoder use-m3] [--set bench/data/kb_dev.jsonl ...]

For each set: in-scope top-1 (answered with the right item), retrieval top-1 and top-3
(right item ranked first / in the first three, answered or not), the share of must-not-answer
questions refused, accuracy per question style, and the calibration error of the confidence
(ECE over 10 bins: |mean confidence − share correct|, weighted).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import BENCH_DATA, knowledge_base


def evaluate(kb, path: Path, show_errors: bool) -> None:  # type: ignore[no-untyped-def]
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    in_scope = [r for r in rows if r["item_id"]]
    oos = [r for r in rows if not r["item_id"]]
    right = top1 = top3 = refused = 0
    by_style: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    conf_pairs = []
    for r in rows:
        a = kb.ask(r["question"])
        ranked = [c["item_id"] for c in a.candidates]
        correct = a.answered and a.item_id == r["item_id"]
        conf_pairs.append((a.confidence, float(bool(ranked) and ranked[0] == r["item_id"])))
        if r["item_id"]:
            right += correct
            top1 += bool(ranked) and ranked[0] == r["item_id"]
            top3 += r["item_id"] in ranked[:3]
            by_style[r.get("style", "?")][0] += correct
            by_style[r.get("style", "?")][1] += 1
            if show_errors and not correct:
                print(
                    f"  MISS {r['item_id']:<22} got {a.item_id or '-':<22} "
                    f"{a.confidence:.2f} {ranked[:3]} {r['question'][:60]}"
                )
        else:
            refused += not a.answered
            if show_errors and a.answered:
                print(f"  FALSE-ANSWER {a.item_id:<22} {a.confidence:.2f} {r['question'][:60]}")
    bins: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for c, ok in conf_pairs:
        bins[min(int(c * 10), 9)].append((c, ok))
    ece = sum(
        abs(sum(c for c, _ in b) / len(b) - sum(o for _, o in b) / len(b)) * len(b)
        for b in bins.values()
    ) / len(conf_pairs)
    n = len(in_scope)
    print(f"{path.name}: {n} in scope, {len(oos)} must-not-answer")
    print(f"  in-scope answered correctly (top-1): {right / n:.1%}  ({right}/{n})")
    print(f"  retrieval top-1: {top1 / n:.1%}   top-3: {top3 / n:.1%}")
    print(f"  must-not-answer refused: {refused / max(len(oos), 1):.1%}  ({refused}/{len(oos)})")
    print(f"  confidence ECE: {ece:.3f}")
    print("  by style: " + ", ".join(f"{s} {c}/{t}" for s, (c, t) in sorted(by_style.items())))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoder", default=None)
    ap.add_argument("--set", action="append", type=Path)
    ap.add_argument("--errors", action="store_true", help="print every miss")
    args = ap.parse_args()
    kb = knowledge_base(args.encoder)
    print(
        f"encoder {kb.encoder.name} (calibrated: {kb.calibrated}), "
        f"{len(kb.docs)} documents, {len(kb.index)} chunks"
    )
    for path in args.set or [BENCH_DATA / "kb_dev.jsonl", BENCH_DATA / "kb_heldout.jsonl"]:
        evaluate(kb, path, args.errors)


if __name__ == "__main__":
    main()
