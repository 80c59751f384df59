"""`edge-agent evaluate MODEL_DIR DATASET --output DIR` through the real dispatcher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_agent.cli import main
from edge_agent.testing.onnx_models import bright_blob_package


def _folder_dataset(root: Path) -> Path:
    for kind, value, count in (("normal", 100, 3), ("anomaly", 250, 2)):
        (root / kind).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(np.full((96, 128, 3), value, np.uint8)).save(root / kind / f"{i}.png")
    return root


def test_evaluate_prints_a_summary_and_writes_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = bright_blob_package(tmp_path / "package")
    out = tmp_path / "out"
    rc = main(
        ["evaluate", str(package.directory), str(_folder_dataset(tmp_path / "data")), "--output", str(out)]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "confusion   TP 2  FP 0  TN 3  FN 0" in text
    assert "F1 score    100.0%" in text
    assert "basis       held-out" in text and "out-of-fold" not in text
    assert (out / "report.html").is_file()
    assert (out / "EvaluationResult-bright-blob-1.json").is_file()


def test_evaluate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package = bright_blob_package(tmp_path / "package")
    data = _folder_dataset(tmp_path / "data")
    assert (
        main(["evaluate", str(package.directory), str(data), "--output", str(tmp_path / "o"), "--json"]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["EvaluationDetails"]["NumberOfTestingImages"] == 5
    assert result["AggregatedEvaluationResults"]["Metrics"]["ROCAUC"] == 1.0


def test_evaluate_missing_package_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _folder_dataset(tmp_path / "data")
    assert main(["evaluate", str(tmp_path / "nothing"), str(data), "--output", str(tmp_path / "o")]) == 1
    assert "manifest.json not found" in capsys.readouterr().err
