"""Ground Truth manifest flavours found in the wild, imported through `load_dataset`."""

from __future__ import annotations

import json

import pytest
from dataset_files import CRACK, DENT, DatasetWriter

from edge_agent.dataset import DatasetError, load_dataset, validate


def test_labels_as_int_or_string_and_class_name_decides(writer: DatasetWriter) -> None:
    for name in ("a.png", "b.png", "c.png", "d.png"):
        writer.image(name)
    path = writer.manifest(
        [
            writer.line("a.png", "normal", label=0),
            writer.line("b.png", "normal", label="0"),
            writer.line("c.png", "anomaly", label="1"),
            # The value is ignored on import: class-name decides, as the guide says.
            writer.line("d.png", "Anomaly", label=0),
        ]
    )
    dataset = load_dataset(path)
    assert [s.is_anomalous for s in dataset.samples] == [False, False, True, True]
    assert dataset.model_type == "classification"
    assert (dataset.width, dataset.height) == (96, 64)
    assert [s.source_ref for s in dataset.samples] == ["a.png", "b.png", "c.png", "d.png"]


def test_attribute_names_are_found_by_suffix_and_type(writer: DatasetWriter) -> None:
    writer.image("x.png")
    writer.mask("x-mask.png", {CRACK: (0, 0, 10, 10)})
    line = writer.line(
        "x.png",
        "anomaly",
        mask_ref="x-mask.png",
        colors={"cracked": CRACK},
        label_attr="my-defect",
        mask_attr="segmentation-ref",
    )
    dataset = load_dataset(writer.manifest([line]))
    assert dataset.samples[0].mask == writer.root / "x-mask.png"
    assert dataset.samples[0].labels == ("cracked",)


def test_unlabelled_lines_are_skipped_and_counted(writer: DatasetWriter) -> None:
    for name in ("a.png", "b.png", "c.png"):
        writer.image(name)
    path = writer.manifest(
        [writer.line("a.png", "normal"), writer.line("b.png", "maybe"), writer.line("c.png", "unknown")]
    )
    dataset = load_dataset(path)
    assert len(dataset.samples) == 1
    assert dataset.unlabelled == 2


@pytest.mark.parametrize("background", [True, False])
def test_color_map_with_or_without_background_and_any_case(writer: DatasetWriter, background: bool) -> None:
    writer.image("x.png")
    writer.mask("m.png", {CRACK: (0, 0, 10, 10), DENT: (20, 20, 30, 30)})
    line = writer.line(
        "x.png",
        "anomaly",
        mask_ref="m.png",
        colors={"cracked": CRACK.lower(), "dent": DENT.lower()},
        background=background,
    )
    dataset = load_dataset(writer.manifest([line]))
    assert [(label.name, label.hex_color) for label in dataset.labels] == [("cracked", CRACK), ("dent", DENT)]
    assert dataset.samples[0].labels == ("cracked", "dent")
    assert dataset.single_label_counts() == {"cracked": 0, "dent": 0}
    assert dataset.label_counts() == {"cracked": 1, "dent": 1}


def test_white_background_from_the_color_map_is_background(writer: DatasetWriter) -> None:
    writer.image("x.png")
    writer.mask("m.png", {CRACK: (0, 0, 10, 10)}, background=(255, 255, 255))
    line = writer.line("x.png", "anomaly", mask_ref="m.png", colors={"cracked": CRACK})
    dataset = load_dataset(writer.manifest([line]))
    assert dataset.samples[0].labels == ("cracked",)
    # Re-checking the files accepts the white background too: files pass, only the counts fail.
    with pytest.raises(DatasetError, match="has 0 normal images"):
        validate(dataset, role="train")


def test_transparent_mask_pixels_are_background(writer: DatasetWriter) -> None:
    import numpy as np
    from PIL import Image

    writer.image("x.png")
    rgba = np.zeros((64, 96, 4), np.uint8)
    rgba[..., :3] = 200  # coloured but fully transparent: not paint
    rgba[0:10, 0:10] = [0x23, 0xA4, 0x36, 255]
    Image.fromarray(rgba, "RGBA").save(writer.root / "m.png")
    line = writer.line("x.png", "anomaly", mask_ref="m.png", colors={"cracked": CRACK})
    assert load_dataset(writer.manifest([line])).samples[0].labels == ("cracked",)


def test_normal_line_with_background_only_mask_ignores_the_missing_dummy_mask(writer: DatasetWriter) -> None:
    manifest = writer.segmentation(normal=1, cracked=1)
    lines = [json.loads(text) for text in manifest.read_text().splitlines()]
    lines[0].update(
        writer.line(lines[0]["source-ref"], "normal", mask_ref="masks/dummy_anomaly_mask.png", colors={})
    )
    dataset = load_dataset(writer.manifest(lines))
    assert dataset.normal[0].mask is None
    assert dataset.model_type == "segmentation"


def test_evaluation_manifest_predictions_do_not_count_as_labels(writer: DatasetWriter) -> None:
    writer.image("a.png")
    line = writer.line("a.png", "normal")
    line["anomaly-label-detected"] = 1
    line["anomaly-label-detected-metadata"] = {
        "class-name": "anomaly",
        "type": "groundtruth/image-classification",
    }
    assert not load_dataset(writer.manifest([line])).samples[0].is_anomalous


