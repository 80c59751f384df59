"""Sample inputs for the post-compilation checks: the user's images plus fixed synthetic ones.

NVIDIA packages also carry the user's images (`write_package_samples`), so the device can check
an FP16 TensorRT engine against the CPU session on them (edge_agent/runtime/precision.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edge_agent.model_package import Manifest
from edge_agent.runtime import samples as device_samples

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


def synthetic_inputs(manifest: Manifest, count: int = 6, seed: int = 0) -> list[np.ndarray]:
    """Deterministic images of the model's size (the device makes the same ones; runtime/samples.py)."""
    return device_samples.synthetic_inputs(manifest.height, manifest.width, count, seed)


def write_package_samples(
    stage: Path, images: list[np.ndarray], limit: int = device_samples.MAX_SAMPLES
) -> Path:
    """Carry the user's sample images in the package (`samples.npz`), for the device's FP16 check.

    Synthetic images are not stored: the device makes the same ones itself."""
    path = stage / device_samples.SAMPLES_FILE
    arrays = {
        f"sample_{i:03d}": np.ascontiguousarray(image, np.uint8) for i, image in enumerate(images[:limit])
    }
    np.savez_compressed(path, **arrays)
    log.info("op=samples carried=%d bytes=%d", len(arrays), path.stat().st_size)
    return path


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
