"""Out-of-fold evaluation (`train --refit-all`): given scores, the usual files, marked out-of-fold.

The dataset is test_evaluate's 12 drawn cases (6 normal, then 6 anomalous); the scores are made
up so every expected number follows by hand. No model runs: that is the point of the basis.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_agent.dataset import load_dataset
from edge_agent.evaluation import evaluate_out_of_fold
from edge_agent.evaluation.out_of_fold import out_of_fold_detection
from edge_agent.testing.onnx_models import bright_blob_package
from tests.unit.evaluation.test_evaluate import CASES, H, W, write_dataset

# normal: one false alarm (0.6); anomalous: one miss (0.45). 0.5 itself is anomalous, as served.
NORMAL = [0.05, 0.1, 0.2, 0.3, 0.4, 0.6]
ANOMALOUS = [0.9, 0.8, 0.7, 0.5, 0.45, 0.95]
SENTENCE = (
    "These figures are out-of-fold estimates on the training images: the model served was refitted "
    "on all 12 images, and no image was held out from it."
)


def test_out_of_fold_segmentation_summary_files_and_report(tmp_path: Path) -> None:
    package = bright_blob_package(tmp_path / "package", width=W, height=H, segmentation=True)
    dataset = load_dataset(write_dataset(tmp_path / "data"))
    assert [case.anomalous for case in CASES] == [False] * 6 + [True] * 6
    out = tmp_path / "out"
    summary = evaluate_out_of_fold(
        package.manifest, dataset, np.array(NORMAL + ANOMALOUS), out, pixel_iou=0.42
    )

    assert summary.evaluation_basis == "out-of-fold" and summary.out_of_fold
    c = summary.metrics.confusion
    assert (c.tp, c.fp, c.tn, c.fn) == (5, 1, 5, 1)
    assert summary.metrics.f1 == pytest.approx(5 / 6)
    # Each anomaly beats every normal but 0.6, which 0.5 and 0.45 lose to: 34 of 36 pairs.
    assert summary.metrics.roc_auc == pytest.approx(34 / 36)
    assert summary.labels == () and summary.pixel_iou == 0.42
    assert [r.detection.anomaly_score for r in summary.images] == pytest.approx(NORMAL + ANOMALOUS)

    data = json.loads(summary.result_path.read_text())
    details = data["EvaluationDetails"]
    assert details["EvaluationBasis"] == "out-of-fold"
    assert details["NumberOfTrainingImages"] == details["NumberOfTestingImages"] == 12
    metrics = data["AggregatedEvaluationResults"]["Metrics"]
    assert metrics["PixelAnomalyClassMetrics"] is None  # absent, not zero
    assert metrics["OutOfFoldPixelIoU"] == 0.42
    assert metrics["ROCAUC"] == pytest.approx(34 / 36, abs=1e-6)

    lines = [json.loads(text) for text in summary.manifest_path.read_text().splitlines()]
    assert len(lines) == 12
    assert {line["anomaly-label-detected-metadata"]["evaluation-basis"] for line in lines} == {"out-of-fold"}
    assert not any("anomaly-mask-ref-detected" in line for line in lines)  # no fold masks were kept

    page = summary.report_path.read_text()
    assert 'data-basis="out-of-fold"' in page
    assert page.index(SENTENCE) < page.index("<h2>Image level</h2>")
    assert "precision, recall and F1 are optimistic" in page
    assert "Per-label pixel metrics are absent" in page and "0.4200" in page
    assert "12 training images used" in page and "<h2>Training images</h2>" in page
    assert page.count("<img src=") == 12


def test_out_of_fold_classification_without_files(tmp_path: Path) -> None:
    package = bright_blob_package(tmp_path / "package", width=W, height=H)
    dataset = load_dataset(write_dataset(tmp_path / "data"))
    summary = evaluate_out_of_fold(package.manifest, dataset, np.array(NORMAL + ANOMALOUS), pixel_iou=0.42)
    assert summary.result_path is None and summary.pixel_iou is None
    assert not any("pixel" in note for note in summary.basis_notes())
    assert summary.basis_notes()[0] == SENTENCE


def test_scores_must_match_the_images(tmp_path: Path) -> None:
    package = bright_blob_package(tmp_path / "package", width=W, height=H)
    dataset = load_dataset(write_dataset(tmp_path / "data"))
    with pytest.raises(ValueError, match="11 out-of-fold scores for 12 training images"):
        evaluate_out_of_fold(package.manifest, dataset, np.zeros(11))
    with pytest.raises(ValueError, match="NaN"):
        evaluate_out_of_fold(package.manifest, dataset, np.full(12, np.nan))


def test_detection_follows_the_served_rule() -> None:
    assert out_of_fold_detection(0.5, 0.5).is_anomalous
    below = out_of_fold_detection(0.49999999, 0.5)  # float32 rounds it up to 0.5, as on the wire
    assert below.anomaly_score == float(np.float32(0.49999999)) and below.is_anomalous
    low = out_of_fold_detection(0.25, 0.5)
    assert not low.is_anomalous and low.confidence == pytest.approx(0.75)
