"""How the intent model reads real citizen messages (12345-style, anonymised; third-party
evaluation data in ../shared/eval-data/gov-qa, not shipped): each message is labelled
咨询 / 建言 / 投诉/求助 by the hotline. We expect ask_service, suggest, and complain (or a
request for a person) respectively. These messages are long letters, unlike chat turns, so
this measures robustness, not the goal.

    .venv/bin/python bench/intent_real.py [--per-type 100] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

from _common import EVAL_DATA, current_rasa_model

from assistant.rasa_project import RasaProject, parse_lines
from banshi.settings import Settings

EXPECTED = {
    "咨询": {"ask_service"},
    "建言": {"suggest"},
    "投诉/求助": {"complain", "request_human"},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-type", type=int, default=100)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    source = EVAL_DATA / "gov-qa" / "citizen_messages.public.jsonl"
    if not source.exists():
        raise SystemExit(f"{source} is not here (evaluation data is not shipped)")
    rows = [json.loads(line) for line in source.open(encoding="utf-8")]
    rng = random.Random(args.seed)
    sample = []
    for kind in EXPECTED:
        of_kind = [r for r in rows if r["type"] == kind]
        sample += rng.sample(of_kind, min(args.per_type, len(of_kind)))
    model = current_rasa_model()
    data_dir = args.data_dir or (model.parent.parent.parent if model else Path("data"))
    project = RasaProject(Settings(data_dir=data_dir))
    # the chat cuts messages at 300 characters; so does this
    parsed = parse_lines(project, [r["message"].replace("\n", " ")[:300] for r in sample])
    print(f"model: {project.require_model().name}   messages: {len(sample)}")
    total_right = 0
    for kind, wanted in EXPECTED.items():
        got = Counter(p["intent"] for r, p in zip(sample, parsed, strict=True) if r["type"] == kind)
        right = sum(n for intent, n in got.items() if intent in wanted)
        total_right += right
        n = sum(got.values())
        top = ", ".join(f"{i} {c}" for i, c in got.most_common(4))
        print(f"  {kind:<6} -> {'/'.join(sorted(wanted)):<26} {right / n:6.1%}   ({top})")
    print(f"overall {total_right / len(sample):.1%}")


if __name__ == "__main__":
    main()
