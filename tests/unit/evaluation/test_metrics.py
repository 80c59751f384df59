"""Metrics against hand-computed cases and brute-force definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edge_agent.evaluation.metrics import (
    Confusion,
    LabelPixels,
    average_precision,
    f1_score,
    roc_auc,
    roc_curve,
)


def test_confusion_follows_the_guide() -> None:
    truth = np.array([1, 1, 1, 0, 0, 0, 0], bool)
    predicted = np.array([1, 1, 0, 1, 0, 0, 0], bool)
    c = Confusion.of(truth, predicted)
    assert (c.tp, c.fp, c.tn, c.fn) == (2, 1, 3, 1)
    assert c.precision == pytest.approx(2 / 3)
    assert c.recall == pytest.approx(2 / 3)
    assert c.f1 == pytest.approx(2 / 3)


@pytest.mark.parametrize(("p", "r", "f1"), [(0.9, 1.0, 0.947), (0.30, 1.0, 0.46), (0.95, 0.20, 0.33)])
def test_f1_matches_the_guides_worked_examples(p: float, r: float, f1: float) -> None:
    assert f1_score(p, r) == pytest.approx(f1, abs=0.005)


def test_undefined_ratios_are_none_not_zero() -> None:
    all_normal_predicted_normal = Confusion.of(np.zeros(4, bool), np.zeros(4, bool))
    assert all_normal_predicted_normal.precision is None
    assert all_normal_predicted_normal.recall is None
    assert all_normal_predicted_normal.f1 is None
    nothing_found = Confusion.of(np.array([1, 0], bool), np.array([0, 0], bool))
    assert (nothing_found.precision, nothing_found.recall) == (None, 0.0)
    assert f1_score(0.0, 0.0) == 0.0


def test_roc_auc_and_average_precision_by_hand() -> None:
    truth = np.array([1, 1, 0, 0], bool)
    scores = np.array([0.9, 0.4, 0.6, 0.1])
    # Pairs (anomalous, normal): 0.9>0.6, 0.9>0.1, 0.4<0.6, 0.4>0.1 -> 3 of 4.
    assert roc_auc(truth, scores) == pytest.approx(0.75)
    # Thresholds 0.9: P=1, R=.5; 0.6: P=.5, R=.5; 0.4: P=2/3, R=1; 0.1: P=.5, R=1.
    assert average_precision(truth, scores) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    fpr, tpr, thresholds = roc_curve(truth, scores)
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert thresholds.tolist() == [np.inf, 0.9, 0.6, 0.4, 0.1]


def test_ties_count_one_half() -> None:
    truth = np.array([1, 0, 1, 0], bool)
    scores = np.array([0.5, 0.5, 0.8, 0.2])
    # Pairs: (0.5, 0.5) tie 0.5, (0.5, 0.2) 1, (0.8, 0.5) 1, (0.8, 0.2) 1 -> 3.5 / 4.
    assert roc_auc(truth, scores) == pytest.approx(0.875)
    # Thresholds 0.8: P=1, R=.5; 0.5 (one tp and one fp together): P=2/3, R=1.
    assert average_precision(truth, scores) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert roc_auc(np.array([1, 0], bool), np.array([0.3, 0.3])) == 0.5
    fpr, tpr, _ = roc_curve(np.array([1, 0], bool), np.array([0.3, 0.3]))
    assert list(zip(fpr, tpr, strict=True)) == [(0.0, 0.0), (1.0, 1.0)]  # a tie is one step, not a staircase


def test_one_class_only() -> None:
    scores = np.array([0.1, 0.7, 0.4])
    assert roc_auc(np.zeros(3, bool), scores) is None
    assert roc_auc(np.ones(3, bool), scores) is None
    assert average_precision(np.zeros(3, bool), scores) is None
    assert average_precision(np.ones(3, bool), scores) == 1.0
    assert roc_curve(np.ones(3, bool), scores)[0].size == 0


def test_perfect_and_inverted_ranking() -> None:
    truth = np.array([0, 0, 1, 1], bool)
    assert roc_auc(truth, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(truth, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert average_precision(truth, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0


def _brute_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    pos, neg = scores[truth], scores[~truth]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (pos.size * neg.size)


def _brute_ap(truth: np.ndarray, scores: np.ndarray) -> float:
    total, previous_recall = 0.0, 0.0
    for threshold in sorted(set(scores.tolist()), reverse=True):
        predicted = scores >= threshold
        tp = np.sum(predicted & truth)
        precision, recall = tp / predicted.sum(), tp / truth.sum()
        total += (recall - previous_recall) * precision
        previous_recall = recall
    return total


@pytest.mark.parametrize("seed", range(20))
def test_against_brute_force_definitions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    truth = rng.random(n) < 0.4
    truth[0], truth[1] = True, False
    scores = np.round(rng.random(n), 1)  # one decimal: many ties
    assert roc_auc(truth, scores) == pytest.approx(_brute_auc(truth, scores))
    assert average_precision(truth, scores) == pytest.approx(_brute_ap(truth, scores))
    fpr, tpr, _ = roc_curve(truth, scores)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 1.x names it trapz
    assert trapezoid(tpr, fpr) == pytest.approx(roc_auc(truth, scores))


def test_label_pixels_pool_pixels_and_average_iou_over_true_images() -> None:
    pixels = LabelPixels()
    truth = np.zeros((4, 4), bool)
    truth[0, :] = True  # 4 true pixels
    predicted = np.zeros((4, 4), bool)
    predicted[0, :2] = True
    predicted[1, :2] = True  # 2 hit, 2 false alarm
    assert pixels.add(truth, predicted) == pytest.approx(2 / 6)
    assert pixels.add(np.zeros((4, 4), bool), predicted) is None  # normal image: FP pixels, no IoU
    assert pixels.add(truth, truth) == 1.0
    assert (pixels.tp, pixels.fp, pixels.fn, pixels.images) == (6, 6, 2, 2)
    assert pixels.precision == pytest.approx(6 / 12)
    assert pixels.recall == pytest.approx(6 / 8)
    assert pixels.aiou == pytest.approx((2 / 6 + 1) / 2)
    assert LabelPixels().aiou is None
