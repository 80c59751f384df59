"""What the importer needs to know about one image or mask file, read cheaply and checked.

Formats are sniffed from the first bytes, not taken from the extension, because the guide's
troubleshooting chapter names renamed JPEG masks as a cause of failed training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edge_agent.dataset.errors import DatasetError
from edge_agent.model_package import MAX_SIDE_PX, MIN_SIDE_PX, AnomalyLabel

MAX_IMAGE_BYTES = 8 * 1024 * 1024  # the guide's quota: 8 MB per image
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    format: str  # "PNG" or "JPEG"
    width: int
    height: int


def sniff_format(path: Path) -> str | None:
    """'PNG', 'JPEG' or None, from the file's magic bytes."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(PNG_MAGIC):
        return "PNG"
    if head.startswith(JPEG_MAGIC):
        return "JPEG"
    return None


def inspect_image(path: Path) -> ImageInfo:
    """Check one dataset image: exists, PNG or JPEG by content, at most 8 MB, 64..4096 px a side."""
    if not path.is_file():
        raise DatasetError(f"image {path} does not exist: fix the reference or copy the image there")
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise DatasetError(
            f"image {path} is {size} bytes; the limit is {MAX_IMAGE_BYTES} (8 MB): "
            "re-encode it with more compression or a smaller size"
        )
    kind = sniff_format(path)
    if kind is None:
        raise DatasetError(
            f"image {path} is neither PNG nor JPEG (checked its content, not its name): "
            "convert it to PNG or JPEG"
        )
    try:
        with Image.open(path) as img:
            width, height = img.size
    except OSError as exc:
        raise DatasetError(f"image {path} cannot be decoded ({exc}): replace the file") from None
    for side, value in (("width", width), ("height", height)):
        if not MIN_SIDE_PX <= value <= MAX_SIDE_PX:
            raise DatasetError(
                f"image {path} has {side} {value} px; allowed is {MIN_SIDE_PX}..{MAX_SIDE_PX}: "
                "resize or crop the images"
            )
    return ImageInfo(path=path, format=kind, width=width, height=height)


def read_mask(path: Path) -> np.ndarray:
    """Decode a mask PNG to uint8 RGB [H, W, 3]; fully transparent pixels become background (black)."""
    if not path.is_file():
        raise DatasetError(f"mask {path} does not exist: fix the mask reference or copy the mask there")
    if sniff_format(path) != "PNG":
        raise DatasetError(
            f"mask {path} is not a real PNG (checked its content, not its name): "
            "save the mask as PNG; renaming the extension is not enough"
        )
    try:
        with Image.open(path) as img:
            if img.mode == "P":
                return _palette_to_rgb(img)
            has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            if has_alpha:
                rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
                rgb = np.ascontiguousarray(rgba[..., :3])
                rgb[rgba[..., 3] == 0] = 0
                return rgb
            return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    except OSError as exc:
        raise DatasetError(f"mask {path} cannot be decoded ({exc}): replace the file") from None


def _palette_to_rgb(img: Image.Image) -> np.ndarray:
    """Palette masks (Ground Truth writes them) via a lookup table: much faster than convert("RGBA")."""
    indices = np.asarray(img, dtype=np.uint8)
    palette = np.zeros((256, 3), np.uint8)
    colors = np.frombuffer(bytes(img.getpalette() or []), dtype=np.uint8)[: 256 * 3].reshape(-1, 3)
    palette[: len(colors)] = colors
    transparency = img.info.get("transparency")
    if isinstance(transparency, bytes):
        alpha = np.full(256, 255, np.uint8)
        alpha[: len(transparency)] = np.frombuffer(transparency, dtype=np.uint8)
        palette[alpha == 0] = 0
    elif isinstance(transparency, int):
        palette[transparency] = 0
    return np.ascontiguousarray(palette[indices])


def mask_colors(mask: np.ndarray) -> set[str]:
    """The distinct colours of an RGB mask as upper-case #RRGGBB."""
    return {f"#{int(value):06X}" for value in np.unique(_packed(mask))}


EDGE_PX = 2  # how far an unlisted colour may lie from a label's pixels to count as its anti-aliased edge


def unlisted_colors(
    mask: np.ndarray, label_colors: set[str], background_colors: set[str]
) -> tuple[list[str], list[str]]:
    """(unlisted colours, of those the ones found only along the edges of label pixels).

    A mask drawn with a soft brush or resized with a smoothing filter has blended colours where a
    defect meets the background: they lie within EDGE_PX of the label's own pixels and are noise,
    read as background everywhere. An unlisted colour elsewhere is paint the color map does not name.
    """
    packed = _packed(mask)
    listed = {_hex_value(c) for c in label_colors}
    known = listed | {_hex_value(c) for c in background_colors}
    values = np.unique(packed)
    unknown = [int(v) for v in values if int(v) not in known]
    if not unknown:
        return [], []
    near_label = (
        np.isin(packed, np.array(sorted(listed), dtype=np.uint32)) if listed else np.zeros(packed.shape, bool)
    )
    for _ in range(EDGE_PX):  # 8-neighbourhood dilation, one pixel per step
        grown = near_label.copy()
        grown[1:] |= near_label[:-1]
        grown[:-1] |= near_label[1:]
        grown[:, 1:] |= near_label[:, :-1]
        grown[:, :-1] |= near_label[:, 1:]
        grown[1:, 1:] |= near_label[:-1, :-1]
        grown[1:, :-1] |= near_label[:-1, 1:]
        grown[:-1, 1:] |= near_label[1:, :-1]
        grown[:-1, :-1] |= near_label[1:, 1:]
        near_label = grown
    far = set(np.unique(packed[~near_label]).tolist())
    names = [f"#{v:06X}" for v in unknown]
    edges = [f"#{v:06X}" for v in unknown if v not in far]
    return names, edges


def _hex_value(color: str) -> int:
    return int(color.lstrip("#"), 16)


def _packed(mask: np.ndarray) -> np.ndarray:
    return (
        mask[..., 0].astype(np.uint32) << 16
        | mask[..., 1].astype(np.uint32) << 8
        | mask[..., 2].astype(np.uint32)
    )


def read_label_indices(path: Path, labels: Sequence[AnomalyLabel]) -> np.ndarray:
    """A mask as uint8 [H, W] class indices: 0 background, i for labels[i - 1] (what a trainer needs).

    Pixels of any colour that is not a label colour (black, transparent, a white BACKGROUND) are 0.
    """
    if len(labels) > 255:
        raise DatasetError(f"{len(labels)} labels do not fit uint8 class indices (at most 255)")
    mask = read_mask(path)
    packed = _packed(mask)
    indices = np.zeros(packed.shape, np.uint8)
    for index, label in enumerate(labels, start=1):
        r, g, b = label.rgb()
        indices[packed == (r << 16 | g << 8 | b)] = index
    return indices
