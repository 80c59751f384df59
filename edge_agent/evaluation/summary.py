"""What an evaluation produced: per-image results and metrics, as frozen records."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.dataset.types import Sample
from edge_agent.evaluation.metrics import Confusion
from edge_agent.inference import Detection
from edge_agent.model_package import ModelType


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

    @property
    def performance(self) -> dict[str, float | None]:
        """DescribeModel's `Performance` block: image-level metrics only."""
        return {
            "F1Score": self.metrics.f1,
            "Recall": self.metrics.recall,
            "Precision": self.metrics.precision,
        }
