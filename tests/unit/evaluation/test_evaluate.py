"""Evaluate the real bright-blob ONNX package on a synthetic dataset with known answers.

The segmentation package paints pixels with gray > 200 as `bright` and gray < 30 as `dark`; its
score is min(1, 50 * painted fraction) and its threshold 0.5, so an image is anomalous when at
least 1% (123 of 128 x 96 pixels) is painted. Every expected number below follows from the drawn
squares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_agent.dataset import load_dataset
from edge_agent.dataset.types import Dataset
from edge_agent.errors import InvalidInputError
from edge_agent.evaluation import EvaluationSummary, evaluate
from edge_agent.inference import Predictor
from edge_agent.testing.onnx_models import BRIGHT, DARK, bright_blob_package

W, H = 128, 96
Box = tuple[int, int, int, int]  # x0, y0, x1, y1


@dataclass(frozen=True)
class Case:
    name: str
    anomalous: bool
    bright: tuple[Box, ...] = ()  # squares drawn bright (250)
    dark: tuple[Box, ...] = ()  # squares drawn dark (5)
    truth: dict[str, Box] | None = None  # ground-truth mask: label -> box


CASES = (
    *(Case(f"normal-{i}", False) for i in range(4)),
    Case("normal-spot", False, bright=((0, 0, 8, 8),)),  # 64 px: score 0.26, normal
    Case("normal-false-alarm", False, bright=((0, 0, 16, 16),)),  # 256 px: FP
    *(
        Case(f"bright-{i}", True, bright=((10, 10, 30, 30),), truth={"bright": (10, 10, 30, 30)})
        for i in range(3)
    ),
    Case("dark", True, dark=((50, 50, 70, 70),), truth={"dark": (50, 50, 70, 70)}),
    Case("half-mask", True, bright=((10, 10, 30, 30),), truth={"bright": (10, 10, 30, 20)}),  # IoU 0.5
    Case("tiny", True, bright=((60, 60, 68, 68),), truth={"bright": (60, 60, 68, 68)}),  # FN, IoU 1
)


def _paint(array: np.ndarray, box: Box, value: object) -> None:
    x0, y0, x1, y1 = box
    array[y0:y1, x0:x1] = value


def write_dataset(root: Path) -> Path:
    """Images, masks (lower-case colours, BACKGROUND entry) and a manifest for CASES."""
    root.mkdir(parents=True, exist_ok=True)
    colors = {"bright": BRIGHT, "dark": DARK}
    lines = []
    for case in CASES:
        image = np.full((H, W, 3), 120, np.uint8)
        for box in case.bright:
            _paint(image, box, 250)
        for box in case.dark:
            _paint(image, box, 5)
        Image.fromarray(image).save(root / f"{case.name}.png")
        line: dict = {
            "source-ref": f"{case.name}.png",
            "anomaly-label": int(case.anomalous),
            "anomaly-label-metadata": {
                "class-name": "anomaly" if case.anomalous else "normal",
                "type": "groundtruth/image-classification",
            },
        }
        if case.truth:
            mask = np.zeros((H, W, 3), np.uint8)
            color_map = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.0}}
            for index, (label, box) in enumerate(case.truth.items(), start=1):
                _paint(mask, box, colors[label].rgb())
                color_map[str(index)] = {"class-name": label, "hex-color": colors[label].hex_color.lower()}
            Image.fromarray(mask).save(root / f"{case.name}-mask.png")
            line["anomaly-mask-ref"] = f"{case.name}-mask.png"
            line["anomaly-mask-ref-metadata"] = {
                "internal-color-map": color_map,
                "type": "groundtruth/semantic-segmentation",
            }
        lines.append(json.dumps(line))
    manifest = root / "test.manifest"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Dataset, EvaluationSummary, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    package = bright_blob_package(root / "package", width=W, height=H, segmentation=True)
    dataset = load_dataset(write_dataset(root / "data"))
    output = root / "out"
    return package.directory, dataset, evaluate(package.directory, dataset, output), output


def test_image_level_metrics(built: tuple[Path, Dataset, EvaluationSummary, Path]) -> None:
    _, _, summary, _ = built
    c = summary.metrics.confusion
    # TP: bright-0..2, dark, half-mask; FN: tiny; FP: normal-false-alarm; TN: 4 plain + normal-spot.
    assert (c.tp, c.fp, c.tn, c.fn) == (5, 1, 5, 1)
    assert summary.metrics.precision == pytest.approx(5 / 6)
    assert summary.metrics.recall == pytest.approx(5 / 6)
    assert summary.metrics.f1 == pytest.approx(5 / 6)
    # Anomalous scores [1]*5 + [0.26]; normal [0]*4 + [0.26, 1]. Each score-1 anomaly beats 5 normals
    # and ties 1 (5.5); the 0.26 one beats 4 and ties 1 (4.5): (5 * 5.5 + 4.5) / 36.
    assert summary.metrics.roc_auc == pytest.approx(32 / 36)
    # Threshold 1: 5 tp + 1 fp -> P 5/6, R 5/6. Threshold 0.26: 6 tp + 2 fp -> P 6/8, R 1.
    assert summary.metrics.average_precision == pytest.approx(5 / 6 * 5 / 6 + 1 / 6 * 6 / 8)


def test_per_label_pixel_metrics(built: tuple[Path, Dataset, EvaluationSummary, Path]) -> None:
    _, _, summary, _ = built
    labels = {label.name: label for label in summary.labels}
    bright = labels["bright"]
    # TP: 3 x 400 + 200 (half-mask) + 64 (tiny); FP: 200 (half-mask) + 64 + 256 (normal images); FN: 0.
    assert bright.test_images == 5
    assert bright.precision == pytest.approx(1464 / 1984)
    assert bright.recall == 1.0
    assert bright.f1 == pytest.approx(2 * (1464 / 1984) / (1464 / 1984 + 1))
    assert bright.aiou == pytest.approx((1 + 1 + 1 + 0.5 + 1) / 5)
    dark = labels["dark"]
    assert (dark.test_images, dark.precision, dark.recall, dark.aiou) == (1, 1.0, 1.0, 1.0)
    half = next(r for r in summary.images if r.sample.image.stem == "half-mask")
    assert half.label_iou == {"bright": 0.5}


def test_results_equal_predictor_predict(built: tuple[Path, Dataset, EvaluationSummary, Path]) -> None:
    package_dir, dataset, summary, _ = built
    predictor = Predictor.open(package_dir)
    try:
        assert [r.sample for r in summary.images] == list(dataset.samples)
        for result in summary.images:
            image = np.asarray(Image.open(result.sample.image).convert("RGB"))
            expected = predictor.predict(image)
            got = result.detection
            assert (got.is_anomalous, got.anomaly_score, got.confidence, got.anomalies) == (
                expected.is_anomalous,
                expected.anomaly_score,
                expected.confidence,
                expected.anomalies,
            )
            assert result.predicted_mask is not None
            assert np.array_equal(np.asarray(Image.open(result.predicted_mask).convert("RGB")), expected.mask)
    finally:
        predictor.close()


def test_evaluation_result_file(built: tuple[Path, Dataset, EvaluationSummary, Path]) -> None:
    _, _, summary, output = built
    assert summary.result_path == output / "EvaluationResult-bright-blob-2.json"
    data = json.loads(summary.result_path.read_text())
    assert set(data) == {"Version", "EvaluationDetails", "AggregatedEvaluationResults"}
    assert data["Version"] == 1
    details = data["EvaluationDetails"]
    assert set(details) == {
        "ModelArn",
        "EvaluationEndTimestamp",
        "NumberOfTrainingImages",
        "NumberOfTestingImages",
        "EvaluationBasis",  # our addition: held-out here, out-of-fold after `train --refit-all`
    }
    assert details["EvaluationBasis"] == "held-out"
    assert details["ModelArn"] == summary.model_arn
    assert details["NumberOfTestingImages"] == len(CASES)
    metrics = data["AggregatedEvaluationResults"]["Metrics"]
    assert metrics["F1Score"] == pytest.approx(5 / 6, abs=1e-6)
    assert metrics["ROCAUC"] == pytest.approx(32 / 36, abs=1e-6)
    pixel = {m["ClassName"]: m for m in metrics["PixelAnomalyClassMetrics"]}
    assert set(pixel) == {"bright", "dark"}
    assert set(pixel["bright"]) == {"Precision", "Recall", "F1Score", "AIoU", "ClassName"}
    assert pixel["bright"]["AIoU"] == pytest.approx(0.9, abs=1e-6)
    assert summary.performance == {
        "F1Score": summary.metrics.f1,
        "Recall": summary.metrics.recall,
        "Precision": summary.metrics.precision,
    }


def test_evaluation_manifest_file(built: tuple[Path, Dataset, EvaluationSummary, Path]) -> None:
    _, dataset, summary, output = built
    assert summary.manifest_path is not None
    lines = [json.loads(text) for text in summary.manifest_path.read_text().splitlines()]
    assert len(lines) == len(CASES)
    for line, result in zip(lines, summary.images, strict=True):
        assert line["source-ref"] == str(result.sample.image.resolve())
        assert "creation-date" in line["source-ref-metadata"]
        assert line["anomaly-label"] == int(result.sample.is_anomalous)
        assert line["anomaly-label-metadata"]["class-name"] == (
            "anomaly" if result.sample.is_anomalous else "normal"
        )
        assert line["anomaly-label-detected"] == int(result.detection.is_anomalous)
        detected = line["anomaly-label-detected-metadata"]
        assert detected["confidence"] == pytest.approx(result.detection.confidence, abs=1e-6)
        assert detected["human-annotated"] == "no"
        assert (detected["model-arn"], detected["project-name"], detected["model-version"]) == (
            summary.model_arn,
            "bright-blob",
            "2",
        )
        assert (output / line["anomaly-mask-ref-detected"]).is_file()
    # The evaluation manifest imports back as a dataset with the ground truth, not the predictions.
    again = load_dataset(summary.manifest_path)
    assert [s.is_anomalous for s in again.samples] == [s.is_anomalous for s in dataset.samples]


def test_report(built: tuple[Path, Dataset, EvaluationSummary, Path]) -> None:
    _, _, summary, output = built
    assert summary.report_path == output / "report.html"
    page = summary.report_path.read_text()
    assert page.count("<svg") == 2
    assert 'data-basis="held-out"' in page and "out-of-fold" not in page
    assert "threshold 0.500" in page
    sources = [part.split('"')[0] for part in page.split('<img src="')[1:]]
    assert len(sources) == len(CASES)
    for source in sources:
        with Image.open(output / source) as thumb:
            assert thumb.format == "PNG"
            assert thumb.height == 192 and thumb.width == 2 * 256 + 4  # true | predicted overlays
    # Incorrect images come first.
    assert page.index("normal-false-alarm.png") < page.index("bright-0.png")
    assert page.index("tiny.png") < page.index("bright-0.png")


def test_classification_package_on_normal_images_only(tmp_path: Path) -> None:
    package = bright_blob_package(tmp_path / "package", width=W, height=H)
    data = tmp_path / "data" / "normal"
    data.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((H, W, 3), 100 + i, np.uint8)).save(data / f"{i}.png")
    summary = evaluate(package.directory, load_dataset(tmp_path / "data"), tmp_path / "out")
    assert summary.metrics.confusion.tn == 3
    assert (summary.metrics.precision, summary.metrics.recall, summary.metrics.roc_auc) == (None, None, None)
    assert summary.labels == ()
    metrics = json.loads(summary.result_path.read_text())["AggregatedEvaluationResults"]["Metrics"]
    assert metrics["Recall"] is None and "PixelAnomalyClassMetrics" not in metrics
    assert "n/a" in summary.report_path.read_text()


def test_unreadable_image_is_skipped_and_not_counted(tmp_path: Path) -> None:
    package = bright_blob_package(tmp_path / "package", width=W, height=H)
    dataset = load_dataset(write_dataset(tmp_path / "data"))
    (tmp_path / "data" / "normal-0.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    summary = evaluate(package.directory, dataset)
    assert len(summary.images) == len(CASES) - 1
    assert [ref for ref, _ in summary.skipped] == ["normal-0.png"]
    assert summary.result_path is None


def test_dataset_of_another_size_is_refused(tmp_path: Path) -> None:
    package = bright_blob_package(tmp_path / "package", width=64, height=64)
    dataset = load_dataset(write_dataset(tmp_path / "data"))
    with pytest.raises(InvalidInputError, match=r"128x96 images but the model takes 64x64"):
        evaluate(package.directory, dataset)
