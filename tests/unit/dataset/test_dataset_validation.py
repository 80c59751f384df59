"""Every import-time and training-time rule of the guide, one test each; messages name the file."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from dataset_files import CRACK, DENT, DatasetWriter
from PIL import Image

from edge_agent.dataset import Dataset, DatasetError, Sample, load_dataset, validate
from edge_agent.model_package import AnomalyLabel


def _one_image(writer: DatasetWriter, name: str = "x.png") -> Path:
    return writer.manifest([writer.line(name, "normal")])


def test_image_that_is_not_png_or_jpeg_by_content(writer: DatasetWriter) -> None:
    writer.image("x.png", fmt="BMP")  # a BMP with a .png name
    with pytest.raises(DatasetError, match=r"image .*x\.png is neither PNG nor JPEG"):
        load_dataset(_one_image(writer))


def test_jpeg_named_png_is_accepted_because_content_decides(writer: DatasetWriter) -> None:
    writer.image("x.png", fmt="JPEG")
    assert len(load_dataset(_one_image(writer)).samples) == 1


def test_missing_image(writer: DatasetWriter) -> None:
    with pytest.raises(DatasetError, match=r"image .*x\.png does not exist"):
        load_dataset(_one_image(writer))


@pytest.mark.parametrize(("size", "side", "value"), [((63, 64), "width", 63), ((64, 4097), "height", 4097)])
def test_image_side_outside_64_to_4096(
    writer: DatasetWriter, size: tuple[int, int], side: str, value: int
) -> None:
    writer.image("x.png", size=size)
    with pytest.raises(DatasetError, match=rf"image .*x\.png has {side} {value} px; allowed is 64\.\.4096"):
        load_dataset(_one_image(writer))


def test_image_over_8_mb(writer: DatasetWriter) -> None:
    path = writer.image("x.png")
    with path.open("ab") as handle:  # trailing bytes after IEND: still a decodable PNG
        handle.write(b"\0" * (8 * 1024 * 1024))
    with pytest.raises(DatasetError, match=r"image .*x\.png is \d+ bytes; the limit is 8388608"):
        load_dataset(_one_image(writer))


def test_images_of_different_sizes(writer: DatasetWriter) -> None:
    writer.image("a.png", size=(96, 64))
    writer.image("b.png", size=(64, 96))
    path = writer.manifest([writer.line("a.png", "normal"), writer.line("b.png", "normal")])
    with pytest.raises(DatasetError, match=r"image .*b\.png is 64x96 but .*a\.png is 96x64"):
        load_dataset(path)


def _masked(writer: DatasetWriter, colors: dict[str, str] | None = None) -> Path:
    writer.image("x.png")
    return writer.manifest(
        [writer.line("x.png", "anomaly", mask_ref="m.png", colors=colors or {"cracked": CRACK})]
    )


def test_mask_that_is_not_a_real_png(writer: DatasetWriter) -> None:
    writer.mask("m.png", {CRACK: (0, 0, 10, 10)}, fmt="JPEG")
    with pytest.raises(DatasetError, match=r"mask .*m\.png is not a real PNG"):
        load_dataset(_masked(writer))


def test_missing_mask(writer: DatasetWriter) -> None:
    with pytest.raises(DatasetError, match=r"mask .*m\.png does not exist"):
        load_dataset(_masked(writer))


def test_mask_of_another_size(writer: DatasetWriter) -> None:
    writer.mask("m.png", {CRACK: (0, 0, 10, 10)}, size=(64, 64))
    with pytest.raises(DatasetError, match=r"mask .*m\.png is 64x64 but its image .*x\.png is 96x64"):
        load_dataset(_masked(writer))


def test_hex_color_absent_from_its_mask(writer: DatasetWriter) -> None:
    writer.mask("m.png", {CRACK: (0, 0, 10, 10)})
    with pytest.raises(
        DatasetError, match=r"mask .*m\.png does not contain hex-color #1F77B4 of label\(s\) \['dent'\]"
    ):
        load_dataset(_masked(writer, {"cracked": CRACK, "dent": DENT}))


def test_mask_colour_missing_from_the_color_map(writer: DatasetWriter) -> None:
    writer.mask("m.png", {CRACK: (0, 0, 10, 10), "#FF00FF": (20, 20, 25, 25)})
    with pytest.raises(DatasetError, match=r"mask .*m\.png contains colour\(s\) #FF00FF that are not in"):
        load_dataset(_masked(writer))


def test_anti_aliased_mask_edges_are_background_not_an_error(writer: DatasetWriter) -> None:
    """A mask drawn with a soft brush (or resized smoothly): blended colours only along the defect's edge."""
    mask = np.zeros((64, 96, 3), np.uint8)
    mask[19:41, 29:61] = (17, 82, 27)  # half of #23A436 over black, one pixel wide around the defect
    mask[20:40, 30:60] = (0x23, 0xA4, 0x36)
    Image.fromarray(mask).save(writer.root / "m.png")
    dataset = load_dataset(_masked(writer))
    assert dataset.samples[0].labels == ("cracked",)
    mask[2:6, 2:6] = (17, 82, 27)  # the same colour away from any label pixel is unlisted paint
    Image.fromarray(mask).save(writer.root / "m.png")
    with pytest.raises(DatasetError, match=r"contains colour\(s\) #11521B that are not in"):
        load_dataset(_masked(writer))


