"""What an imported dataset is, whatever it came from (manifest, folders, CSV).

Importers produce these records; the trainer and the evaluator consume them. Frozen, so a
dataset that exists has passed validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_agent.model_package import AnomalyLabel, ModelType


@dataclass(frozen=True)
class Sample:
    """One labelled image. `mask` is an RGB PNG painted in label colours (segmentation only)."""

    image: Path
    is_anomalous: bool
    mask: Path | None = None
    labels: tuple[str, ...] = ()  # anomaly label names present in the mask
    source_ref: str = ""  # the reference as written in the manifest (for EvaluationManifest)


@dataclass(frozen=True)
class Dataset:
    samples: tuple[Sample, ...]
    width: int
    height: int
    labels: tuple[AnomalyLabel, ...] = ()  # anomaly types with colours; empty for classification
    source: str = ""  # the manifest or folder it was imported from, for messages
    unlabelled: int = 0  # manifest lines skipped because class-name was neither normal nor anomaly

    @property
    def model_type(self) -> ModelType:
        """Segmentation when any anomalous image has a mask, as the guide infers it."""
        return "segmentation" if self.labels and any(s.mask for s in self.samples) else "classification"

    @property
    def normal(self) -> tuple[Sample, ...]:
        return tuple(s for s in self.samples if not s.is_anomalous)

    @property
    def anomalous(self) -> tuple[Sample, ...]:
        return tuple(s for s in self.samples if s.is_anomalous)

    def label_counts(self) -> dict[str, int]:
        """Images per anomaly label (an image with two labels counts for both)."""
        counts = {label.name: 0 for label in self.labels}
        for sample in self.samples:
            for name in sample.labels:
                counts[name] = counts.get(name, 0) + 1
        return counts

    def single_label_counts(self) -> dict[str, int]:
        """Images carrying exactly one label, per label: what the guide's minimum counts count."""
        counts = {label.name: 0 for label in self.labels}
        for sample in self.samples:
            if len(sample.labels) == 1:
                counts[sample.labels[0]] = counts.get(sample.labels[0], 0) + 1
        return counts
