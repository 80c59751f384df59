"""Learning from anomalous images without masks: a multiple-instance patch head.

A classification dataset says *that* an image is anomalous, not where. Multiple-instance learning
reads that as "at least a few of its patches are defect patches": the top-scoring patches of each
anomalous image are the positives, every patch of a normal image a negative, the rest of an
anomalous image is ignored. The first round ranks patches by their out-of-fold memory-bank
distance; later rounds by the previous round's out-of-fold head map, so the head can move the
positives onto what it learnt the defects look like.

The head is the same `PatchHead` the segmentation models use (feature + bank distance -> logits,
classes normal and anomaly), so the exported graph is unchanged: map -> smoothing -> max -> score.
Every image is scored by a head that never saw it (the folds of fit.py). The head is kept only when
its out-of-fold image scores separate normal from anomalous images at least as well as the plain
memory-bank scores do; otherwise the model stays plain PatchCore.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from edge_agent.training.graph import MapSmoother
from edge_agent.training.head import PatchHead, anomaly_logit, fit_head


@dataclass(frozen=True)
class MilSettings:
    top_fraction: float = 0.01  # share of an anomalous image's patches taken as its positives
    min_top: int = 3
    rounds: int = 2
    hidden: int = 0  # 0: logistic regression (few positives: a linear head generalises best)
    steps: int = 200
    weight_decay: float = 1e-3
    max_normal_patches: int = 20000


@dataclass
class MilResult:
    head: PatchHead | None  # None: the plain memory bank separates the training images better
    oof_map: torch.Tensor  # [N, P] out-of-fold anomaly logits of the last round
    details: dict[str, object] = field(default_factory=dict)


def image_scores(patch_map: torch.Tensor, grid: tuple[int, int]) -> np.ndarray:
    """What the graph computes from a patch map: max of the smoothed map, per image."""
    with torch.no_grad():
        smoothed = MapSmoother()(patch_map.view(len(patch_map), 1, *grid))
    return smoothed.amax(dim=(1, 2, 3)).numpy().astype(np.float64)


def separation(scores: np.ndarray, is_anomalous: np.ndarray) -> float:
    """Soft ROC AUC: mean over (anomalous, normal) pairs of sigmoid(gap / normal spread).

    Unlike AUC it keeps rewarding a wider gap once the two groups no longer overlap, and it does
    not depend on the scores' units, so two models' out-of-fold scores can be compared.
    """
    labels = np.asarray(is_anomalous, dtype=bool)
    normal, anomalous = scores[~labels], scores[labels]
    spread = float(normal.std()) or float(np.abs(normal).mean()) or 1.0
    gap = (anomalous[:, None] - normal[None, :]) / spread
    return float(np.mean(1.0 / (1.0 + np.exp(-np.clip(gap, -50, 50)))))


def _targets(scores: torch.Tensor, is_anomalous: np.ndarray, top: int) -> torch.Tensor:
    targets = torch.zeros(scores.shape, dtype=torch.long)
    for i in np.flatnonzero(is_anomalous):
        targets[i] = -1
        targets[i, torch.topk(scores[i], top).indices] = 1
    return targets


def _fit(
    patches: torch.Tensor,
    distance: torch.Tensor,
    targets: torch.Tensor,
    image_ids: np.ndarray,
    settings: MilSettings,
    seed: int,
) -> PatchHead:
    dim = patches.shape[-1]
    x = patches[image_ids].reshape(-1, dim)
    d = distance[image_ids].reshape(-1)
    y = targets[image_ids].reshape(-1)
    keep = y >= 0
    normal = torch.nonzero(keep & (y == 0)).flatten()
    if len(normal) > settings.max_normal_patches:
        generator = torch.Generator().manual_seed(seed)
        drop = normal[torch.randperm(len(normal), generator=generator)[settings.max_normal_patches :]]
        keep[drop] = False
    return fit_head(
        x[keep], d[keep], y[keep], 2, settings.hidden, settings.steps, settings.weight_decay, seed
    )


def fit_mil(
    patches: torch.Tensor,
    oof_distance: torch.Tensor,
    is_anomalous: np.ndarray,
    fold_of: np.ndarray,
    folds: int,
    grid: tuple[int, int],
    settings: MilSettings,
    seed: int,
    step: Callable[[str], None],
) -> MilResult:
    """patches [N, P, D]; oof_distance [N, P] (scaled out-of-fold bank distances)."""
    count, num_patches, dim = patches.shape
    top = max(settings.min_top, math.ceil(settings.top_fraction * num_patches))
    ranking = oof_distance
    oof_map = oof_distance
    for round_index in range(settings.rounds):
        targets = _targets(ranking, is_anomalous, top)
        oof_map = torch.empty(count, num_patches)
        for k in range(folds):
            head_k = _fit(patches, oof_distance, targets, np.flatnonzero(fold_of != k), settings, seed + k)
            held = np.flatnonzero(fold_of == k)
            with torch.no_grad():
                logits = head_k(patches[held].reshape(-1, dim), oof_distance[held].reshape(-1))
            oof_map[held] = anomaly_logit(logits).view(len(held), num_patches)
        step(f"image head round {round_index + 1}/{settings.rounds}")
        ranking = oof_map
    plain = separation(image_scores(oof_distance, grid), is_anomalous)
    learnt = separation(image_scores(oof_map, grid), is_anomalous)
    details: dict[str, object] = {
        "kind": "multiple-instance patch head",
        "positives_per_image": top,
        "rounds": settings.rounds,
        "hidden": settings.hidden,
        "oof_separation_plain": round(plain, 5),
        "oof_separation_head": round(learnt, 5),
    }
    if learnt < plain:
        details["used"] = False
        return MilResult(head=None, oof_map=oof_distance, details=details)
    head = _fit(patches, oof_distance, targets, np.arange(count), settings, seed)
    details["used"] = True
    return MilResult(head=head, oof_map=oof_map, details=details)
