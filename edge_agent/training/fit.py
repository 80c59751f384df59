"""Fit the anomaly model on extracted patch features, scoring every training image out-of-fold.

How this works: the training images are dealt into K folds (normal and anomalous separately).
For each fold, a memory bank built from the *other* folds' normal images gives every patch of the
fold an honest nearest-neighbour distance (a bank containing the image itself would say 0). With
masks, a patch head is then fitted per fold on the other folds' (feature, distance) pairs and
scores the held-out fold. Without masks (classification) but with anomalous images, a
multiple-instance head learns the same way from the top-scoring patches of each anomalous image
(mil.py), or, by default, a stacked image head on the raw score and the pooled patch features
(image_head.py). These out-of-fold maps set the image threshold, the score scale and the pixel threshold;
the final bank and head are refitted on everything.

The final bank holds every normal image, a fold's bank only (K-1)/K of them, so an unseen image
lies closer to the final bank than a held-out image to its fold's bank. With anomalous images,
`footing_factor` measures that shrinkage from banks of two sizes and the final graph's distance
scale absorbs it, so the threshold chosen on out-of-fold scores applies to the final model's scores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from edge_agent.training.calibration import ScoreCalibration, calibrate, iou_best_pixel_threshold
from edge_agent.training.graph import MapSmoother
from edge_agent.training.head import PatchHead, anomaly_logit, fit_head
from edge_agent.training.image_head import ImageHead, ImageHeadSettings, fit_stack
from edge_agent.training.memory_bank import distances, select_coreset
from edge_agent.training.mil import MilSettings, fit_mil, separation

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class FitSettings:
    folds: int = 5
    supervised: bool = True  # learn from masks or anomalous images (False: plain PatchCore)
    coreset_fraction: float = 0.05  # cookies: half the bank of 0.1, IoU within 0.004 (bench/README.md)
    max_bank: int = 4096  # bounds the graph's matmul: latency grows linearly with the bank
    head_hidden: int = 64  # 0: logistic regression
    head_steps: int = 300
    weight_decay: float = 1e-3
    positive_fraction: float = 0.5  # a patch is a defect patch when this much of it is masked
    # Subsample of normal patches the head trains on. Cookies: 30000 trained 1.6x slower at the
    # same IoU (bench/README.md#training-time).
    max_normal_patches: int = 15000
    # Classification with anomalous images: "stack" (image head), "mil" (patch head) or "none".
    image_model: str = "stack"
    image: ImageHeadSettings = field(default_factory=ImageHeadSettings)
    mil: MilSettings = field(default_factory=MilSettings)
    footing: bool = True  # put final-model scores on the out-of-fold footing (needs anomalous images)


@dataclass
class FitResult:
    bank: torch.Tensor
    distance_scale: float
    head: PatchHead | None
    calibration: ScoreCalibration
    pixel_threshold: float
    oof_scores: np.ndarray
    oof_pixel_iou: float | None
    details: dict[str, object] = field(default_factory=dict)
    image_head: ImageHead | None = None


def fold_ids(is_anomalous: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number per image, dealing normal and anomalous images separately (stratified)."""
    rng = np.random.default_rng(seed)
    ids = np.zeros(len(is_anomalous), dtype=np.int64)
    for group in (np.flatnonzero(~is_anomalous), np.flatnonzero(is_anomalous)):
        order = rng.permutation(group)
        ids[order] = np.arange(len(order)) % folds
    return ids


@dataclass(frozen=True)
class FoldBank:
    fold: int
    rest: np.ndarray  # the other folds' normal images, whose patches the bank was chosen from
    chosen: torch.Tensor  # the coreset's indices into those images' patches, flattened
    bank: torch.Tensor  # [B, D]


@dataclass(frozen=True)
class FoldBanks:
    """The out-of-fold memory banks of one set of patch features: what `fit` and the feature
    choice score held-out images against (built once, used by both)."""

    folds: int
    fold_of: np.ndarray  # fold number per image
    banks: tuple[FoldBank, ...]


