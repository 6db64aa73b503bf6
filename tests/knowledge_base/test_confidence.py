"""Calibrated confidence: the shipped calibration, the conservative default, the fit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from knowledge_base.confidence import (
    FEATURES,
    UNCALIBRATED,
    fit_logistic,
    load_calibration,
    save_calibration,
)


def test_the_default_encoder_ships_with_a_usable_calibration() -> None:
    """use-m3 is the default encoder; without a calibration that fits the current features
    every deployment would run on the conservative hand-set default."""
    cal, fitted = load_calibration("use-m3")
    assert fitted is True
    assert cal is not UNCALIBRATED
    assert len(cal.weights) == len(FEATURES)


def test_default_calibration_matches_the_features() -> None:
    assert len(UNCALIBRATED.weights) == len(FEATURES)


def test_unknown_encoder_gets_the_conservative_default(tmp_path: Path) -> None:
    cal, fitted = load_calibration("st:some-new-model")
    assert fitted is False
    assert cal is UNCALIBRATED
    assert load_calibration("use-m3", tmp_path / "missing.json") == (UNCALIBRATED, False)


def test_unreadable_calibration_file_falls_back_to_the_default(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text("{not json", encoding="utf-8")
    assert load_calibration("use-m3", path) == (UNCALIBRATED, False)
    path.write_text('{"use-m3": {"weights": [1.0]}}', encoding="utf-8")
    assert load_calibration("use-m3", path) == (UNCALIBRATED, False)


def test_save_then_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    weights = [0.5 * (i + 1) for i in range(len(FEATURES))]
    a = dataclasses.replace(
        UNCALIBRATED, encoder="enc-a", weights=weights, bias=-1.25, fitted_on="dev.jsonl"
    )
    b = dataclasses.replace(UNCALIBRATED, encoder="enc-b", weights=weights[::-1], bias=2.0)
    save_calibration(a, path)
    save_calibration(b, path)
    loaded, fitted = load_calibration("enc-a", path)
    assert fitted is True
    assert (loaded.weights, loaded.bias, loaded.fitted_on) == (weights, -1.25, "dev.jsonl")
    assert load_calibration("enc-b", path)[0].weights == weights[::-1]


def test_confidence_is_a_probability() -> None:
    n = len(FEATURES)
    sure = dataclasses.replace(UNCALIBRATED, weights=[100.0] * n, bias=0.0)
    assert 0.999 < sure.confidence([1.0] * n) <= 1.0
    assert 0.0 <= sure.confidence([-1.0] * n) < 0.001
    flat = dataclasses.replace(UNCALIBRATED, weights=[0.0] * n, bias=0.0)
    assert flat.confidence([5.0] * n) == 0.5


def test_fit_logistic_separates_separable_data() -> None:
    rng = np.random.default_rng(7)
    good = rng.normal(0.8, 0.05, size=(40, 2))
    bad = rng.normal(0.2, 0.05, size=(40, 2))
    x = np.vstack([good, bad])
    y = np.array([1.0] * 40 + [0.0] * 40)
    weights, bias = fit_logistic(x, y)
    cal = dataclasses.replace(UNCALIBRATED, weights=list(weights), bias=bias)
    assert cal.confidence([0.8, 0.8]) > 0.95
    assert cal.confidence([0.2, 0.2]) < 0.05
