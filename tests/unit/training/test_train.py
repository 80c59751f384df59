"""Real trainings on synthetic parts: accuracy on held-out images, export parity, atomic output."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_agent.cli import main
from edge_agent.dataset import DatasetError
from edge_agent.imaging.overlay import read_rgb
from edge_agent.inference import Predictor
from edge_agent.model_package import load
from edge_agent.training import TrainingError, TrainResult, train
from edge_agent.training import trainer as trainer_module
from edge_agent.training.export import ExportError
from tests.unit.training.conftest import LABELS, SyntheticData, small_config


def test_segmentation_model_detects_and_paints_held_out_defects(segmentation_model: TrainResult) -> None:
    summary = segmentation_model.evaluation
    assert summary is not None and len(summary.images) == 24
    assert summary.metrics.roc_auc >= 0.95
    assert summary.metrics.f1 >= 0.9
    iou = {label.name: label.aiou for label in summary.labels}
    assert iou["stain"] >= 0.5
    assert iou["scratch"] >= 0.2  # thin lines: IoU punishes a one-pixel offset (see docs/training.md)


def test_segmentation_manifest_describes_the_model(segmentation_model: TrainResult) -> None:
    package = load(segmentation_model.package.directory)
    manifest = package.manifest
    package.verify_graph()
    assert manifest.model_type == "segmentation"
    assert (manifest.width, manifest.height) == (160, 128)
    assert [(label.name, label.hex_color) for label in manifest.labels] == sorted(LABELS)
    assert manifest.model_arn == "arn:aws:lookoutvision:local:000000000000:model/synthetic-seg/1"
    assert manifest.threshold == 0.5
    assert manifest.score_normalization["method"] == "logistic"
    provenance = manifest.provenance
    assert provenance["training_images"] == 36 and provenance["seed"] == 0
    assert provenance["backbone"]["weights_sha256"]
    assert provenance["algorithm"] == "patchcore+patch-head"
    assert (segmentation_model.package.directory / "evaluation" / "report.html").is_file()


def test_classification_model_separates_held_out_images(classification_model: TrainResult) -> None:
    summary = classification_model.evaluation
    assert summary is not None
    assert classification_model.package.manifest.model_type == "classification"
    assert classification_model.package.manifest.labels == ()
    assert summary.metrics.roc_auc >= 0.95
    assert summary.metrics.f1 >= 0.9


def test_onnx_runtime_matches_torch_on_held_out_images(
    segmentation_model: TrainResult, synthetic: SyntheticData
) -> None:
    test = segmentation_model.test_dataset
    assert test is not None
    predictor = Predictor.open(segmentation_model.package.directory)
    try:
        for sample in test.samples[::3]:
            image = read_rgb(sample.image)
            with torch.no_grad():
                score, mask, areas = (
                    t.numpy() for t in segmentation_model.graph(torch.from_numpy(image.copy()))
                )
            outputs = predictor.runtime.run(image)
            assert abs(float(outputs["anomaly_score"][0]) - float(score[0])) < 1e-3
            assert (outputs["anomaly_mask"] == mask).all(axis=-1).mean() > 0.998
            assert np.allclose(outputs["label_areas"], areas, atol=2e-3)
            assert predictor.predict(image).is_anomalous == bool(score[0] >= 0.5)
    finally:
        predictor.close()


def test_threshold_is_set_without_the_test_images(
    classification_model: TrainResult, synthetic: SyntheticData, tmp_path: Path
) -> None:
    """Same training data, another test set: the calibration must not move."""
    other_test = synthetic.seg_test  # any other labelled set of that size will do
    again = train(
        small_config(synthetic.cls_train, tmp_path / "again", test_dataset=other_test, evaluate=False)
    )
    first = classification_model.package.manifest.score_normalization
    second = again.package.manifest.score_normalization
    assert second["center"] == pytest.approx(first["center"], rel=1e-5)
    assert second["scale"] == pytest.approx(first["scale"], rel=1e-5)
    assert classification_model.package.manifest.provenance["fit"]["bank_size"] == again.details["bank_size"]


def test_failed_training_leaves_no_half_written_model(
    synthetic: SyntheticData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the parity check fails after the graph file was written."""

    def failing_check(*args: object, **kwargs: object) -> None:
        raise ExportError("injected parity failure")

    monkeypatch.setattr(trainer_module, "check_parity", failing_check)
    out = tmp_path / "model"
    with pytest.raises(ExportError, match="injected"):
        train(small_config(synthetic.cls_train, out, test_dataset=synthetic.cls_test))
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_model_is_kept_unless_overwrite(synthetic: SyntheticData, tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("previous model", encoding="utf-8")
    config = small_config(synthetic.cls_train, out, evaluate=False)
    with pytest.raises(TrainingError, match="not empty"):
        train(config)
    assert (out / "keep.txt").is_file()
    train(replace(config, overwrite=True))
    assert not (out / "keep.txt").exists()
    assert load(out).manifest.model_type == "classification"


def test_segmentation_on_a_classification_dataset_is_refused(
    synthetic: SyntheticData, tmp_path: Path
) -> None:
    with pytest.raises(TrainingError, match="masks"):
        train(small_config(synthetic.cls_train, tmp_path / "m", model_type="segmentation"))
    assert not (tmp_path / "m").exists()


def test_cli_trains_evaluates_and_prints_a_summary(
    synthetic: SyntheticData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli-model"
    args = [
        "train",
        str(synthetic.cls_train),
        "--output",
        str(out),
        "--test-dataset",
        str(synthetic.cls_test),
        "--features",
        "standard",
    ]
    code = main(
        [*args, "--no-progress", "--seed", "3", "--project", "demo", "--model-version", "2", "--json"]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model_arn"] == "arn:aws:lookoutvision:local:000000000000:model/demo/2"
    assert summary["roc_auc"] >= 0.95
    assert (summary["evaluation_basis"], summary["refit_all"], summary["training_images"]) == (
        "held-out",
        False,
        28,
    )
    assert (out / "evaluation" / "EvaluationResult-demo-2.json").is_file()
    provenance = load(out).manifest.provenance
    assert provenance["seed"] == 3
    assert provenance["features"]["long_side"] == 320
    assert provenance["features"]["choice"] == {"chosen": "standard", "reason": "set by the caller"}


def test_cli_reports_user_errors(
    synthetic: SyntheticData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "train",
            str(synthetic.cls_train),
            "--test-dataset",
            str(synthetic.cls_test),
            "--output",
            str(tmp_path / "m"),
            "--model-type",
            "segmentation",
        ]
    )
    assert code == 1
    assert "masks" in capsys.readouterr().err


def test_images_in_both_training_and_test_datasets_are_refused(
    synthetic: SyntheticData, tmp_path: Path
) -> None:
    with pytest.raises(TrainingError, match="in both the training and the test dataset"):
        train(small_config(synthetic.cls_train, tmp_path / "m", test_dataset=synthetic.cls_train))
    assert not (tmp_path / "m").exists()


def test_a_truncated_image_fails_training_with_its_name(synthetic: SyntheticData, tmp_path: Path) -> None:
    """The header read at import looks fine; the decode during training must name the file, not crash."""
    copy = tmp_path / "cls"
    shutil.copytree(synthetic.cls_train.parent, copy)
    broken = sorted((copy / "images").glob("train-normal-*.png"))[3]
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    with pytest.raises(DatasetError, match=rf"{broken.name} cannot be decoded"):
        train(small_config(copy / synthetic.cls_train.name, tmp_path / "m", evaluate=False))
    assert not (tmp_path / "m").exists()
