"""Pictures a person looks at: the mask blended over the image, as the guide's PIL sample does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend `mask` over `image` (both uint8 RGB [H, W, 3]) where the mask is not background."""
    painted = mask.any(axis=2, keepdims=True)
    blended = (image.astype(np.float32) * (1 - alpha) + mask.astype(np.float32) * alpha).astype(np.uint8)
    return np.where(painted, blended, image)


def save_mask_and_overlay(image: np.ndarray, mask: np.ndarray, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """Write `<stem>.mask.png` and `<stem>.overlay.png` into out_dir; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mask_path = out_dir / f"{stem}.mask.png"
    overlay_path = out_dir / f"{stem}.overlay.png"
    Image.fromarray(np.ascontiguousarray(mask)).save(mask_path)
    Image.fromarray(overlay(image, mask)).save(overlay_path)
    return mask_path, overlay_path


def save_verdict(image: np.ndarray, is_anomalous: bool, out_dir: Path, stem: str, border: int = 6) -> Path:
    """For classification models (no mask): the image framed red if anomalous, green if normal."""
    out_dir.mkdir(parents=True, exist_ok=True)
    framed = image.copy()
    color = (220, 30, 30) if is_anomalous else (30, 170, 60)
    framed[:border], framed[-border:], framed[:, :border], framed[:, -border:] = color, color, color, color
    path = out_dir / f"{stem}.overlay.png"
    Image.fromarray(framed).save(path)
    return path


def read_rgb(path: Path) -> np.ndarray:
    """Decode a PNG/JPEG file to a contiguous uint8 RGB [H, W, 3] array.

    16-bit grayscale PNGs are scaled to 8 bits (Pillow's convert would clip them to white);
    EXIF orientation is not applied: the pixels are used as stored, as a camera client sends them.
    """
    with Image.open(path) as img:
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            grey = np.asarray(img, dtype=np.uint32) >> 8
            return np.ascontiguousarray(np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2))
        return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
