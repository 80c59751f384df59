"""`validate`: the guide's rules for a dataset about to be trained or tested on.

Roles: "single" (one dataset the trainer splits itself), "train" and "test" (separate datasets).
The minimum counts are the guide's (section 3 and the quotas chapter); segmentation counts only
images with exactly one anomaly label towards each label's minimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edge_agent.dataset.errors import DatasetError
from edge_agent.dataset.images import inspect_image
from edge_agent.dataset.loader import check_mask
from edge_agent.dataset.types import Dataset

Role = Literal["single", "train", "test"]
MAX_LABELS_PER_DATASET = 100
MAX_LABELS_PER_MASK = 20


@dataclass(frozen=True)
class Minimums:
    normal: int
    anomalous: int  # classification
    per_label: int  # segmentation, single-label images


MINIMUMS: dict[str, Minimums] = {
    "single": Minimums(normal=20, anomalous=10, per_label=20),
    "train": Minimums(normal=10, anomalous=0, per_label=10),
    "test": Minimums(normal=10, anomalous=10, per_label=10),
}
# Largest dataset sizes (quotas chapter); a single dataset is bounded like a training set.
MAX_IMAGES: dict[tuple[str, str], int] = {
    ("classification", "single"): 16_000,
    ("classification", "train"): 16_000,
    ("classification", "test"): 4_000,
    ("segmentation", "single"): 8_000,
    ("segmentation", "train"): 8_000,
    ("segmentation", "test"): 800,
}


def validate(dataset: Dataset, role: Role = "single", check_files: bool = True) -> None:
    """Raise DatasetError naming the file (or dataset) and the fix for the first rule broken.

    check_files re-opens every image and mask (format, size, colours); importers already did,
    so callers holding a freshly loaded dataset may pass False to save the time.
    """
    if role not in MINIMUMS:
        raise DatasetError(f"dataset role {role!r} is unknown; expected 'single', 'train' or 'test'")
    name = dataset.source or "the dataset"
    if not dataset.samples:
        raise DatasetError(f"{name} has no labelled images")
    if check_files:
        _check_files(dataset)
    _check_labels(dataset, name)
    _check_counts(dataset, role, name)


def _check_files(dataset: Dataset) -> None:
    colors = {label.name: label.hex_color for label in dataset.labels}
    for sample in dataset.samples:
        info = inspect_image(sample.image)
        if (info.width, info.height) != (dataset.width, dataset.height):
            raise DatasetError(
                f"image {sample.image} is {info.width}x{info.height} but the dataset's images are "
                f"{dataset.width}x{dataset.height}: every image must have the same size"
            )
        if sample.mask is not None:
            unknown = [n for n in sample.labels if n not in colors]
            if unknown:
                raise DatasetError(f"image {sample.image} has labels {unknown} the dataset does not define")
            check_mask(sample, info, colors)


def _check_labels(dataset: Dataset, name: str) -> None:
    if len(dataset.labels) > MAX_LABELS_PER_DATASET:
        raise DatasetError(
            f"{name} has {len(dataset.labels)} anomaly labels; the limit is {MAX_LABELS_PER_DATASET}: merge labels"
        )
    segmentation = dataset.model_type == "segmentation"
    for sample in dataset.samples:
        if len(sample.labels) > MAX_LABELS_PER_MASK:
            raise DatasetError(
                f"mask {sample.mask} has {len(sample.labels)} labels; the limit is {MAX_LABELS_PER_MASK} per mask"
            )
        if not segmentation:
            continue
        if sample.is_anomalous and sample.mask is None:
            raise DatasetError(
                f"image {sample.image} is anomalous but has no mask, in a segmentation dataset: add a mask "
                "(anomaly-mask-ref) with its labels, or drop the masks of every image to train a classifier"
            )
        if sample.is_anomalous and not sample.labels:
            raise DatasetError(
                f"image {sample.image} is anomalous but its mask {sample.mask} paints no anomaly label: "
                "draw the anomaly in the mask and list its colour in internal-color-map"
            )
        if not sample.is_anomalous and sample.labels:
            raise DatasetError(
                f"image {sample.image} is labelled normal but its mask has labels {list(sample.labels)}: "
                "label it anomaly or remove the mask"
            )


def _check_counts(dataset: Dataset, role: str, name: str) -> None:
    need = MINIMUMS[role]
    model_type = dataset.model_type
    normal, anomalous = len(dataset.normal), len(dataset.anomalous)
    total = len(dataset.samples)
    limit = MAX_IMAGES[(model_type, role)]
    if total > limit:
        raise DatasetError(
            f"{name} has {total} images; a {model_type} {role} dataset may hold at most {limit}: remove images"
        )
    layout = "a single dataset" if role == "single" else f"a separate {role} dataset"
    if normal < need.normal:
        raise DatasetError(
            f"{name} has {normal} normal images; {layout} needs at least {need.normal}: add normal images"
        )
    if model_type == "classification":
        if anomalous < need.anomalous:
            raise DatasetError(
                f"{name} has {anomalous} anomalous images; {layout} needs at least {need.anomalous}: "
                "add anomalous images"
            )
        return
    single = dataset.single_label_counts()
    short = {label: count for label, count in single.items() if count < need.per_label}
    if short:
        listing = ", ".join(f"{label}: {count}" for label, count in sorted(short.items()))
        raise DatasetError(
            f"{name} has too few images with exactly one anomaly label ({listing}); {layout} needs at "
            f"least {need.per_label} per label: add single-label images of those labels"
        )
