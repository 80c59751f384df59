"""`evaluate_out_of_fold`: the evaluation of a model refitted on every labelled image.

`train --refit-all` leaves no image the served model has not learnt from, and the served model on
its own training images says little (each normal image is in its memory bank). What is honest
instead are the out-of-fold scores of the fit: every training image scored by a model fitted
without its fold. This module turns them into the same summary, files and report as a held-out
evaluation, marked `out-of-fold` everywhere (`EvaluationSummary.basis_notes`). Metrics come from
the same `image_metrics` as a held-out evaluation; the decision is the served one
(float32 score >= threshold).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge_agent.dataset.types import Dataset
from edge_agent.evaluation.evaluator import image_metrics, write_outputs
from edge_agent.evaluation.report import write_thumbnail
from edge_agent.evaluation.summary import OUT_OF_FOLD, EvaluationSummary, ImageResult
from edge_agent.imaging.overlay import read_rgb
from edge_agent.inference import Detection, confidence_of
from edge_agent.model_package import Manifest


def out_of_fold_detection(score: float, threshold: float) -> Detection:
    """What the agent would answer for this 0..1 score (same float32 rounding, same rule)."""
    value = float(np.float32(min(1.0, max(0.0, score))))
    return Detection(
        is_anomalous=value >= threshold,
        confidence=confidence_of(value, threshold),
        anomaly_score=value,
        anomaly_threshold=threshold,
    )


def evaluate_out_of_fold(
    model: Manifest,
    dataset: Dataset,
    anomaly_scores: np.ndarray,
    output_dir: Path | None = None,
    pixel_iou: float | None = None,
) -> EvaluationSummary:
    """Summarise out-of-fold 0..1 anomaly scores (one per sample of `dataset`, in order).

    `dataset` is every image the model was trained on; pixel_iou is the fit's pooled out-of-fold
    IoU (segmentation). With output_dir, writes the guide's files and report.html as `evaluate` does.
    """
    scores = np.asarray(anomaly_scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(dataset.samples):
        raise ValueError(f"{len(scores)} out-of-fold scores for {len(dataset.samples)} training images")
    if not np.all(np.isfinite(scores)):
        raise ValueError("out-of-fold scores contain NaN or infinity: the fit is broken")
    threshold = float(np.float32(model.threshold))
    results = []
    for index, (sample, score) in enumerate(zip(dataset.samples, scores, strict=True)):
        thumbnail = None
        if output_dir is not None:
            stem = f"{index:05d}-{sample.image.stem}"
            thumbnail = write_thumbnail(read_rgb(sample.image), None, None, output_dir, stem)
        results.append(
            ImageResult(sample=sample, detection=out_of_fold_detection(score, threshold), thumbnail=thumbnail)
        )
    summary = EvaluationSummary(
        model_arn=model.model_arn,
        model_type=model.model_type,
        threshold=threshold,
        dataset_source=dataset.source,
        images=tuple(results),
        metrics=image_metrics(results),
        labels=(),  # per-label pixel metrics need the fold models' masks, which are not kept
        skipped=(),
        number_of_training_images=len(dataset.samples),
        end_timestamp=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f"),
        evaluation_basis=OUT_OF_FOLD,
        pixel_iou=pixel_iou if model.model_type == "segmentation" else None,
    )
    if output_dir is None:
        return summary
    output_dir.mkdir(parents=True, exist_ok=True)
    return write_outputs(summary, model, output_dir)
