"""read_rgb: the one decoder behind training, evaluation and `edge-agent detect` (real files, Pillow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from edge_agent.imaging.overlay import read_rgb


def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    rgb = read_rgb(tmp_path / "deep.png")
    assert rgb.shape == (64, 256, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb[..., 0], (ramp >> 8).astype(np.uint8))
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_8_bit_rgb_palette_and_rgba_images_decode_to_rgb(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    assert np.array_equal(read_rgb(tmp_path / "rgb.png"), pixels)
    Image.fromarray(pixels).convert("RGBA").save(tmp_path / "rgba.png")
    assert np.array_equal(read_rgb(tmp_path / "rgba.png"), pixels)
    grey = pixels[..., 0]
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert np.array_equal(read_rgb(tmp_path / "grey.png"), np.repeat(grey[..., None], 3, axis=2))