def test_invalid_json_names_file_and_line(writer: DatasetWriter) -> None:
    writer.image("a.png")
    path = writer.root / "bad.manifest"
    path.write_text(json.dumps(writer.line("a.png", "normal")) + "\n{not json\n")
    with pytest.raises(DatasetError, match=r"bad\.manifest line 2 is not valid JSON"):
        load_dataset(path)


def test_missing_classification_metadata_is_an_error(writer: DatasetWriter) -> None:
    path = writer.manifest([{"source-ref": "a.png", "anomaly-label": 1}])
    with pytest.raises(DatasetError, match=r"train\.manifest line 1: no classification label"):
        load_dataset(path)


def test_missing_label_value_is_an_error(writer: DatasetWriter) -> None:
    line = writer.line("a.png", "normal")
    del line["anomaly-label"]
    with pytest.raises(DatasetError, match=r"line 1: .*no label attribute `anomaly-label`"):
        load_dataset(writer.manifest([line]))


def test_normal_image_with_anomaly_labels_is_an_error(writer: DatasetWriter) -> None:
    writer.image("a.png")
    line = writer.line("a.png", "normal", mask_ref="m.png", colors={"cracked": CRACK})
    with pytest.raises(DatasetError, match=r"line 1: image a\.png is labelled normal"):
        load_dataset(writer.manifest([line]))


def test_one_label_two_colours_is_an_error(writer: DatasetWriter) -> None:
    writer.image("a.png")
    writer.image("b.png")
    writer.mask("ma.png", {CRACK: (0, 0, 5, 5)})
    writer.mask("mb.png", {DENT: (0, 0, 5, 5)})
    lines = [
        writer.line("a.png", "anomaly", mask_ref="ma.png", colors={"cracked": CRACK}),
        writer.line("b.png", "anomaly", mask_ref="mb.png", colors={"cracked": DENT}),
    ]
    with pytest.raises(DatasetError, match=r"line 2: label 'cracked' has colour #1F77B4 here but #23A436"):
        load_dataset(writer.manifest(lines))


def test_images_in_several_buckets_is_an_error(writer: DatasetWriter) -> None:
    lines = [writer.line("s3://one/a.png", "normal"), writer.line("s3://two/b.png", "normal")]
    with pytest.raises(
        DatasetError, match=r"several buckets: one \(first on line 1\), two \(first on line 2\)"
    ):
        load_dataset(writer.manifest(lines), image_root=writer.root)


def test_bad_hex_color_names_the_entry(writer: DatasetWriter) -> None:
    line = writer.line("a.png", "anomaly", mask_ref="m.png", colors={"cracked": "green"})
    with pytest.raises(
        DatasetError, match=r"internal-color-map entry \"1\" \(cracked\) has hex-color 'green'"
    ):
        load_dataset(writer.manifest([line]))


def test_csv_source_points_to_the_converter(writer: DatasetWriter) -> None:
    path = writer.root / "labels.csv"
    path.write_text("a.png,normal\n")
    with pytest.raises(DatasetError, match="edge-agent dataset convert-csv"):
        load_dataset(path)


def test_palette_mask_with_transparency_as_ground_truth_writes_it(writer: DatasetWriter) -> None:
    import numpy as np
    from PIL import Image

    writer.image("x.png")
    indices = np.zeros((64, 96), np.uint8)
    indices[5:15, 5:15] = 1
    indices[30:32, 30:32] = 2  # opaque black: background too
    mask = Image.fromarray(indices, "P")
    mask.putpalette([200, 200, 200, 0x23, 0xA4, 0x36, 0, 0, 0])
    mask.info["transparency"] = bytes([0, 255, 255])  # index 0 is transparent grey: background
    mask.save(writer.root / "m.png", transparency=bytes([0, 255, 255]))
    line = writer.line("x.png", "anomaly", mask_ref="m.png", colors={"cracked": CRACK})
    assert load_dataset(writer.manifest([line])).samples[0].labels == ("cracked",)


def test_read_label_indices_gives_trainer_class_maps(writer: DatasetWriter) -> None:
    from edge_agent.dataset import read_label_indices

    writer.image("x.png")
    writer.mask("m.png", {CRACK: (0, 0, 10, 10), DENT.lower(): (20, 20, 30, 25)}, background=(255, 255, 255))
    line = writer.line("x.png", "anomaly", mask_ref="m.png", colors={"cracked": CRACK, "dent": DENT})
    dataset = load_dataset(writer.manifest([line]))
    indices = read_label_indices(dataset.samples[0].mask, dataset.labels)
    assert indices.shape == (64, 96) and indices.dtype.name == "uint8"
    assert (indices == 1).sum() == 100 and indices[0, 0] == 1  # cracked = labels[0]
    assert (indices == 2).sum() == 50 and indices[20, 20] == 2
    assert (indices == 0).sum() == 64 * 96 - 150  # white BACKGROUND pixels are 0


def test_a_repeated_source_ref_is_one_image_and_the_last_line_labels_it(writer: DatasetWriter) -> None:
    """A repeated line must not count twice towards the minimums, nor land in both train and test."""
    for name in ("a.png", "b.png"):
        writer.image(name)
    path = writer.manifest(
        [
            writer.line("a.png", "anomaly"),
            writer.line("b.png", "normal"),
            writer.line("a.png", "anomaly"),
            writer.line("a.png", "normal"),  # relabelled, as UpdateDatasetEntries would
        ]
    )
    dataset = load_dataset(path)
    assert [(s.source_ref, s.is_anomalous) for s in dataset.samples] == [("b.png", False), ("a.png", False)]
