"""The benchmark's synthetic scenes: masks are exactly the changed pixels, defects are what they say."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_agent.dataset import load_dataset
from edge_agent.testing.synthetic import write_synthetic_dataset

SIZE = (96, 96)


def _pairs(manifest: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    root = manifest.parent
    out = []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if "anomaly-mask-ref" in entry:
            image = np.asarray(Image.open(root / entry["source-ref"]).convert("RGB"))
            mask = np.asarray(Image.open(root / entry["anomaly-mask-ref"]).convert("RGB")).any(axis=-1)
            out.append((image, mask))
    return out


def test_texture_cracks_are_thin_dark_and_exactly_masked(tmp_path: Path) -> None:
    manifest = write_synthetic_dataset(tmp_path, 2, 4, SIZE, (("crack", "#FF0000"),), seed=5, scene="texture")
    dataset = load_dataset(manifest)
    assert dataset.model_type == "segmentation" and len(dataset.anomalous) == 4
    for image, mask in _pairs(manifest):
        assert (image[..., 0] == image[..., 1]).all()  # grayscale
        assert 0 < mask.sum() < 0.05 * mask.size  # a thin line, not a blob
        assert image[mask].mean() < image[~mask].mean()  # darker than the texture


def test_figure_missing_limb_is_the_removed_part(tmp_path: Path) -> None:
    manifest = write_synthetic_dataset(
        tmp_path, 2, 4, SIZE, (("missing", "#FF0000"), ("paint", "#00FF00")), seed=6, scene="figure"
    )
    pairs = _pairs(manifest)
    assert len(pairs) == 4
    for image, mask in pairs[::2]:  # missing: the limb's pixels now show the light table
        assert mask.sum() > 20
        assert image[mask].mean() > 150


def test_unknown_texture_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="brick"):
        write_synthetic_dataset(tmp_path, 1, 1, SIZE, (), scene="texture", texture="marble")
