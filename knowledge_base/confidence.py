"""Calibrated confidence: a logistic model over retrieval features, fitted per encoder.

``banshi kb calibrate`` fits it on a labelled question set (in-scope questions with their item,
and questions that must not be answered) and stores the coefficients in calibration.json
beside this file. The confidence is then the estimated probability that the top item is the
right answer, so a threshold of 0.5 means "more likely right than wrong".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knowledge_base.retrieval import Weights

FEATURES = ("score", "dense", "lexical", "margin", "unknown_share", "uncovered_share", "log_words")
CALIBRATION_FILE = Path(__file__).resolve().parent / "calibration.json"


@dataclass
class Calibration:
    encoder: str
    fusion: Weights
    weights: list[float]
    bias: float
    fitted_on: str = ""

    def confidence(self, features: list[float]) -> float:
        z = self.bias + sum(w * x for w, x in zip(self.weights, features, strict=True))
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))


# Used for an encoder nobody has calibrated yet (e.g. a new sentence-transformers model):
# conservative, so an uncalibrated deployment refuses rather than invents.
UNCALIBRATED = Calibration(
    "(default)",
    Weights(lexical=0.2, alias=0.1, support=0.1, coverage=0.2),
    [10.0, 0.0, 4.0, 6.0, -2.0, -6.0, 0.0],
    -6.5,
    "hand-set",
)


def load_calibration(encoder: str, path: Path = CALIBRATION_FILE) -> tuple[Calibration, bool]:
    """The calibration for this encoder, and whether it was really fitted for it."""
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        table = {}
    raw = table.get(encoder)
    try:
        cal = Calibration(
            encoder=encoder,
            fusion=Weights(**raw["fusion"]),
            weights=[float(w) for w in raw["weights"]],
            bias=float(raw["bias"]),
            fitted_on=raw.get("fitted_on", ""),
        )
    except (KeyError, TypeError, ValueError):  # absent, or written by an older version
        return UNCALIBRATED, False
    if len(cal.weights) != len(FEATURES):
        return UNCALIBRATED, False
    return cal, True


def save_calibration(cal: Calibration, path: Path = CALIBRATION_FILE) -> None:
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        table = {}
    table[cal.encoder] = {
        "fusion": {k: round(v, 3) for k, v in vars(cal.fusion).items()},
        "weights": [round(w, 4) for w in cal.weights],
        "bias": round(cal.bias, 4),
        "fitted_on": cal.fitted_on,
    }
    path.write_text(json.dumps(table, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 50
) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method with a small L2 penalty (no bias penalty)."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    penalty = np.eye(d + 1) * l2
    penalty[d, d] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -40, 40)))
        grad = xb.T @ (p - y) + penalty @ w
        hess = (xb.T * (p * (1 - p))) @ xb + penalty
        step = np.linalg.solve(hess + 1e-9 * np.eye(d + 1), grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:d], float(w[d])
