"""`train --refit-all`: the served model learns from every image; its evaluation is out of fold.

Real trainings on small synthetic sets (conftest.py). `fit` is wrapped to keep the FitResult the
trainer got, so the evaluation can be checked against the fit's own out-of-fold scores.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.cli import main
from edge_agent.dataset import load_dataset
from edge_agent.evaluation.metrics import Confusion, average_precision, roc_auc
from edge_agent.model_package import load
from edge_agent.testing.synthetic import write_synthetic_dataset
from edge_agent.training import TrainingError, TrainResult, train
from edge_agent.training import trainer as trainer_module
from edge_agent.training.fit import FitResult, FitSettings
from tests.unit.training.conftest import SIZE, SyntheticData, small_config

RESULT_NAME = "EvaluationResult-{}-1.json"


@dataclass(frozen=True)
class Refit:
    output: Path
    dataset: Path
    stdout: str
    fit_images: int  # images whose features went into the fit
    fitted: FitResult


def _train_capturing_fit(run: Any) -> tuple[Any, int, FitResult]:
    """Run `run()` with trainer.fit wrapped; return its value, the fit's image count and result."""
    captured: dict[str, Any] = {}
    real_fit = trainer_module.fit

    def spy(features: Any, *args: Any, **kwargs: Any) -> FitResult:
        captured["count"] = len(features)
        captured["result"] = real_fit(features, *args, **kwargs)
        return captured["result"]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer_module, "fit", spy)
        value = run()
    return value, captured["count"], captured["result"]


@pytest.fixture(scope="module")
def refit_cli(tmp_path_factory: pytest.TempPathFactory) -> Refit:
    """`edge-agent train DATASET --refit-all` on 20 normal + 10 anomalous images (the guide's minimum)."""
    root = tmp_path_factory.mktemp("refit")
    dataset = write_synthetic_dataset(root / "data", 20, 10, SIZE, (), seed=5)
    output = root / "small"
    stdout = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(stdout):
            return main(
                [
                    "train",
                    str(dataset),
                    "--output",
                    str(output),
                    "--refit-all",
                    "--no-progress",
                    "--features",
                    "standard",
                ]
            )

    code, count, fitted = _train_capturing_fit(run)
    assert code == 0
    return Refit(output, dataset, stdout.getvalue(), count, fitted)


def test_refit_model_learnt_from_every_image(refit_cli: Refit) -> None:
    images = len(load_dataset(refit_cli.dataset).samples)
    assert images == 30 and refit_cli.fit_images == images
    provenance = load(refit_cli.output).manifest.provenance
    assert provenance["training_images"] == images and provenance["test_images"] == 0
    assert provenance["refit_all"] is True and provenance["evaluation_basis"] == "out-of-fold"
    assert provenance["layout"] == "single" and provenance["test_fraction"] is None


def test_refit_evaluation_is_the_fits_out_of_fold_scores(refit_cli: Refit) -> None:
    fitted = refit_cli.fitted
    normalization = load(refit_cli.output).manifest.score_normalization
    assert normalization["center"] == fitted.calibration.raw_threshold  # the served calibration
    truth = np.array([s.is_anomalous for s in load_dataset(refit_cli.dataset).samples])
    scores = np.float32(fitted.calibration.normalize(fitted.oof_scores))
    confusion = Confusion.of(truth, scores >= 0.5)
    data = json.loads((refit_cli.output / "evaluation" / RESULT_NAME.format("small")).read_text())
    assert data["EvaluationDetails"]["EvaluationBasis"] == "out-of-fold"
    assert data["EvaluationDetails"]["NumberOfTrainingImages"] == 30
    assert data["EvaluationDetails"]["NumberOfTestingImages"] == 30
    metrics = data["AggregatedEvaluationResults"]["Metrics"]
    assert metrics["ROCAUC"] == pytest.approx(roc_auc(truth, scores), abs=1e-6)
    assert metrics["AveragePrecision"] == pytest.approx(average_precision(truth, scores), abs=1e-6)
    assert metrics["F1Score"] == pytest.approx(confusion.f1, abs=1e-6)
    assert metrics["Precision"] == pytest.approx(confusion.precision, abs=1e-6)
    assert metrics["Recall"] == pytest.approx(confusion.recall, abs=1e-6)
    assert metrics["ROCAUC"] >= 0.9  # the synthetic defects are easy: the scores are real ones


def test_refit_report_and_console_say_out_of_fold(refit_cli: Refit) -> None:
    page = (refit_cli.output / "evaluation" / "report.html").read_text()
    sentence = (
        "These figures are out-of-fold estimates on the training images: the model served was "
        "refitted on all 30 images, and no image was held out from it."
    )
    assert page.index(sentence) < page.index("<h2>Image level</h2>")
    printed = " ".join(refit_cli.stdout.split())
    assert "basis out-of-fold" in printed and sentence in printed
    assert "refit on every image of the dataset" in printed


def test_refit_segmentation_reports_pooled_pixel_iou_only(synthetic: SyntheticData, tmp_path: Path) -> None:
    fast = FitSettings(folds=3, head_steps=100)  # what is tested is the plumbing, not the accuracy
    config = small_config(synthetic.seg_train, tmp_path / "seg", refit_all=True, fit=fast)
    result, count, fitted = _train_capturing_fit(lambda: train(config))
    summary = result.evaluation
    assert count == 36 and summary is not None and summary.out_of_fold
    assert summary.labels == ()  # per-label pixel metrics: absent, not made up
    assert fitted.oof_pixel_iou is not None and summary.pixel_iou == fitted.oof_pixel_iou
    metrics = json.loads(summary.result_path.read_text())["AggregatedEvaluationResults"]["Metrics"]
    assert metrics["PixelAnomalyClassMetrics"] is None
    assert metrics["OutOfFoldPixelIoU"] == pytest.approx(fitted.oof_pixel_iou, abs=1e-6)
    assert "Per-label pixel metrics are absent" in summary.report_path.read_text()


def test_without_the_flag_the_evaluation_is_held_out(classification_model: TrainResult) -> None:
    summary = classification_model.evaluation
    assert summary is not None and summary.evaluation_basis == "held-out"
    provenance = classification_model.package.manifest.provenance
    assert provenance["refit_all"] is False and provenance["evaluation_basis"] == "held-out"
    assert provenance["test_images"] == len(summary.images) == 24
    data = json.loads(summary.result_path.read_text())
    assert data["EvaluationDetails"]["EvaluationBasis"] == "held-out"
    assert "out-of-fold" not in summary.report_path.read_text()


def test_refit_with_a_test_dataset_is_refused(
    synthetic: SyntheticData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = small_config(
        synthetic.cls_train, tmp_path / "m", test_dataset=synthetic.cls_test, refit_all=True
    )
    with pytest.raises(TrainingError, match="cannot be combined with --test-dataset"):
        train(config)
    args = ["train", str(synthetic.cls_train), "--test-dataset", str(synthetic.cls_test), "--refit-all"]
    assert main([*args, "--output", str(tmp_path / "m")]) == 1
    assert "held-out evaluation" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
