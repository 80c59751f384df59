"""`edge-agent dataset ...` through the real dispatcher."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from dataset_files import DatasetWriter

from edge_agent.cli import main


def test_validate_prints_counts_type_and_size(
    writer: DatasetWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = writer.segmentation(normal=10, cracked=10)
    assert main(["dataset", "validate", str(manifest), "--role", "train"]) == 0
    out = capsys.readouterr().out
    assert "model type  segmentation" in out
    assert "image size  96x64" in out
    assert "20: 10 normal, 10 anomalous" in out
    assert "cracked              #23A436       10            10" in out
    assert "valid as a train dataset" in out


def test_validate_json_then_fails_the_single_minimums(
    writer: DatasetWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = writer.segmentation(normal=3, cracked=2)
    assert main(["dataset", "validate", str(manifest), "--json"]) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert (summary["normal"], summary["anomalous"], summary["model_type"]) == (3, 2, "segmentation")
    assert summary["labels"] == {"cracked": {"hex_color": "#23A436", "images": 2, "single_label_images": 2}}
    assert "train.manifest has 3 normal images; a single dataset needs at least 20" in captured.err


def test_convert_csv(writer: DatasetWriter, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = writer.root / "labels.csv"
    csv_path.write_text("a.png,normal\nb.png,anomaly\n")
    out = writer.root / "out.manifest"
    assert (
        main(["dataset", "convert-csv", str(csv_path), "--output", str(out), "--s3-path", "s3://b/p/"]) == 0
    )
    assert "images      2: 1 normal, 1 anomalous" in capsys.readouterr().out
    assert [json.loads(x)["source-ref"] for x in out.read_text().splitlines()] == [
        "s3://b/p/a.png",
        "s3://b/p/b.png",
    ]


def test_convert_csv_with_errors_exits_1(writer: DatasetWriter, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = writer.root / "labels.csv"
    csv_path.write_text("a.png,normal\na.png,normal\n")
    assert main(["dataset", "convert-csv", str(csv_path)]) == 1
    assert "labels_errors.csv" in capsys.readouterr().err


def test_split_writes_manifests_that_load_back(writer: DatasetWriter, tmp_path: Path) -> None:
    manifest = writer.segmentation(normal=5, cracked=5)
    out = tmp_path / "split"
    assert main(["dataset", "split", str(manifest), "--output-dir", str(out), "--test-fraction", "0.4"]) == 0
    from edge_agent.dataset import load_dataset

    train, test = load_dataset(out / "train.manifest"), load_dataset(out / "test.manifest")
    assert (len(test.normal), len(test.anomalous)) == (2, 2)
    assert (len(train.normal), len(train.anomalous)) == (3, 3)
    assert all(s.labels == ("cracked",) for s in test.anomalous)


def test_dataset_and_evaluation_import_neither_torch_nor_boto3() -> None:
    code = (
        "import sys, edge_agent.dataset, edge_agent.evaluation, edge_agent.cli.dataset, edge_agent.cli.evaluate; "
        "print(sorted(m for m in ('torch', 'boto3', 'edge_agent.training') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert result.stdout.strip() == "[]"