def patch_rows(features: torch.Tensor) -> torch.Tensor:
    """[N, D, h, w] features as [N, h*w, D] patch rows."""
    count, dim, h, w = features.shape
    return features.permute(0, 2, 3, 1).reshape(count, h * w, dim).contiguous()


def build_fold_banks(
    patches: torch.Tensor,
    is_anomalous: np.ndarray,
    settings: FitSettings,
    seed: int,
    progress: Progress | None = None,
) -> FoldBanks:
    """Per fold k, a coreset of the other folds' normal patches (patches [N, P, D]).

    Fold k's bank never holds a patch of fold k's images, so it scores them as it would score
    unseen images."""
    normal = np.flatnonzero(~is_anomalous)
    folds = max(2, min(settings.folds, len(normal)))
    fold_of = fold_ids(is_anomalous, folds, seed)
    per_image, dim = patches.shape[1], patches.shape[2]
    banks = []
    for k in range(folds):
        rest = normal[fold_of[normal] != k]
        pool = patches[rest].reshape(-1, dim)
        chosen = select_coreset(pool, _bank_size(len(rest) * per_image, settings), seed + k)
        banks.append(FoldBank(k, rest, chosen, pool[chosen].clone()))
        if progress:
            progress(f"memory bank fold {k + 1}/{folds}")
    return FoldBanks(folds, fold_of, tuple(banks))


def _bank_size(patch_count: int, settings: FitSettings) -> int:
    return max(1, min(settings.max_bank, round(settings.coreset_fraction * patch_count)))


def _build_bank(patches: torch.Tensor, settings: FitSettings, seed: int) -> torch.Tensor:
    return patches[select_coreset(patches, _bank_size(len(patches), settings), seed)].clone()


def patch_targets(
    label_index: np.ndarray, grid: tuple[int, int], num_labels: int, positive: float
) -> np.ndarray:
    """Per patch: 0 normal, k label k, -1 ignored (partly masked border patches).

    A patch is a label-k patch when its masked share reaches `positive`, or half of the largest
    share any patch of this image has for k: a crack narrower than a patch never fills half of
    one, and would otherwise teach the head nothing.
    """
    onehot = torch.from_numpy(label_index).long()
    fractions = torch.stack([(onehot == k).float() for k in range(1, num_labels + 1)])
    fractions = F.adaptive_avg_pool2d(fractions.unsqueeze(0), grid)[0].flatten(1)  # [L, P]
    cut = torch.clamp(0.5 * fractions.amax(dim=1, keepdim=True), max=positive)
    qualifies = (fractions >= cut) & (fractions > 0)
    score = torch.where(qualifies, fractions, torch.zeros_like(fractions))
    best_fraction, best_label = score.max(dim=0)
    targets = torch.full((fractions.shape[1],), -1, dtype=torch.long)
    targets[fractions.sum(0) == 0] = 0
    targets[best_fraction > 0] = best_label[best_fraction > 0] + 1
    return targets.numpy()


