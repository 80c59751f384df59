"""The guide's getting-started cookies dataset, in the three manifest flavours users have.

Needs /work/shared beside the clone (`<repo>/../shared`, as in CI); skipped only if it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.dataset import load_dataset, split_dataset, validate

COOKIES = (Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "cookies").resolve()
pytestmark = pytest.mark.skipif(not COOKIES.is_dir(), reason=f"{COOKIES} is absent (shared data not mounted)")


@pytest.mark.parametrize(
    ("manifest", "image_root", "model_type"),
    [
        ("train.manifest", None, "segmentation"),
        ("train-segmentation-s3.manifest", COOKIES, "segmentation"),
        ("train-classification-s3.manifest", COOKIES, "classification"),
    ],
)
def test_cookies_manifests_import(manifest: str, image_root: Path | None, model_type: str) -> None:
    dataset = load_dataset(COOKIES / manifest, image_root=image_root)

    assert dataset.model_type == model_type
    assert (len(dataset.normal), len(dataset.anomalous)) == (31, 32)
    assert (dataset.width, dataset.height) == (576, 768)
    assert all(s.image.parent == COOKIES / "training-images" for s in dataset.samples)
    if model_type == "segmentation":
        assert [(label.name, label.hex_color) for label in dataset.labels] == [("cracked", "#23A436")]
        assert all(s.mask == COOKIES / "mask-images" / f"{s.image.stem}.png" for s in dataset.anomalous)
        assert all(s.labels == ("cracked",) for s in dataset.anomalous)
        assert all(s.mask is None and not s.labels for s in dataset.normal)
    else:
        assert dataset.labels == ()
        assert all(s.mask is None for s in dataset.samples)
    validate(dataset, role="single")


def test_cookies_split_keeps_both_classes() -> None:
    dataset = load_dataset(COOKIES / "train.manifest")
    train, test = split_dataset(dataset, test_fraction=0.2, seed=3)
    assert (len(test.normal), len(test.anomalous)) == (6, 6)
    assert {s.image for s in train.samples}.isdisjoint(s.image for s in test.samples)
    assert len(train.samples) + len(test.samples) == 63
