"""Image-level and per-label metrics with numpy (no scikit-learn), defined as the guide defines them.

Image level (guide section 4): TP = anomaly predicted for an anomalous image, FP = anomaly
predicted for a normal image, TN and FN likewise. Precision = TP / (TP + FP), recall =
TP / (TP + FN), F1 = their harmonic mean. A ratio whose denominator is zero is undefined and
returned as None (written as JSON null), never silently as 0 or 1.

ROC AUC is the Mann-Whitney statistic: the probability that a random anomalous image scores
above a random normal one, ties counting one half (equal to the trapezoidal area under the ROC
curve). Average precision is sum_k (R_k - R_{k-1}) * P_k over the distinct score thresholds in
decreasing order, without interpolation (scikit-learn's definition).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    tn: int
    fn: int

    @classmethod
    def of(cls, truth: np.ndarray, predicted: np.ndarray) -> Confusion:
        truth = np.asarray(truth, dtype=bool)
        predicted = np.asarray(predicted, dtype=bool)
        return cls(
            tp=int(np.sum(truth & predicted)),
            fp=int(np.sum(~truth & predicted)),
            tn=int(np.sum(~truth & ~predicted)),
            fn=int(np.sum(truth & ~predicted)),
        )

    @property
    def precision(self) -> float | None:
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        return f1_score(self.precision, self.recall)


def ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator) / float(denominator) if denominator else None


def f1_score(precision: float | None, recall: float | None) -> float | None:
    """Harmonic mean; 0 when both are 0, None when either is undefined."""
    if precision is None or recall is None:
        return None
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _check(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(truth, dtype=bool).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if truth.shape != scores.shape:
        raise ValueError(f"{truth.size} labels but {scores.size} scores")
    return truth, scores


def roc_auc(truth: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve; None unless both classes are present."""
    truth, scores = _check(truth, scores)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if positives == 0 or negatives == 0:
        return None
    ranks = _average_ranks(scores)
    u = ranks[truth].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing their mean rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(values.size, dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + 1 + end) / 2.0
    return ranks


def _cumulative(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds descending, TP count, FP count) when predicting score >= threshold."""
    order = np.argsort(-scores, kind="mergesort")
    scores, truth = scores[order], truth[order]
    last_of_group = np.r_[scores[1:] != scores[:-1], True]
    tps = np.cumsum(truth)[last_of_group]
    fps = np.cumsum(~truth)[last_of_group]
    return scores[last_of_group], tps, fps


def roc_curve(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), starting at (0, 0) with threshold +inf; empty if a class is missing."""
    truth, scores = _check(truth, scores)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if positives == 0 or negatives == 0:
        return np.empty(0), np.empty(0), np.empty(0)
    thresholds, tps, fps = _cumulative(truth, scores)
    return (
        np.r_[0.0, fps / negatives],
        np.r_[0.0, tps / positives],
        np.r_[np.inf, thresholds],
    )


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the precision-recall step curve; None without anomalous images."""
    truth, scores = _check(truth, scores)
    positives = int(truth.sum())
    if positives == 0:
        return None
    _, tps, fps = _cumulative(truth, scores)
    precision = tps / (tps + fps)
    recall = tps / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass
class LabelPixels:
    """Running pixel counts of one anomaly label over the test images.

    Precision, recall and F1 pool pixels over every test image (normal ones included, so painted
    false alarms count). AIoU is the mean, over the test images whose ground truth contains the
    label, of that image's intersection over union of the label's true and predicted pixels.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    iou_sum: float = 0.0
    images: int = 0  # test images whose ground truth contains the label

    def add(self, truth: np.ndarray, predicted: np.ndarray) -> float | None:
        """Count one image (boolean masks of this label); return its IoU if the truth has the label."""
        tp = int(np.count_nonzero(truth & predicted))
        true_count = int(np.count_nonzero(truth))
        predicted_count = int(np.count_nonzero(predicted))
        self.tp += tp
        self.fp += predicted_count - tp
        self.fn += true_count - tp
        if true_count == 0:
            return None
        iou = tp / (true_count + predicted_count - tp)
        self.iou_sum += iou
        self.images += 1
        return iou

    @property
    def precision(self) -> float | None:
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        return f1_score(self.precision, self.recall)

    @property
    def aiou(self) -> float | None:
        return ratio(self.iou_sum, self.images)
