"""Thresholds and score normalisation chosen from out-of-fold training scores."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.training.calibration import (
    calibrate,
    f1_best_threshold,
    iou_best_pixel_threshold,
    normal_only_threshold,
)


def test_separable_scores_put_the_threshold_in_the_gap() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.9, 1.0, 1.2])
    labels = np.array([0, 0, 0, 1, 1, 1], bool)
    assert f1_best_threshold(scores, labels) == pytest.approx(0.6)


def test_overlapping_scores_maximise_f1() -> None:
    scores = np.array([0.1, 0.2, 0.5, 0.4, 0.6, 0.7])
    labels = np.array([0, 0, 0, 1, 1, 1], bool)
    t = f1_best_threshold(scores, labels)
    predicted = scores >= t
    tp = (predicted & labels).sum()
    f1 = 2 * tp / (predicted.sum() + labels.sum())
    assert f1 == pytest.approx(6 / 7)  # catching all three anomalies at the cost of one false reject


def test_normal_only_threshold_is_above_every_normal() -> None:
    scores = np.array([1.0, 1.1, 0.9, 1.3, 1.05])
    assert normal_only_threshold(scores) >= scores.max()
    calibration = calibrate(scores, np.zeros(5, bool))
    assert calibration.method == "normal-only"
    assert (calibration.normalize(scores) < 0.5).all()


# Scores on a 0.001 grid: graph scores are float32, so two distinct ones are never closer than its
# resolution, while a gap of a few subnormals (hypothesis finds them) cannot be split by any threshold.
SCORES = st.integers(-5000, 5000).map(lambda milli: milli / 1000)


@settings(max_examples=50, deadline=None)
@given(
    normal=st.lists(SCORES, min_size=3, max_size=30),
    anomalous=st.lists(SCORES, min_size=1, max_size=30),
)
def test_normalised_threshold_is_one_half_and_monotonic(normal: list[float], anomalous: list[float]) -> None:
    scores = np.array(normal + anomalous)
    labels = np.array([0] * len(normal) + [1] * len(anomalous), bool)
    calibration = calibrate(scores, labels)
    assert calibration.normalize(np.array([calibration.raw_threshold]))[0] == pytest.approx(0.5)
    normalized = calibration.normalize(np.sort(scores))
    assert (np.diff(normalized) >= 0).all()
    assert ((normalized >= 0) & (normalized <= 1)).all()
    # the decision on the 0..1 scale equals the decision on the raw scale
    assert ((calibration.normalize(scores) >= 0.5) == (scores >= calibration.raw_threshold)).all()


def test_median_normal_maps_to_one_tenth() -> None:
    normal = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    calibration = calibrate(np.r_[normal, [10.0, 11.0]], np.array([0] * 5 + [1] * 2, bool))
    assert calibration.normalize(np.array([2.0]))[0] == pytest.approx(0.1, abs=1e-6)


def test_pixel_threshold_maximises_pooled_iou() -> None:
    rng = np.random.default_rng(0)
    truth = np.zeros((4, 32, 32), bool)
    truth[:, 8:16, 8:16] = True
    values = np.where(truth, 2.0, 0.0) + rng.normal(0, 0.1, truth.shape)
    threshold, iou = iou_best_pixel_threshold(values, truth)
    assert 0.5 < threshold < 1.5
    assert iou == pytest.approx(((values >= threshold) & truth).sum() / ((values >= threshold) | truth).sum())
    assert iou > 0.99
