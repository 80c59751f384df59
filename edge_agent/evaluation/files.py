"""The guide's output files: `EvaluationResult` JSON and `EvaluationManifest` JSON Lines.

Field names follow guide section 4. Undefined metrics are JSON null. Per-image segmentation
predictions are a gap in the guide; we add `anomaly-mask-ref-detected` (the predicted mask PNG,
relative to the manifest) with `anomaly-mask-ref-detected-metadata` (colours and area fractions),
and `anomaly-score` / `anomaly-threshold` / `evaluation-basis` in `anomaly-label-detected-metadata`.
`EvaluationDetails.EvaluationBasis` says whether the figures are held-out (the served package run
on the images) or out-of-fold (`train --refit-all`); an out-of-fold segmentation result has
`PixelAnomalyClassMetrics` null and `OutOfFoldPixelIoU` instead.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from edge_agent.evaluation.summary import EvaluationSummary, ImageResult
from edge_agent.model_package import Manifest

CLASSIFICATION_TYPE = "groundtruth/image-classification"
SEGMENTATION_TYPE = "groundtruth/semantic-segmentation"
_ARN = re.compile(r"model/(?P<project>[^/]+)/(?P<version>[^/]+)$")


def project_and_version(manifest: Manifest) -> tuple[str, str]:
    """From `arn:...:model/<project>/<version>`, else ("model", manifest.model_version)."""
    match = _ARN.search(manifest.model_arn)
    if match:
        return match["project"], match["version"]
    return "model", str(manifest.model_version)


def file_names(manifest: Manifest) -> tuple[str, str]:
    """The guide's names with project and version: EvaluationResult-<p>-<v>.json and EvaluationManifest-<p>-<v>.json."""
    project, version = project_and_version(manifest)
    return f"EvaluationResult-{project}-{version}.json", f"EvaluationManifest-{project}-{version}.json"


def _num(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def evaluation_result(summary: EvaluationSummary) -> dict[str, Any]:
    metrics = summary.metrics
    result: dict[str, Any] = {
        "Version": 1,
        "EvaluationDetails": {
            "ModelArn": summary.model_arn,
            "EvaluationEndTimestamp": summary.end_timestamp,
            "NumberOfTrainingImages": summary.number_of_training_images,
            "NumberOfTestingImages": len(summary.images),
            "EvaluationBasis": summary.evaluation_basis,
        },
        "AggregatedEvaluationResults": {
            "Metrics": {
                "ROCAUC": _num(metrics.roc_auc),
                "AveragePrecision": _num(metrics.average_precision),
                "Precision": _num(metrics.precision),
                "Recall": _num(metrics.recall),
                "F1Score": _num(metrics.f1),
            }
        },
    }
    if summary.model_type == "segmentation" and summary.out_of_fold:
        # The fold models' masks are not kept: per-label figures are absent, not zero.
        result["AggregatedEvaluationResults"]["Metrics"]["PixelAnomalyClassMetrics"] = None
        result["AggregatedEvaluationResults"]["Metrics"]["OutOfFoldPixelIoU"] = _num(summary.pixel_iou)
    elif summary.model_type == "segmentation":
        result["AggregatedEvaluationResults"]["Metrics"]["PixelAnomalyClassMetrics"] = [
            {
                "Precision": _num(label.precision),
                "Recall": _num(label.recall),
                "F1Score": _num(label.f1),
                "AIoU": _num(label.aiou),
                "ClassName": label.name,
            }
            for label in summary.labels
        ]
    return result


def manifest_line(result: ImageResult, summary: EvaluationSummary, manifest: Manifest, base: Path) -> dict:
    sample, detection = result.sample, result.detection
    project, version = project_and_version(manifest)
    stamp = summary.end_timestamp
    line: dict[str, Any] = {
        # s3:// references stay as written; local ones become absolute so the file stands alone.
        "source-ref": sample.source_ref
        if sample.source_ref.startswith("s3://")
        else str(sample.image.resolve()),
        "source-ref-metadata": {"creation-date": stamp},
        "anomaly-label": int(sample.is_anomalous),
        "anomaly-label-metadata": {
            "class-name": "anomaly" if sample.is_anomalous else "normal",
            "type": CLASSIFICATION_TYPE,
            "human-annotated": "yes",
            "creation-date": stamp,
            "job-name": "labeling-job/anomaly-detection",
        },
        "anomaly-label-detected": int(detection.is_anomalous),
        "anomaly-label-detected-metadata": {
            "class-name": "anomaly" if detection.is_anomalous else "normal",
            "confidence": round(detection.confidence, 6),
            "type": CLASSIFICATION_TYPE,
            "human-annotated": "no",
            "creation-date": stamp,
            "job-name": "training-job/anomaly-detection",
            "model-arn": summary.model_arn,
            "project-name": project,
            "model-version": version,
            "anomaly-score": round(detection.anomaly_score, 6),
            "anomaly-threshold": round(detection.anomaly_threshold, 6),
            "evaluation-basis": summary.evaluation_basis,
        },
    }
    if result.predicted_mask is not None:
        line["anomaly-mask-ref-detected"] = result.predicted_mask.relative_to(base).as_posix()
        line["anomaly-mask-ref-detected-metadata"] = {
            "internal-color-map": {
                str(index): {
                    "class-name": "BACKGROUND" if index == 0 else area.name,
                    "hex-color": area.hex_color,
                    "total-percentage-area": round(area.area, 8),
                }
                for index, area in enumerate(detection.anomalies)
            },
            "type": SEGMENTATION_TYPE,
            "human-annotated": "no",
            "creation-date": stamp,
            "job-name": "training-job/anomaly-detection",
        }
    return line


def write_files(summary: EvaluationSummary, manifest: Manifest, output_dir: Path) -> tuple[Path, Path]:
    result_name, manifest_name = file_names(manifest)
    result_path, manifest_path = output_dir / result_name, output_dir / manifest_name
    result_path.write_text(json.dumps(evaluation_result(summary), indent=2) + "\n", encoding="utf-8")
    with manifest_path.open("w", encoding="utf-8") as handle:
        for result in summary.images:
            handle.write(json.dumps(manifest_line(result, summary, manifest, output_dir)) + "\n")
    return result_path, manifest_path
