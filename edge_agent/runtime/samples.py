"""The sample images a model package carries, for checks that run on the device.

The packager writes `samples.npz` (uint8 [H, W, 3] arrays: the user's --sample-images plus fixed
synthetic ones) into NVIDIA packages, so the device can check an FP16 TensorRT engine against the
ONNX Runtime CPU session on real images before it serves with it. A package without the file
(older packager, CPU target) gets the synthetic images only.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
SAMPLES_FILE = "samples.npz"
MAX_SAMPLES = 32


def synthetic_inputs(height: int, width: int, count: int = 6, seed: int = 0) -> list[np.ndarray]:
    """Deterministic images of the model's size: flat dark, flat bright, noise, noise with a patch."""
    rng = np.random.default_rng(seed)
    shape = (height, width, 3)
    images = [np.full(shape, 20, np.uint8), np.full(shape, 128, np.uint8), np.full(shape, 240, np.uint8)]
    while len(images) < count:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        h, w = height // 4, width // 4
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        image[y : y + h, x : x + w] = 250
        images.append(image)
    return images[:count]


def package_samples(directory: Path, height: int, width: int) -> list[np.ndarray]:
    """The package's carried samples of the right shape, then the synthetic ones."""
    images: list[np.ndarray] = []
    path = directory / SAMPLES_FILE
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as archive:
                for name in sorted(archive.files):
                    image = archive[name]
                    if image.dtype == np.uint8 and image.shape == (height, width, 3):
                        images.append(np.ascontiguousarray(image))
                    else:
                        log.warning("op=samples skipped=%s shape=%s dtype=%s", name, image.shape, image.dtype)
        except (OSError, ValueError) as exc:
            log.warning("op=samples unreadable=%s reason=%s", path, exc)
    return images[:MAX_SAMPLES] + synthetic_inputs(height, width)
