"""The guide's CSV -> classification manifest conversion, including its error files."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pytest
from dataset_files import DatasetWriter

from edge_agent.dataset import DatasetError, convert_csv, load_dataset
from edge_agent.dataset.csv_manifest import CsvConversionError


def _csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_good_csv_writes_the_guides_manifest_and_no_side_files(writer: DatasetWriter) -> None:
    for name in ("a.png", "b.png", "c.png"):
        writer.image(name)
    path = _csv(writer.root / "labels.csv", "a.png,normal\n\nb.png,Anomaly\nc.png,NORMAL\n")
    result = convert_csv(path)

    assert result.manifest == writer.root / "labels.manifest"
    assert (result.total, result.normal, result.anomalous) == (3, 2, 1)
    assert not (writer.root / "labels_errors.csv").exists()
    assert not (writer.root / "labels_deduplicated.csv").exists()
    lines = [json.loads(text) for text in result.manifest.read_text().splitlines()]
    assert [line["anomaly-label"] for line in lines] == ["0", "1", "0"]
    meta = lines[1]["anomaly-label-metadata"]
    assert meta["class-name"] == "Anomaly"  # written exactly as in the CSV
    assert {k: v for k, v in meta.items() if k != "creation-date"} == {
        "confidence": 1,
        "job-name": "labeling-job/anomaly-classification",
        "class-name": "Anomaly",
        "human-annotated": "yes",
        "type": "groundtruth/image-classification",
    }
    datetime.strptime(meta["creation-date"], "%Y-%m-%dT%H:%M:%S.%f")
    dataset = load_dataset(result.manifest)  # bare names resolve beside the manifest
    assert [s.is_anomalous for s in dataset.samples] == [False, True, False]


def test_s3_path_is_prepended(writer: DatasetWriter) -> None:
    path = _csv(writer.root / "labels.csv", "a.png,normal\n")
    result = convert_csv(path, output=writer.root / "out.manifest", s3_path="s3://bucket/train")
    assert json.loads(result.manifest.read_text())["source-ref"] == "s3://bucket/train/a.png"


def test_duplicates_and_invalid_classes_go_to_the_errors_file_and_no_manifest(writer: DatasetWriter) -> None:
    path = _csv(
        writer.root / "labels.csv",
        "a.png,normal\nb.png,anomaly\na.png,anomaly\nc.png,broken\n\nb.png,anomaly\n",
    )
    with pytest.raises(
        CsvConversionError, match=r"labels\.csv has 3 error\(s\).*labels_errors\.csv"
    ) as caught:
        convert_csv(path)

    assert not (writer.root / "labels.manifest").exists()
    with caught.value.errors_path.open(newline="") as handle:
        assert list(csv.reader(handle)) == [
            ["3", "a.png", "anomaly", "DUPLICATE"],
            ["4", "c.png", "broken", "INVALID_CLASSIFICATION"],
            ["6", "b.png", "anomaly", "DUPLICATE"],
        ]
    with caught.value.deduplicated_path.open(newline="") as handle:
        assert list(csv.reader(handle)) == [["a.png", "normal"], ["b.png", "anomaly"], ["c.png", "broken"]]


def test_mixed_name_styles_are_refused(writer: DatasetWriter) -> None:
    path = _csv(writer.root / "labels.csv", "s3://b/a.png,normal\nb.png,anomaly\n")
    with pytest.raises(
        DatasetError, match=r"labels\.csv mixes full s3:// paths \(line 1\) with bare image names"
    ):
        convert_csv(path)


def test_short_row_names_the_line(writer: DatasetWriter) -> None:
    path = _csv(writer.root / "labels.csv", "a.png,normal\nb.png\n")
    with pytest.raises(DatasetError, match=r"labels\.csv line 2 has 1 column"):
        convert_csv(path)
