"""Decision thresholds chosen on out-of-fold training scores (the test images are never seen).

- Image threshold: with anomalous training images, the lowest raw score that maximises the
  *smoothed* F1 of the out-of-fold scores: each score is read as a Gaussian of width h (Silverman's
  rule on the normal scores, h = 1.06 std n^-1/5), i.e. as where an image like it may score on the
  final model, and the expected F1 is maximised (ties favour catching defects). With 5 to 10
  anomalies the plain F1 optimum jumps with every image (it sits on the edge of one score); the
  smoothed one moves continuously and keeps a margin from both groups.
  With normal images only: the larger of the highest normal score and mean + 3 std.
- Score normalisation: anomaly_score = sigmoid((raw - threshold) / scale), so the threshold sits
  at 0.5 and the median out-of-fold normal image at 0.1.
- Pixel threshold (segmentation): the value that maximises pooled IoU of the out-of-fold maps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NORMAL_ONLY_SIGMAS = 3.0
DECISION_THRESHOLD = 0.5
MEDIAN_NORMAL_SCORE = 0.1


@dataclass(frozen=True)
class ScoreCalibration:
    raw_threshold: float
    scale: float
    method: str  # "smoothed-f1", "f1-best" or "normal-only"

    def normalize(self, raw: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(np.asarray(raw, dtype=np.float64) - self.raw_threshold) / self.scale))

    def to_json(self) -> dict[str, object]:
        return {
            "method": "logistic",
            "formula": "anomaly_score = 1 / (1 + exp(-(raw - center) / scale))",
            "raw_score": "max of the Gaussian-smoothed patch anomaly map",
            "center": self.raw_threshold,
            "scale": self.scale,
            "threshold_method": self.method,
            "threshold_source": "out-of-fold scores of the training images",
        }


def f1_best_threshold(scores: np.ndarray, is_anomalous: np.ndarray) -> float:
    """Lowest threshold with the best F1, placed halfway into the gap below it."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(is_anomalous, dtype=bool)
    candidates = np.unique(scores)
    best_f1, best_index = -1.0, 0
    positives = labels.sum()
    for index, threshold in enumerate(candidates):
        predicted = scores >= threshold
        tp = int((predicted & labels).sum())
        fp = int((predicted & ~labels).sum())
        f1 = 2 * tp / max(1, tp + fp + positives)
        if f1 > best_f1 + 1e-12:
            best_f1, best_index = f1, index
    if best_index == 0:
        spread = float(candidates[-1] - candidates[0]) or 1.0
        return float(candidates[0] - 0.05 * spread)
    return float((candidates[best_index] + candidates[best_index - 1]) / 2)


SMOOTH_GRID = 2048


def smoothed_f1_threshold(scores: np.ndarray, is_anomalous: np.ndarray) -> float:
    """Lowest threshold with the best expected F1 when every score is blurred by a Gaussian kernel."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(is_anomalous, dtype=bool)
    normal = scores[~labels]
    spread = float(normal.std()) or float(np.std(scores)) or 1.0
    width = 1.06 * spread * len(normal) ** -0.2
    low, high = float(scores.min()) - 3 * width, float(scores.max()) + 3 * width
    grid = np.linspace(low, high, SMOOTH_GRID)
    above = 0.5 * (1 + _erf((scores[None, :] - grid[:, None]) / (width * math.sqrt(2))))
    tp = above[:, labels].sum(1)
    fp = above[:, ~labels].sum(1)
    f1 = 2 * tp / (tp + fp + labels.sum())
    return float(grid[int(np.argmax(f1 >= f1.max() - 1e-9))])


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def normal_only_threshold(normal_scores: np.ndarray) -> float:
    scores = np.asarray(normal_scores, dtype=np.float64)
    return float(max(scores.max(), scores.mean() + NORMAL_ONLY_SIGMAS * scores.std()))


def calibrate(scores: np.ndarray, is_anomalous: np.ndarray) -> ScoreCalibration:
    labels = np.asarray(is_anomalous, dtype=bool)
    if labels.any() and (~labels).any():
        threshold, method = smoothed_f1_threshold(scores, labels), "smoothed-f1"
    else:
        threshold, method = normal_only_threshold(scores[~labels]), "normal-only"
    median_normal = float(np.median(scores[~labels]))
    # logit(MEDIAN_NORMAL_SCORE) = -ln 9: the median normal image scores 0.1.
    gap = threshold - median_normal
    spread = float(np.std(scores[~labels])) or 1.0
    scale = max(gap, 0.5 * spread, 1e-3) / math.log((1 - MEDIAN_NORMAL_SCORE) / MEDIAN_NORMAL_SCORE)
    return ScoreCalibration(raw_threshold=threshold, scale=scale, method=method)


def iou_best_pixel_threshold(values: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(threshold, pooled IoU) maximising pooled IoU; values and truth are flat pixel arrays."""
    values = np.asarray(values, dtype=np.float64).ravel()
    truth = np.asarray(truth, dtype=bool).ravel()
    positives = int(truth.sum())
    if positives == 0:
        return float(values.max() + 1e-6), 0.0
    order = np.argsort(-values, kind="stable")
    sorted_values = values[order]
    tp = np.cumsum(truth[order])
    fp = np.cumsum(~truth[order])
    iou = tp / (positives + fp)
    # only cut between distinct values
    distinct = np.r_[sorted_values[1:] < sorted_values[:-1], True]
    iou = np.where(distinct, iou, -1.0)
    best = int(iou.argmax())
    below = sorted_values[best + 1] if best + 1 < len(sorted_values) else sorted_values[best] - 1e-6
    return float((sorted_values[best] + below) / 2), float(iou[best])
