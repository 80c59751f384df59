"""The EfficientNet-Lite0 backbone: weight file identity, exact architecture, sensible features."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edge_agent.model_package import sha256_file
from edge_agent.training.backbone import (
    WEIGHTS_SHA256,
    BackboneWeightsError,
    EfficientNetLite0,
    load_backbone,
    weights_path,
)

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def test_shipped_weights_match_the_pinned_hash() -> None:
    assert sha256_file(weights_path()) == WEIGHTS_SHA256


def test_architecture_matches_the_state_dict_exactly() -> None:
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    expected = EfficientNetLite0().state_dict()
    assert set(state) == set(expected)
    assert all(state[k].shape == expected[k].shape for k in state)


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    copy = tmp_path / "weights.pth"
    shutil.copyfile(weights_path(), copy)
    with copy.open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(BackboneWeightsError, match="SHA-256"):
        load_backbone(copy)


def test_missing_weights_say_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(BackboneWeightsError, match="not found"):
        load_backbone(tmp_path / "absent.pth")


def _classify(model: EfficientNetLite0, image: np.ndarray) -> list[int]:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        return model((x - 127.0) / 128.0)[0].topk(5).indices.tolist()


def test_imagenet_predictions_are_sensible() -> None:
    """If padding, activations or normalisation were wrong, a cat would not come out as a cat."""
    data = pytest.importorskip("skimage.data")
    model = load_backbone()
    cat_top5 = _classify(model, data.chelsea())
    assert cat_top5[0] in IMAGENET_CATS
    assert _classify(model, data.coffee())[0] == ESPRESSO
