"""Rasa training time: the whole `banshi rasa train` on the project as it is (assemble,
JiebaTokenizer, featurizers, DIETClassifier, policies), forced, in a throwaway data dir.

    .venv/bin/python bench/rasa_train.py [--repeat 1]

Also prints the time of a second `train` with nothing changed (the fingerprint skip).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from assistant.rasa_project import RasaProject
from banshi.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    project = RasaProject(Settings(data_dir=Path(tempfile.mkdtemp(prefix="rasa-train"))))
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        model, trained = project.train(force=True)
        times.append(time.perf_counter() - t0)
        assert trained
    t0 = time.perf_counter()
    _, again = project.train()
    skip = time.perf_counter() - t0
    size = model.stat().st_size / 1e6
    print(f"training: {', '.join(f'{t:.0f} s' for t in times)}   model {size:.1f} MB")
    print(f"unchanged data, train again: {skip:.1f} s (trained: {again})")


if __name__ == "__main__":
    main()
