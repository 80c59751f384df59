"""Folder auto-labelling: `normal/` and `anomaly/` children, as the guide's S3 prefix import does.

Layout (documented in docs/datasets.md):

    ROOT/normal/**.{png,jpg,jpeg}     normal images (deeper folder names are ignored)
    ROOT/anomaly/**.{png,jpg,jpeg}    anomalous images
    ROOT/masks/<path under anomaly/ with suffix .png>   optional mask of an anomalous image
    ROOT/labels.json                  {"cracked": "#23A436", ...}: label names and mask colours,
                                      required when masks/ exists

An anomalous image's labels are the labels.json colours painted in its mask.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from edge_agent.dataset.errors import DatasetError
from edge_agent.dataset.images import mask_colors, read_mask, unlisted_colors
from edge_agent.dataset.loader import build_dataset
from edge_agent.dataset.types import Dataset, Sample
from edge_agent.model_package import BACKGROUND_COLOR

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
NORMAL_DIR, ANOMALY_DIR, MASK_DIR, LABELS_FILE = "normal", "anomaly", "masks", "labels.json"
_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")


def load_folder(root: Path) -> Dataset:
    normal_dir, anomaly_dir, mask_dir = root / NORMAL_DIR, root / ANOMALY_DIR, root / MASK_DIR
    if not normal_dir.is_dir() and not anomaly_dir.is_dir():
        raise DatasetError(
            f"folder {root} has neither a normal/ nor an anomaly/ sub-folder: put normal images in "
            f"{normal_dir} and anomalous ones in {anomaly_dir}, or give a manifest file"
        )
    colors = read_labels(root / LABELS_FILE) if mask_dir.is_dir() else {}
    by_color = {color: name for name, color in colors.items()}
    samples = [Sample(image=p, is_anomalous=False, source_ref=_rel(p, root)) for p in _images(normal_dir)]
    for image in _images(anomaly_dir):
        mask = (mask_dir / image.relative_to(anomaly_dir)).with_suffix(".png")
        labels: tuple[str, ...] = ()
        if mask_dir.is_dir() and mask.is_file():
            pixels = read_mask(mask)
            present = mask_colors(pixels) & set(by_color)
            unknown, edges = unlisted_colors(pixels, present, {BACKGROUND_COLOR})
            painted = sorted(set(unknown) - set(edges))
            if painted:
                raise DatasetError(
                    f"mask {mask} contains colour(s) {', '.join(painted[:5])} not listed in "
                    f'{root / LABELS_FILE}: add them there as "name": "#RRGGBB" or repaint those pixels black'
                )
            labels = tuple(sorted(by_color[color] for color in present))
        samples.append(
            Sample(
                image=image,
                is_anomalous=True,
                mask=mask if labels or mask.is_file() else None,
                labels=labels,
                source_ref=_rel(image, root),
            )
        )
    return build_dataset(samples, colors, str(root))


def read_labels(path: Path) -> dict[str, str]:
    """labels.json: an object mapping each anomaly label name to its mask colour."""
    if not path.is_file():
        raise DatasetError(
            f"{path.parent / MASK_DIR} exists but {path} does not: write "
            '{"<label>": "#RRGGBB", ...} naming each mask colour'
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not data:
        raise DatasetError(f'{path} must be a non-empty object {{"<label>": "#RRGGBB", ...}}')
    colors: dict[str, str] = {}
    for name, color in data.items():
        if not isinstance(color, str) or not _HEX.fullmatch(color):
            raise DatasetError(f"{path}: label {name!r} has colour {color!r}: use #RRGGBB, e.g. #23A436")
        if color.upper() in colors.values() or color.upper() == BACKGROUND_COLOR:
            raise DatasetError(
                f"{path}: colour {color} of {name!r} is black or used twice: give each label its own"
            )
        colors[str(name)] = color.upper()
    return colors


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()
