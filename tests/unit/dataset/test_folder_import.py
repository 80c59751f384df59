"""Folder auto-labelling: normal/ and anomaly/, optionally masks/ with labels.json."""

from __future__ import annotations

import json

import pytest
from dataset_files import CRACK, DENT, DatasetWriter

from edge_agent.dataset import DatasetError, load_dataset


def test_classification_folders_including_deeper_folders(writer: DatasetWriter) -> None:
    writer.image("normal/a.png")
    writer.image("normal/line-2/b.jpg", fmt="JPEG")
    writer.image("anomaly/c.png")
    (writer.root / "anomaly" / "notes.txt").write_text("ignored: not an image name")
    dataset = load_dataset(writer.root)
    assert dataset.model_type == "classification"
    assert sorted(s.source_ref for s in dataset.normal) == ["normal/a.png", "normal/line-2/b.jpg"]
    assert [s.source_ref for s in dataset.anomalous] == ["anomaly/c.png"]
    assert dataset.source == str(writer.root)


def test_segmentation_folders_with_masks_and_labels_json(writer: DatasetWriter) -> None:
    writer.image("normal/a.png")
    writer.image("anomaly/one.jpg", fmt="JPEG")
    writer.image("anomaly/sub/two.png")
    writer.image("anomaly/no-mask.png")
    writer.mask("masks/one.png", {CRACK: (0, 0, 10, 10)})
    writer.mask("masks/sub/two.png", {CRACK: (0, 0, 10, 10), DENT.lower(): (20, 20, 30, 30)})
    (writer.root / "labels.json").write_text(json.dumps({"cracked": CRACK.lower(), "dent": DENT}))
    dataset = load_dataset(writer.root)
    assert dataset.model_type == "segmentation"
    assert [(label.name, label.hex_color) for label in dataset.labels] == [("cracked", CRACK), ("dent", DENT)]
    by_ref = {s.source_ref: s for s in dataset.samples}
    assert by_ref["anomaly/one.jpg"].labels == ("cracked",)
    assert by_ref["anomaly/one.jpg"].mask == writer.root / "masks" / "one.png"
    assert by_ref["anomaly/sub/two.png"].labels == ("cracked", "dent")
    assert by_ref["anomaly/no-mask.png"].mask is None


def test_masks_without_labels_json(writer: DatasetWriter) -> None:
    writer.image("anomaly/one.png")
    writer.mask("masks/one.png", {CRACK: (0, 0, 10, 10)})
    with pytest.raises(DatasetError, match=r"masks exists but .*labels\.json does not"):
        load_dataset(writer.root)


def test_mask_colour_not_in_labels_json(writer: DatasetWriter) -> None:
    writer.image("anomaly/one.png")
    writer.mask("masks/one.png", {DENT: (0, 0, 10, 10)})
    (writer.root / "labels.json").write_text(json.dumps({"cracked": CRACK}))
    with pytest.raises(DatasetError, match=r"mask .*one\.png contains colour\(s\) #1F77B4 not listed in"):
        load_dataset(writer.root)


def test_folder_without_normal_or_anomaly(writer: DatasetWriter) -> None:
    writer.image("good/a.png")
    with pytest.raises(DatasetError, match=r"has neither a normal/ nor an anomaly/ sub-folder"):
        load_dataset(writer.root)
