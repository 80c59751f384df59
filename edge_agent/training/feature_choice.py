"""Which patch features a classification model uses, chosen on its own training images.

Why: the standard features (longer side scaled to 320 px, stride-8 and stride-16 taps, 3x3
averaging) suit objects and defects of a few pixels and more, but they blur away a 1-2 px crack on
a textured surface (EL images of solar cells, cast metal, fabric). No single setting suits every
product, and a Lookout for Vision user sets none, so the trainer measures.

How: when a classification project has enough anomalous training images, every candidate's
features are extracted and each training image is scored out of fold by a plain memory bank (the
folds and bank size that `fit` uses). The candidate whose scores separate anomalous from normal
images best (soft ROC AUC, `mil.separation`) wins, but the standard features are kept unless
another candidate beats them by `MARGIN`: with 5 to 20 anomalous images a small lead is noise,
and a finer candidate costs latency. Segmentation projects and projects without anomalous
images keep the standard features. The candidates, their separations and the reason for the choice
are recorded in the manifest (`provenance.features.choice`).

A candidate also bounds its own memory bank: finer features give each image more patches, so
both the bank's pool and the graph's nearest-neighbour matmul grow. `fine` keeps a smaller bank,
which the choice's fold banks use too, so it is judged as it would be served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from edge_agent.training.features import FeatureConfig
from edge_agent.training.fit import FitSettings, FoldBanks, build_fold_banks, patch_rows
from edge_agent.training.graph import MapSmoother
from edge_agent.training.memory_bank import distances
from edge_agent.training.mil import separation

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """Patch features and the largest memory bank the trainer gives them."""

    features: FeatureConfig
    max_bank: int | None = None  # None: FitSettings.max_bank

    def fit_settings(self, settings: FitSettings) -> FitSettings:
        """`settings` with this candidate's bank cap applied (never raised above the caller's)."""
        if self.max_bank is None or self.max_bank >= settings.max_bank:
            return settings
        return replace(settings, max_bank=self.max_bank)


STANDARD = "standard"
# The standard features and a finer sampling of the same taps for thin defects (a 1-2 px crack
# spans a quarter of a stride-8 cell at 320 px; at 448 px the cells are 30% smaller and the backbone
# sees the crack magnified). `fine` has twice the patches per image and twice the backbone's
# pixels; its bank of at most 600 patches keeps its graph near the standard one's latency (1.2-1.3x on
# 224x224 images, against 2.8x with the standard cap) at the same F1 on thin cracks.
# bench/README.md#accuracy has the measurements behind both.
CANDIDATES: dict[str, Candidate] = {
    STANDARD: Candidate(FeatureConfig()),
    "fine": Candidate(FeatureConfig(long_side=448), max_bank=600),
}
MIN_ANOMALOUS = 5  # fewer anomalous images cannot rank candidates
MARGIN = 0.02  # soft-AUC lead a candidate needs over the standard features

Extract = Callable[[FeatureConfig], torch.Tensor]


@dataclass
class FeatureChoice:
    name: str
    config: FeatureConfig
    settings: FitSettings  # the caller's, with the chosen candidate's bank cap
    features: torch.Tensor  # [N, D, h, w] of the chosen config (not extracted twice)
    details: dict[str, object]
    fold_banks: FoldBanks | None = None  # the chosen features' fold banks, for `fit` to reuse


def oof_image_scores(features: torch.Tensor, fold_banks: FoldBanks) -> np.ndarray:
    """Per training image, the plain memory bank's score out of fold, as `fit` computes it."""
    count, dim, h, w = features.shape
    patches = patch_rows(features)
    distance = torch.empty(count, h * w)
    for fold_bank in fold_banks.banks:
        held = np.flatnonzero(fold_banks.fold_of == fold_bank.fold)
        distance[held] = distances(patches[held].reshape(-1, dim), fold_bank.bank).view(len(held), h * w)
    with torch.no_grad():
        smoothed = MapSmoother()(distance.view(count, 1, h, w))
    return smoothed.amax(dim=(1, 2, 3)).numpy().astype(np.float64)


def choose_features(
    extract: Extract,
    is_anomalous: np.ndarray,
    classification: bool,
    settings: FitSettings,
    seed: int,
) -> FeatureChoice:
    """The standard features, or a candidate that separates the training images clearly better."""
    is_anomalous = np.asarray(is_anomalous, dtype=bool)
    anomalous = int(is_anomalous.sum())
    standard = CANDIDATES[STANDARD]
    if not classification:
        reason = "segmentation: the patch head learns from the masks"
    elif not settings.supervised:
        reason = "plain memory-bank scoring (--no-head)"
    elif anomalous < MIN_ANOMALOUS:
        reason = f"{anomalous} anomalous training images: {MIN_ANOMALOUS} are needed to rank candidates"
    else:
        reason = ""
    if reason:
        details = {"chosen": STANDARD, "reason": reason}
        settings = standard.fit_settings(settings)
        return FeatureChoice(STANDARD, standard.features, settings, extract(standard.features), details)
    features = {name: extract(candidate.features) for name, candidate in CANDIDATES.items()}
    banks = {
        name: build_fold_banks(patch_rows(f), is_anomalous, CANDIDATES[name].fit_settings(settings), seed)
        for name, f in features.items()
    }
    scores = {
        name: separation(oof_image_scores(features[name], banks[name]), is_anomalous) for name in features
    }
    best = max(scores, key=lambda name: scores[name])
    if scores[best] < scores[STANDARD] + MARGIN:
        best = STANDARD
        reason = f"no candidate separates the out-of-fold training scores {MARGIN} better"
    else:
        reason = (
            f"separates the out-of-fold training scores best, {scores[best] - scores[STANDARD]:.3f} ahead"
        )
    logger.info(
        "op=feature_choice chosen=%s %s",
        best,
        " ".join(f"{name}={value:.4f}" for name, value in scores.items()),
    )
    details = {
        "chosen": best,
        "reason": reason,
        "separation": {name: round(value, 4) for name, value in scores.items()},
        "candidates": {name: asdict(candidate) for name, candidate in CANDIDATES.items()},
    }
    chosen = CANDIDATES[best]
    return FeatureChoice(
        best, chosen.features, chosen.fit_settings(settings), features[best], details, banks[best]
    )
