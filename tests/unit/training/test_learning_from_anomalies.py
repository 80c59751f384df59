"""Classification models learn from their anomalous images; thresholds transfer to the final model.

The fit-level tests use made-up patch features (no backbone, a second each): what is asserted is
how fit() uses the labels, not how good EfficientNet features are. The training-level ones use the
session's real synthetic trainings (conftest.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edge_agent.training import TrainResult
from edge_agent.training.fit import FitSettings, fit
from edge_agent.training.image_head import ImageHeadSettings, fit_image_head
from edge_agent.training.mil import separation

GRID = (6, 6)
DIM = 16


def _features(normal: int, anomalous: int, seed: int, shift: float = 0.6) -> tuple[torch.Tensor, np.ndarray]:
    """Patch features whose anomalies are a small shift of *every* patch along one direction:
    no single patch is far from the normal ones (the bank hardly sees it), the image mean is."""
    generator = torch.Generator().manual_seed(seed)
    count = normal + anomalous
    feats = torch.randn(count, DIM, *GRID, generator=generator)
    feats[normal:, 0] += shift
    return feats, np.r_[np.zeros(normal, bool), np.ones(anomalous, bool)]


def _image_scores(result: object, feats: torch.Tensor) -> np.ndarray:
    """What the exported graph computes, on made-up features (bank, footing, image head)."""
    from edge_agent.training.graph import MapSmoother
    from edge_agent.training.memory_bank import augmented_bank, nearest_distance

    bank = result.bank  # type: ignore[attr-defined]
    bank_aug = augmented_bank(bank)
    scores = []
    with torch.no_grad():
        for image in feats:
            patches = image.flatten(1).T
            distance = nearest_distance(patches, bank_aug) / result.distance_scale  # type: ignore[attr-defined]
            raw = MapSmoother()(distance.view(1, 1, *GRID)).amax(dim=(1, 2, 3))
            if result.image_head is not None:  # type: ignore[attr-defined]
                raw = result.image_head(raw, patches)  # type: ignore[attr-defined]
            scores.append(float(raw[0]))
    return np.array(scores)


def test_anomalous_images_teach_a_classification_model_what_the_bank_cannot_see() -> None:
    train, labels = _features(20, 8, seed=0)
    test, test_labels = _features(20, 20, seed=1)
    learnt = fit(train, labels, None, 0, FitSettings(), seed=0)
    plain = fit(train, labels, None, 0, FitSettings(supervised=False), seed=0)
    assert learnt.image_head is not None and learnt.details["image_head"]["used"] is True
    assert plain.image_head is None
    learnt_sep = separation(_image_scores(learnt, test), test_labels)
    plain_sep = separation(_image_scores(plain, test), test_labels)
    assert learnt_sep > plain_sep + 0.1, (learnt_sep, plain_sep)


def test_with_normal_images_only_the_fit_is_todays_plain_memory_bank() -> None:
    """Bit-identical to the plain model: no image head, no footing factor, same threshold."""
    train, labels = _features(12, 0, seed=2)
    default = fit(train, labels, None, 0, FitSettings(), seed=0)
    plain = fit(
        train, labels, None, 0, FitSettings(supervised=False, footing=False, image_model="none"), seed=0
    )
    assert default.image_head is None and default.head is None
    assert torch.equal(default.bank, plain.bank)
    assert default.distance_scale == plain.distance_scale
    assert default.calibration == plain.calibration
    assert default.details["distance_footing"] is None and default.details["image_head"] is None


def test_an_image_head_that_does_not_help_is_not_used() -> None:
    """Labels that carry no signal: the out-of-fold check keeps the plain memory bank."""
    train, _ = _features(24, 0, seed=3)
    noise = np.zeros(24, bool)
    noise[::3] = True
    result = fit(train, noise, None, 0, FitSettings(), seed=0)
    info = result.details["image_head"]
    assert info["oof_separation_head"] < info["oof_separation_plain"]
    assert info["used"] is False and result.image_head is None
    assert (
        result.calibration == fit(train, noise, None, 0, FitSettings(image_model="none"), seed=0).calibration
    )


def test_image_head_graph_form_equals_its_training_form() -> None:
    generator = torch.Generator().manual_seed(4)
    pooled = torch.randn(30, DIM, generator=generator)
    raw = torch.randn(30, generator=generator)
    labels = torch.arange(30) % 3 == 0
    head = fit_image_head(raw, pooled, labels, ImageHeadSettings())
    patches = pooled[5].expand(9, DIM)  # 9 identical patches: their mean is pooled[5]
    assert float(head(raw[5:6], patches)[0]) == pytest.approx(float(head.batch(raw, pooled)[5]), abs=1e-5)


# Documented bound (docs/training.md, "Thresholds that transfer"): the median held-out normal image
# stays within a third of the way from the out-of-fold normal median to the threshold.
DRIFT_BOUND = 1 / 3


def _raw(score: float, center: float, scale: float) -> float:
    score = min(max(score, 1e-9), 1 - 1e-9)
    return center + scale * math.log(score / (1 - score))


def test_final_model_scores_unseen_normals_where_the_out_of_fold_scores_put_them(
    classification_model: TrainResult,
) -> None:
    """Threshold transfer: out-of-fold normals median at 0.1 by construction; unseen normals
    scored by the final model (through ONNX Runtime) must land near it, not drift towards 0.5
    (false rejects) or far below (the threshold then sits too high: missed defects)."""
    summary = classification_model.evaluation
    assert summary is not None
    norm = classification_model.package.manifest.score_normalization
    center, scale = float(norm["center"]), float(norm["scale"])
    oof_median = float(classification_model.details["oof_normal_median"])
    unseen = [r.detection.anomaly_score for r in summary.images if not r.sample.is_anomalous]
    unseen_median = float(np.median([_raw(s, center, scale) for s in unseen]))
    drift = (unseen_median - oof_median) / (center - oof_median)
    assert abs(drift) <= DRIFT_BOUND, drift
    assert classification_model.details["distance_footing"]["factor"] <= 1.0
