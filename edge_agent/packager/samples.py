"""Sample inputs for the post-compilation checks: the user's images plus fixed synthetic ones."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edge_agent.model_package import Manifest

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


def synthetic_inputs(manifest: Manifest, count: int = 6, seed: int = 0) -> list[np.ndarray]:
    """Deterministic images of the model's size: flat dark, flat bright, noise, noise with a patch."""
    rng = np.random.default_rng(seed)
    shape = (manifest.height, manifest.width, 3)
    images = [np.full(shape, 20, np.uint8), np.full(shape, 128, np.uint8), np.full(shape, 240, np.uint8)]
    while len(images) < count:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        h, w = manifest.height // 4, manifest.width // 4
        y, x = int(rng.integers(0, manifest.height - h)), int(rng.integers(0, manifest.width - w))
        image[y : y + h, x : x + w] = 250
        images.append(image)
    return images[:count]


def image_inputs(directory: Path | None, manifest: Manifest, limit: int = 64) -> list[np.ndarray]:
    """RGB images of exactly the model's size from `directory` (others are skipped with a warning)."""
    if directory is None:
        return []
    from edge_agent.imaging.overlay import read_rgb

    images: list[np.ndarray] = []
    for path in sorted(directory.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        image = read_rgb(path)
        if image.shape != (manifest.height, manifest.width, 3):
            log.warning(
                "op=samples skipped=%s shape=%s expected=%sx%s",
                path,
                image.shape,
                manifest.width,
                manifest.height,
            )
            continue
        images.append(image)
        if len(images) >= limit:
            break
    return images
