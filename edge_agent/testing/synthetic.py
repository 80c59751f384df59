"""Synthetic inspection datasets with exact defect masks, written as a Lookout for Vision dataset.

Each image shows one machined part: a brushed, noisy metal plate with four mounting holes on a
darker bench, with small random shifts, rotation-free jitter and lighting changes (normal
variation). Anomalous images carry one drawn defect, of the kind named by their label:

- `scratch`: a thin bright straight line;      - `crack`: a dark jagged random-walk line;
- `stain`: a soft-edged discoloured blob;      - `missing`: a chunk of the plate cut away.

Labels with other names cycle through these kinds. The mask is exactly the pixels the defect
changed, painted in the label's colour on black. Output: PNG images, PNG masks and a Ground Truth
manifest in the guide's format (relative references), or `normal/` + `anomaly/` folders.
Numpy and Pillow only, seeded, and about a millisecond per 128 px image.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DEFECT_KINDS = ("scratch", "crack", "stain", "missing")
DEFAULT_LABELS: tuple[tuple[str, str], ...] = (("scratch", "#2CA02C"), ("stain", "#1F77B4"))
MANIFEST_NAME = "train.manifest"
_CREATED = "2026-01-01T00:00:00.000"


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Value noise: a coarse random grid upsampled bicubically, in -1..1."""
    grid = rng.uniform(-1, 1, (max(2, height // cell + 2), max(2, width // cell + 2))).astype(np.float32)
    img = Image.fromarray(grid, mode="F").resize((width + 2 * cell, height + 2 * cell), Image.BICUBIC)
    return np.asarray(img)[cell : cell + height, cell : cell + width]


def render_part(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """One normal part: (uint8 RGB image, bool plate mask)."""
    bench = 55 + 10 * _smooth_noise(rng, height, width, max(4, width // 6))
    brushed = rng.normal(0, 1, (height, width)).astype(np.float32)
    streaks = np.repeat(rng.normal(0, 1, (height, 1)).astype(np.float32), width, axis=1)
    light = 1.0 + 0.08 * rng.uniform(-1, 1)
    plate_tone = (
        150 + 12 * _smooth_noise(rng, height, width, max(4, width // 4)) + 5 * streaks + 4 * brushed
    ) * light
    shape = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(shape)
    mx, my = 0.14 * width + rng.uniform(-2, 2), 0.14 * height + rng.uniform(-2, 2)
    draw.rounded_rectangle(
        (mx, my, width - 1 - mx, height - 1 - my), radius=int(0.08 * min(width, height)), fill=255
    )
    r = max(2.0, 0.05 * min(width, height))
    for fx, fy in ((0.27, 0.27), (0.73, 0.27), (0.27, 0.73), (0.73, 0.73)):
        cx, cy = fx * width + rng.uniform(-1, 1), fy * height + rng.uniform(-1, 1)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=0)
    plate = np.asarray(shape) > 127
    gray = np.where(plate, plate_tone, bench)
    tint = np.array([1.0, 0.98, 0.93], np.float32)
    rgb = np.clip(gray[..., None] * tint + rng.normal(0, 2.0, (height, width, 1)), 0, 255)
    return rgb.astype(np.uint8), plate


def _random_point(rng: np.random.Generator, plate: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(plate)
    i = int(rng.integers(len(xs)))
    return float(xs[i]), float(ys[i])


def draw_defect(
    rng: np.random.Generator, image: np.ndarray, plate: np.ndarray, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """(image with the defect, bool mask of exactly the changed pixels)."""
    height, width = plate.shape
    scale = min(width, height)
    shape = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(shape)
    x, y = _random_point(rng, plate)
    out = image.astype(np.float32)
    if kind == "scratch":
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(0.25, 0.45) * scale
        dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
        draw.line((x - dx, y - dy, x + dx, y + dy), fill=255, width=max(3, round(scale / 32)))
        mask = (np.asarray(shape) > 0) & plate
        out[mask] = np.clip(out[mask] + 70, 0, 255)
    elif kind == "crack":
        points = [(x, y)]
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(8, 14))):
            angle += rng.uniform(-0.7, 0.7)
            step = rng.uniform(0.03, 0.05) * scale
            points.append((points[-1][0] + np.cos(angle) * step, points[-1][1] + np.sin(angle) * step))
        draw.line(points, fill=255, width=max(3, round(scale / 32)), joint="curve")
        mask = (np.asarray(shape) > 0) & plate
        out[mask] = out[mask] * 0.35
    elif kind == "stain":
        rx, ry = rng.uniform(0.07, 0.13, 2) * scale
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=255)
        soft = np.asarray(shape.filter(ImageFilter.GaussianBlur(scale / 60)), np.float32) / 255.0
        mask = (soft > 0.5) & plate
        weight = np.where(mask, np.maximum(soft, 0.5), 0.0)[..., None]
        out = out * (1 - weight) + (out * np.array([0.75, 0.6, 0.35], np.float32)) * weight
    else:  # missing: a notch cut out of the plate's edge, showing the bench
        edge = rng.integers(4)
        cx = [0.14 * width, 0.86 * width, rng.uniform(0.35, 0.65) * width, rng.uniform(0.35, 0.65) * width][
            edge
        ]
        cy = [
            rng.uniform(0.35, 0.65) * height,
            rng.uniform(0.35, 0.65) * height,
            0.14 * height,
            0.86 * height,
        ][edge]
        r = rng.uniform(0.08, 0.12) * scale
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        mask = (np.asarray(shape) > 0) & plate
        out[mask] = 55 + 6 * rng.normal(0, 1, (int(mask.sum()), 1))
    result = np.clip(out, 0, 255).astype(np.uint8)
    mask &= (result != image).any(axis=-1)
    return result, mask


def defect_kind(label: str, index: int) -> str:
    name = label.lower()
    return name if name in DEFECT_KINDS else DEFECT_KINDS[index % len(DEFECT_KINDS)]


def _classification_meta(anomalous: bool) -> dict[str, object]:
    return {
        "confidence": 1,
        "job-name": "labeling-job/synthetic",
        "class-name": "anomaly" if anomalous else "normal",
        "human-annotated": "yes",
        "creation-date": _CREATED,
        "type": "groundtruth/image-classification",
    }


def write_synthetic_dataset(
    root: Path,
    n_normal: int = 20,
    n_anomalous: int = 20,
    size: tuple[int, int] = (128, 128),
    labels: Sequence[tuple[str, str]] = DEFAULT_LABELS,
    seed: int = 0,
    layout: Literal["manifest", "folders"] = "manifest",
    prefix: str = "",
) -> Path:
    """Write a dataset under `root`; return the manifest path (or the folder for layout="folders").

    labels: (name, "#RRGGBB") per anomaly type; empty for a classification dataset (no masks).
    Anomalous images take the labels in turn, one defect each. `prefix` names the files, so a
    train and a test dataset can share a folder.
    """
    width, height = size
    root = Path(root)
    rng = np.random.default_rng(seed)
    if layout == "folders":
        dirs = {"normal": root / "normal", "anomaly": root / "anomaly", "mask": root / "masks"}
    else:
        dirs = {"normal": root / "images", "anomaly": root / "images", "mask": root / "masks"}
    for key, folder in dirs.items():
        if key != "mask" or labels:
            folder.mkdir(parents=True, exist_ok=True)
    lines: list[dict[str, object]] = []
    for i in range(n_normal + n_anomalous):
        anomalous = i >= n_normal
        image, plate = render_part(rng, width, height)
        name = f"{prefix}{'anomaly' if anomalous else 'normal'}-{i:04d}.png"
        line: dict[str, object] = {}
        if anomalous and labels:
            k = (i - n_normal) % len(labels)
            label_name, hex_color = labels[k]
            image, mask = draw_defect(rng, image, plate, defect_kind(label_name, k))
            painted = np.zeros((height, width, 3), np.uint8)
            painted[mask] = [int(hex_color[j : j + 2], 16) for j in (1, 3, 5)]
            Image.fromarray(painted).save(dirs["mask"] / name)
            line["anomaly-mask-ref"] = f"{dirs['mask'].name}/{name}"
            line["anomaly-mask-ref-metadata"] = {
                "internal-color-map": {
                    "0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.0},
                    "1": {"class-name": label_name, "hex-color": hex_color.lower(), "confidence": 0.0},
                },
                "type": "groundtruth/semantic-segmentation",
                "human-annotated": "yes",
                "creation-date": _CREATED,
                "job-name": "labeling-job/synthetic-segmentation",
            }
        elif anomalous:
            kind = DEFECT_KINDS[(i - n_normal) % len(DEFECT_KINDS)]
            image, _ = draw_defect(rng, image, plate, kind)
        folder = dirs["anomaly" if anomalous else "normal"]
        Image.fromarray(image).save(folder / name)
        lines.append(
            {
                "source-ref": f"{folder.name}/{name}",
                "anomaly-label": 1 if anomalous else 0,
                "anomaly-label-metadata": _classification_meta(anomalous),
                **line,
            }
        )
    if layout == "folders":
        if labels:
            (root / "labels.json").write_text(json.dumps(dict(labels), indent=2) + "\n", encoding="utf-8")
        return root
    manifest = root / f"{prefix}{MANIFEST_NAME}"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return manifest
