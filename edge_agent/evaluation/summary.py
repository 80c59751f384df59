"""What an evaluation produced: per-image results and metrics, as frozen records."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edge_agent.dataset.types import Sample
from edge_agent.evaluation.metrics import Confusion
from edge_agent.inference import Detection
from edge_agent.model_package import ModelType

# Where the figures come from. "held-out": the served model package itself was run on each image
# (train passes only images it never learnt from). "out-of-fold": `train --refit-all` scored each
# training image with a model fitted without its fold; the package served learnt from all of them.
EvaluationBasis = Literal["held-out", "out-of-fold"]
HELD_OUT: EvaluationBasis = "held-out"
OUT_OF_FOLD: EvaluationBasis = "out-of-fold"


@dataclass(frozen=True)
class ImageResult:
    """One test image: its ground truth and `Predictor.predict`'s detection (mask dropped to save memory)."""

    sample: Sample
    detection: Detection
    predicted_labels: tuple[str, ...] = ()  # anomaly labels painted in the predicted mask
    label_iou: dict[str, float] = field(default_factory=dict)  # per true label of this image
    predicted_mask: Path | None = None  # PNG written under the output folder (segmentation)
    thumbnail: Path | None = None  # report picture

    @property
    def correct(self) -> bool:
        return self.detection.is_anomalous == self.sample.is_anomalous


@dataclass(frozen=True)
class LabelMetrics:
    """PixelAnomalyClassMetrics of one label (see metrics.LabelPixels for the definitions)."""

    name: str
    hex_color: str
    test_images: int  # test images whose ground truth contains the label
    precision: float | None
    recall: float | None
    f1: float | None
    aiou: float | None


@dataclass(frozen=True)
class ImageMetrics:
    confusion: Confusion
    precision: float | None
    recall: float | None
    f1: float | None
    roc_auc: float | None
    average_precision: float | None


@dataclass(frozen=True)
class EvaluationSummary:
    model_arn: str
    model_type: ModelType
    threshold: float
    dataset_source: str
    images: tuple[ImageResult, ...]
    metrics: ImageMetrics
    labels: tuple[LabelMetrics, ...]
    skipped: tuple[tuple[str, str], ...]  # (source-ref, reason) of images that could not be used
    number_of_training_images: int
    end_timestamp: str
    result_path: Path | None = None
    manifest_path: Path | None = None
    report_path: Path | None = None
    evaluation_basis: EvaluationBasis = HELD_OUT
    pixel_iou: float | None = None  # out-of-fold only: pooled anomaly-vs-background IoU of the fold maps

    @property
    def out_of_fold(self) -> bool:
        return self.evaluation_basis == OUT_OF_FOLD

    def basis_notes(self) -> tuple[str, ...]:
        """Plain sentences on where the figures come from (report, console), so nobody mistakes them."""
        count = len(self.images)
        if not self.out_of_fold:
            return (
                f"Held-out evaluation: the model package that is served was run on each of these "
                f"{count} images.",
            )
        notes = [
            "These figures are out-of-fold estimates on the training images: the model served was "
            f"refitted on all {count} images, and no image was held out from it.",
            "Each image was scored by a model fitted on the other folds. The threshold was chosen on "
            "these same scores, so precision, recall and F1 are optimistic; ROC AUC and average "
            "precision do not depend on the threshold.",
        ]
        if self.model_type == "segmentation":
            iou = "absent" if self.pixel_iou is None else f"{self.pixel_iou:.4f}"
            notes.append(
                "Per-label pixel metrics are absent: the fold models' masks are not kept. Pooled "
                "out-of-fold pixel IoU (any anomaly against background, at the anomaly map's "
                f"resolution, at the pixel threshold chosen on the same maps): {iou}."
            )
        return tuple(notes)

    @property
    def performance(self) -> dict[str, float | None]:
        """DescribeModel's `Performance` block: image-level metrics only."""
        return {
            "F1Score": self.metrics.f1,
            "Recall": self.metrics.recall,
            "Precision": self.metrics.precision,
        }