def fit(
    features: torch.Tensor,
    is_anomalous: np.ndarray,
    label_index: list[np.ndarray | None] | None,
    num_labels: int,
    settings: FitSettings,
    seed: int,
    progress: Progress | None = None,
    fold_banks: FoldBanks | None = None,
) -> FitResult:
    """features [N, D, h, w]; label_index: per image uint8 [H, W] (0 background), None for an
    anomalous image without a mask; the whole argument None for a classification model.
    fold_banks: `build_fold_banks` of these features with these settings and seed, when the caller
    has them already (the feature choice), else built here."""
    step = progress or (lambda _message: None)
    is_anomalous = np.asarray(is_anomalous, dtype=bool)
    count, dim, h, w = features.shape
    patches = patch_rows(features)
    normal = np.flatnonzero(~is_anomalous)
    if len(normal) < 2:
        raise ValueError(f"training needs at least 2 normal images, got {len(normal)}")
    if fold_banks is None:
        fold_banks = build_fold_banks(patches, is_anomalous, settings, seed, step)
    elif len(fold_banks.fold_of) != count:
        raise ValueError(f"fold banks of {len(fold_banks.fold_of)} images given for {count}")
    folds, fold_of = fold_banks.folds, fold_banks.fold_of
    supervised = settings.supervised and label_index is not None and bool(is_anomalous.any())

    # 1. out-of-fold distances
    oof_distance = torch.empty(count, h * w)
    measure_footing = settings.footing and bool(is_anomalous.any()) and folds >= 3
    smoother = MapSmoother()
    large: list[np.ndarray] = []
    small: list[np.ndarray] = []
    sizes: list[tuple[int, int]] = []
    for fold_bank in fold_banks.banks:
        k, rest, chosen, bank_k = fold_bank.fold, fold_bank.rest, fold_bank.chosen, fold_bank.bank
        held = np.flatnonzero(fold_of == k)
        oof_distance[held] = distances(patches[held].reshape(-1, dim), bank_k).view(len(held), h * w)
        held_normal = held[~is_anomalous[held]]
        keep = torch.from_numpy(fold_of[rest] != (k + 1) % folds)[chosen // (h * w)]
        if measure_footing and len(held_normal) and bool(keep.any()):
            fewer = distances(patches[held_normal].reshape(-1, dim), bank_k[keep])
            with torch.no_grad():
                for out, dist in ((large, oof_distance[held_normal]), (small, fewer)):
                    out.append(smoother(dist.view(len(held_normal), 1, h, w)).amax(dim=(1, 2, 3)).numpy())
            sizes.append((len(rest), int(np.sum(fold_of[rest] != (k + 1) % folds))))
    distance_scale = float(oof_distance[normal].std()) or 1.0
    oof_distance /= distance_scale
    bank = _build_bank(patches[normal].reshape(-1, dim), settings, seed + folds)
    step("memory bank")
    footing, footing_info = 1.0, None
    if measure_footing:
        weights = [len(x) for x in large]
        n_large = float(np.average([a for a, _ in sizes], weights=weights)) if sizes else 0.0
        n_small = float(np.average([b for _, b in sizes], weights=weights)) if sizes else 0.0
        footing, footing_info = footing_factor(large, small, n_large, n_small, len(normal))

    # 2. supervised head on out-of-fold distances
    head: PatchHead | None = None
    oof_map = oof_distance
    targets = None
    if supervised:
        assert label_index is not None
        ignored = np.full(h * w, -1, dtype=np.int64)
        targets = torch.from_numpy(
            np.stack(
                [
                    ignored
                    if li is None
                    else patch_targets(li, (h, w), num_labels, settings.positive_fraction)
                    for li in label_index
                ]
            )
        )
        oof_map = torch.empty(count, h * w)
        for k in range(folds):
            train_ids = np.flatnonzero(fold_of != k)
            head_k = _fit_head(patches, oof_distance, targets, train_ids, num_labels, settings, seed + k)
            held = np.flatnonzero(fold_of == k)
            with torch.no_grad():
                logits = head_k(patches[held].reshape(-1, dim), oof_distance[held].reshape(-1))
            oof_map[held] = anomaly_logit(logits).view(len(held), h * w)
            step(f"patch head fold {k + 1}/{folds}")
        head = _fit_head(patches, oof_distance, targets, np.arange(count), num_labels, settings, seed)
        step("patch head")
    image_info = None
    learn_images = settings.supervised and label_index is None and bool(is_anomalous.any())
    if learn_images and settings.image_model == "mil":
        mil = fit_mil(patches, oof_distance, is_anomalous, fold_of, folds, (h, w), settings.mil, seed, step)
        image_info = mil.details
        if mil.head is not None:
            head, oof_map = mil.head, mil.oof_map

    # 3. thresholds from the out-of-fold maps
    with torch.no_grad():
        smoothed = smoother(oof_map.view(count, 1, h, w))
    oof_scores = smoothed.amax(dim=(1, 2, 3)).numpy().astype(np.float64)
    image_head = None
    if learn_images and settings.image_model == "stack":
        stack = fit_stack(
            oof_scores, patches.mean(dim=1), is_anomalous, fold_of, folds, settings.image, separation
        )
        image_info = stack.details
        image_head, oof_scores = stack.head, stack.oof_scores
        step("image head")
    calibration = calibrate(oof_scores, is_anomalous)
    pixel_threshold, pixel_iou = 0.0, None
    if label_index is not None:
        size = tuple(smoothed.shape[-2:])
        known = [i for i, li in enumerate(label_index) if li is not None]
        truth = np.stack(
            [
                F.adaptive_avg_pool2d(torch.from_numpy(label_index[i] > 0).float()[None, None], size)[
                    0, 0
                ].numpy()
                >= 0.5
                for i in known
            ]
        )
        pixel_threshold, pixel_iou = iou_best_pixel_threshold(smoothed[known, 0].numpy(), truth)
    details: dict[str, object] = {
        "folds": folds,
        "bank_size": len(bank),
        "distance_footing": footing_info,
        "oof_normal_median": float(np.median(oof_scores[~is_anomalous])),
        "oof_separation": separation(oof_scores, is_anomalous) if is_anomalous.any() else None,
        "image_head": image_info,
        "feature_dim": dim,
        "feature_grid": [h, w],
        "supervised_head": supervised,
        "head_hidden": settings.head_hidden if supervised else None,
        "oof_pixel_iou": pixel_iou,
    }
    logger.info(
        "op=fit images=%d bank=%d supervised=%s threshold=%.4f method=%s",
        count,
        len(bank),
        supervised,
        calibration.raw_threshold,
        calibration.method,
    )
    return FitResult(
        bank=bank,
        distance_scale=distance_scale * footing,
        head=head,
        calibration=calibration,
        pixel_threshold=pixel_threshold,
        oof_scores=oof_scores,
        oof_pixel_iou=pixel_iou,
        details=details,
        image_head=image_head,
    )


def footing_factor(
    large: list[np.ndarray], small: list[np.ndarray], n_large: float, n_small: float, n_final: int
) -> tuple[float, dict[str, object]]:
    """How much closer an unseen image lies to the final bank than to a fold's bank (factor <= 1).

    large/small: per fold, the raw scores of its held-out normal images against the fold's bank
    (n_large normal images on average) and against the part of that bank drawn from n_small of them
    (one more fold left out; the coreset keeps about the same share of each image's patches, so it
    is a bank of fewer images at the same density, at no extra cost). Nearest-neighbour distances
    shrink as a power of the number of bank images: the two sizes give the exponent, which is
    extrapolated to the n_final images of the final bank.
    """
    if not large or n_small <= 0 or n_small >= n_large:
        return 1.0, {"factor": 1.0, "reason": "too few normal images to measure it"}
    ratio = float(np.concatenate(small).sum() / max(np.concatenate(large).sum(), 1e-12))
    exponent = float(np.clip(np.log(max(ratio, 1e-9)) / np.log(n_large / n_small), 0.0, 1.0))
    factor = float((n_large / n_final) ** exponent)
    return factor, {
        "factor": round(factor, 5),
        "exponent": round(exponent, 4),
        "fold_bank_images": round(n_large, 2),
        "smaller_bank_images": round(n_small, 2),
        "final_bank_images": n_final,
    }


def _fit_head(
    patches: torch.Tensor,
    distance: torch.Tensor,
    targets: torch.Tensor,
    image_ids: np.ndarray,
    num_labels: int,
    settings: FitSettings,
    seed: int,
) -> PatchHead:
    dim = patches.shape[-1]
    x = patches[image_ids].reshape(-1, dim)
    d = distance[image_ids].reshape(-1)
    y = targets[image_ids].reshape(-1)
    keep = y >= 0
    x, d, y = x[keep], d[keep], y[keep]
    normal = torch.nonzero(y == 0).flatten()
    if len(normal) > settings.max_normal_patches:
        generator = torch.Generator().manual_seed(seed)
        drop = normal[torch.randperm(len(normal), generator=generator)[settings.max_normal_patches :]]
        mask = torch.ones(len(y), dtype=torch.bool)
        mask[drop] = False
        x, d, y = x[mask], d[mask], y[mask]
    return fit_head(
        x, d, y, 1 + num_labels, settings.head_hidden, settings.head_steps, settings.weight_decay, seed
    )