def test_validate_rechecks_files_changed_after_import(writer: DatasetWriter) -> None:
    dataset = load_dataset(writer.segmentation(normal=1, cracked=1))
    writer.image("images/normal-0.png", size=(64, 64))
    with pytest.raises(
        DatasetError, match=r"image .*normal-0\.png is 64x64 but the dataset's images are 96x64"
    ):
        validate(dataset, role="train", check_files=True)


# Count and label rules: built in memory (check_files=False), because only the records matter.


def _dataset(normal: int, anomalous: int, labels: tuple[tuple[str, ...], ...] = ()) -> Dataset:
    """`labels` gives the label set of each anomalous image (segmentation) when not empty."""
    samples = [Sample(image=Path(f"n{i}.png"), is_anomalous=False) for i in range(normal)]
    for i in range(anomalous):
        names = labels[i] if labels else ()
        samples.append(
            Sample(
                image=Path(f"a{i}.png"),
                is_anomalous=True,
                mask=Path(f"m{i}.png") if names else None,
                labels=names,
            )
        )
    used = sorted({name for names in labels for name in names})
    colors = [AnomalyLabel(name, f"#{i + 1:06X}") for i, name in enumerate(used)]
    return Dataset(samples=tuple(samples), width=96, height=64, labels=tuple(colors), source="mem.manifest")


@pytest.mark.parametrize(
    ("role", "normal", "anomalous", "message"),
    [
        ("single", 19, 10, "19 normal images; a single dataset needs at least 20"),
        ("single", 20, 9, "9 anomalous images; a single dataset needs at least 10"),
        ("train", 9, 0, "9 normal images; a separate train dataset needs at least 10"),
        ("test", 10, 9, "9 anomalous images; a separate test dataset needs at least 10"),
    ],
)
def test_classification_minimum_counts(role: str, normal: int, anomalous: int, message: str) -> None:
    with pytest.raises(DatasetError, match=rf"mem\.manifest has {message}"):
        validate(_dataset(normal, anomalous), role=role, check_files=False)  # type: ignore[arg-type]


def test_classification_minimums_met() -> None:
    validate(_dataset(20, 10), role="single", check_files=False)
    validate(_dataset(10, 0), role="train", check_files=False)  # the quota table allows 0 anomalous
    validate(_dataset(10, 10), role="test", check_files=False)


def test_segmentation_counts_only_single_label_images() -> None:
    labels = (("crack",),) * 20 + (("dent",),) * 19 + (("crack", "dent"),) * 5
    with pytest.raises(DatasetError, match=r"exactly one anomaly label \(dent: 19\).*at least 20 per label"):
        validate(_dataset(20, len(labels), labels), role="single", check_files=False)
    labels = (("crack",),) * 10 + (("dent",),) * 10
    validate(_dataset(10, 20, labels), role="test", check_files=False)


def test_too_many_labels() -> None:
    labels = tuple((f"l{i}",) for i in range(101))
    with pytest.raises(DatasetError, match=r"mem\.manifest has 101 anomaly labels; the limit is 100"):
        validate(_dataset(20, 101, labels), check_files=False)


def test_too_many_labels_in_one_mask() -> None:
    labels = (tuple(f"l{i}" for i in range(21)),)
    with pytest.raises(DatasetError, match=r"mask m0\.png has 21 labels; the limit is 20 per mask"):
        validate(_dataset(20, 1, labels), check_files=False)


def test_segmentation_anomaly_without_mask() -> None:
    dataset = _dataset(20, 2, (("crack",), ("crack",)))
    bare = replace(dataset.samples[-1], mask=None, labels=())
    dataset = replace(dataset, samples=(*dataset.samples[:-1], bare))
    with pytest.raises(DatasetError, match=r"image a1\.png is anomalous but has no mask"):
        validate(dataset, check_files=False)


def test_segmentation_anomaly_with_empty_mask(writer: DatasetWriter) -> None:
    manifest = writer.segmentation(normal=1, cracked=2)
    lines = [json.loads(text) for text in manifest.read_text().splitlines()]
    writer.mask("masks/empty.png", {})
    lines[-1] = writer.line(lines[-1]["source-ref"], "anomaly", mask_ref="masks/empty.png", colors={})
    dataset = load_dataset(writer.manifest(lines))
    with pytest.raises(
        DatasetError, match=r"image .*crack-1\.jpg is anomalous but its mask .*empty\.png paints no"
    ):
        validate(dataset, role="train")


def test_too_large_a_test_set() -> None:
    labels = (("crack",),) * 801
    with pytest.raises(DatasetError, match=r"801 images; a segmentation test dataset may hold at most 800"):
        validate(_dataset(0, 801, labels), role="test", check_files=False)


def test_unknown_role() -> None:
    with pytest.raises(DatasetError, match="role 'validation' is unknown"):
        validate(_dataset(20, 10), role="validation", check_files=False)  # type: ignore[arg-type]
