"""Shared set-up for benchmarks: a knowledge base on a throwaway data directory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from banshi.db import Database
from banshi.settings import Settings
from knowledge_base.service import KnowledgeBase

BENCH_DATA = Path(__file__).resolve().parent / "data"
EVAL_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "eval-data"


def knowledge_base(
    encoder: str | None = None, source: Path | None = None, data_dir: Path | None = None
) -> KnowledgeBase:
    """A started knowledge base. The data directory defaults to a temporary one, so a bench
    never touches the operator's database; BANSHI_DATA_DIR reuses a built index."""
    data = data_dir or Path(os.environ.get("BANSHI_DATA_DIR") or tempfile.mkdtemp(prefix="kbb"))
    overrides: dict[str, object] = {"data_dir": data, "database_url": ""}
    if encoder:
        overrides["kb_encoder"] = encoder
    if source:
        overrides["kb_source_dir"] = source
    settings = Settings(**overrides)  # type: ignore[arg-type]
    db = Database(settings.resolved_database_url)
    db.upgrade()
    kb = KnowledgeBase(settings, db)
    kb.start()
    return kb


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
