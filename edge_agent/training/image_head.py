"""Learning from anomalous images without masks, at image level: a stacked image score.

The memory bank says how unlike any normal patch an image's worst region is (the raw score). It
cannot see what is wrong with an image as a whole: a missing limb leaves only background patches,
each of them normal. The image head adds what the mean of the image's patch features says, in a
few principal directions of the training images: a logistic regression on

    [raw score, PCA_r(mean patch feature)]  ->  image logit,

class-balanced and strongly L2-regularised (5 to 10 anomalous images teach it). It is fitted on
the out-of-fold raw scores, so it weighs them as they will be on new images, and scored out of fold
itself (nested in fit.py's folds) for the threshold. It is kept only when those out-of-fold logits
separate the training images at least as well as the plain raw scores (mil.separation).
The exported graph computes the same: raw score, mean patch feature, this linear map.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ImageHeadSettings:
    components: int = 8  # principal directions of the pooled features
    l2: float = 1.0  # on the standardised inputs; the raw-score weight is not penalised
    steps: int = 300


class ImageHead(nn.Module):
    """(raw image score [1], patch features [P, D]) -> image logit [1]."""

    def __init__(self, feature_dim: int, components: int) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.register_buffer("projection", torch.zeros(feature_dim, components))  # scaled PCs
        self.register_buffer("weight", torch.zeros(components))
        self.register_buffer("score_mean", torch.zeros(()))
        self.register_buffer("score_weight", torch.ones(()))
        self.register_buffer("bias", torch.zeros(()))

    def forward(self, raw: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        pooled = patches.mean(dim=0) - self.feature_mean
        return (
            (raw - self.score_mean) * self.score_weight + (pooled @ self.projection) @ self.weight + self.bias
        )

    def batch(self, raw: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """Training-side form: raw [N], pooled [N, D] (already means of the patch features)."""
        z = (pooled - self.feature_mean) @ self.projection
        return (raw - self.score_mean) * self.score_weight + z @ self.weight + self.bias


def fit_image_head(
    raw: torch.Tensor, pooled: torch.Tensor, labels: torch.Tensor, settings: ImageHeadSettings
) -> ImageHead:
    """raw [N] out-of-fold scores, pooled [N, D] mean patch features, labels [N] bool."""
    raw = raw.double()
    pooled = pooled.double()
    count, dim = pooled.shape
    components = max(1, min(settings.components, count - 2, dim))
    mean = pooled.mean(0)
    _, singular, vt = torch.linalg.svd(pooled - mean, full_matrices=False)
    scale = (singular[:components] / max(1.0, (count - 1) ** 0.5)).clamp_min(1e-9)
    projection = vt[:components].T / scale  # unit variance per component
    z = (pooled - mean) @ projection
    score_mean = raw.mean()
    score_std = raw.std().clamp_min(1e-9)
    x = torch.cat([((raw - score_mean) / score_std).unsqueeze(1), z], dim=1)
    y = labels.double()
    positives = float(y.sum())
    weights = torch.where(y > 0, 0.5 / positives, 0.5 / (count - positives))
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    penalty = torch.full((x.shape[1],), settings.l2, dtype=torch.float64)
    penalty[0] = 0.0
    optimizer = torch.optim.LBFGS([w, b], lr=1.0, max_iter=settings.steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = (F.binary_cross_entropy_with_logits(x @ w + b, y, reduction="none") * weights).sum()
        loss = loss + 0.5 * (penalty * w * w).sum() / count
        loss.backward()
        return loss

    optimizer.step(closure)
    head = ImageHead(dim, components)
    with torch.no_grad():
        head.feature_mean.copy_(mean.float())
        head.projection.copy_(projection.float())
        head.weight.copy_(w[1:].float())
        head.score_mean.copy_(score_mean.float())
        head.score_weight.copy_((w[0] / score_std).float())
        head.bias.copy_(b.float())
    for buffer in head.buffers():
        buffer.requires_grad_(False)
    return head


@dataclass
class StackResult:
    head: ImageHead | None
    oof_scores: np.ndarray
    details: dict[str, object] = field(default_factory=dict)


def fit_stack(
    raw: np.ndarray,
    pooled: torch.Tensor,
    is_anomalous: np.ndarray,
    fold_of: np.ndarray,
    folds: int,
    settings: ImageHeadSettings,
    separation: object,
) -> StackResult:
    """Out-of-fold image logits (nested in the folds) and the final head on every image."""
    labels = torch.from_numpy(np.asarray(is_anomalous, dtype=bool))
    raw_t = torch.from_numpy(np.asarray(raw, dtype=np.float64))
    oof = np.empty(len(raw))
    for k in range(folds):
        train = np.flatnonzero(fold_of != k)
        held = np.flatnonzero(fold_of == k)
        if not labels[train].any() or labels[train].all():
            oof[held] = raw[held]
            continue
        head_k = fit_image_head(raw_t[train], pooled[train], labels[train], settings)
        with torch.no_grad():
            oof[held] = head_k.batch(raw_t[held].float(), pooled[held].float()).double().numpy()
    plain = separation(np.asarray(raw, dtype=np.float64), is_anomalous)  # type: ignore[operator]
    learnt = separation(oof, is_anomalous)  # type: ignore[operator]
    details: dict[str, object] = {
        "kind": "stacked image head",
        "components": settings.components,
        "oof_separation_plain": round(plain, 5),
        "oof_separation_head": round(learnt, 5),
        "used": learnt >= plain,
    }
    if learnt < plain:
        return StackResult(head=None, oof_scores=np.asarray(raw, dtype=np.float64), details=details)
    head = fit_image_head(raw_t, pooled, labels, settings)
    return StackResult(head=head, oof_scores=oof, details=details)
