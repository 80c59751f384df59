"""Synthetic inspection datasets with exact defect masks, written as a Lookout for Vision dataset.

Each image shows one machined part: a brushed, noisy metal plate with four mounting holes on a
darker bench, with small random shifts, rotation-free jitter and lighting changes (normal
variation). Anomalous images carry one drawn defect, of the kind named by their label:

- `scratch`: a thin bright straight line;      - `crack`: a dark jagged random-walk line;
- `stain`: a soft-edged discoloured blob;      - `missing`: a chunk of the plate cut away.

Labels with other names cycle through these kinds. Two more scenes (`scene=`):

- `texture`: grayscale crops of a real texture shipped with scikit-image (brick, by default), with
  shifts, flips and lighting changes; defects are thin (1-2 px) dark `crack`s, as on EL images of
  solar cells or cast metal;
- `figure`: a small painted figurine (head, body, two arms, two legs) that moves and turns a little
  in the frame; defects are a `missing` limb or a `paint` fleck.

The mask is exactly the pixels the defect changed, painted in the label's colour on black. Output: PNG images, PNG masks and a Ground Truth
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
SCENE_KINDS = {"plate": DEFECT_KINDS, "texture": ("crack",), "figure": ("missing", "paint")}
TEXTURES = ("brick", "grass", "gravel")
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


def render_texture(
    rng: np.random.Generator, width: int, height: int, texture: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A shifted, maybe flipped crop of a grayscale texture under slightly different light."""
    th, tw = texture.shape
    crop_h, crop_w = min(th, 2 * height), min(tw, 2 * width)
    y, x = int(rng.integers(0, th - crop_h + 1)), int(rng.integers(0, tw - crop_w + 1))
    patch = texture[y : y + crop_h, x : x + crop_w]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    img = np.asarray(Image.fromarray(np.ascontiguousarray(patch)).resize((width, height), Image.BILINEAR))
    gray = img.astype(np.float32) * rng.uniform(0.9, 1.1) + rng.uniform(-8, 8)
    gray += rng.normal(0, 2.0, (height, width))
    rgb = np.repeat(np.clip(gray, 0, 255)[..., None], 3, axis=2)
    return rgb.astype(np.uint8), np.ones((height, width), bool)


_FIGURE_COLOURS = ((200, 60, 50), (60, 110, 190), (70, 160, 80))


def _figure_parts(
    rng: np.random.Generator, width: int, height: int
) -> list[tuple[str, tuple[float, ...], int]]:
    """(shape, coordinates, line width) per part; limbs last, so one can be left out."""
    s = min(width, height)
    cx, cy = width / 2 + rng.uniform(-0.04, 0.04) * s, height / 2 + rng.uniform(-0.04, 0.04) * s
    angle = rng.uniform(-0.1, 0.1)

    def at(dx: float, dy: float) -> tuple[float, float]:
        return (
            cx + (dx * np.cos(angle) - dy * np.sin(angle)) * s,
            cy + (dx * np.sin(angle) + dy * np.cos(angle)) * s,
        )

    limb = max(3, round(0.06 * s))
    hx, hy = at(0, -0.28)
    r = 0.1 * s
    parts: list[tuple[str, tuple[float, ...], int]] = [
        ("ellipse", (hx - r, hy - r, hx + r, hy + r), 0),
        ("line", (*at(0, -0.17), *at(0, 0.12)), round(0.16 * s)),
    ]
    for sx in (-1, 1):
        parts.append(("line", (*at(0.07 * sx, -0.12), *at(0.25 * sx, 0.05)), limb))  # arms
    for sx in (-1, 1):
        parts.append(("line", (*at(0.05 * sx, 0.12), *at(0.12 * sx, 0.38)), limb))  # legs
    return parts


def render_figure(
    rng: np.random.Generator, width: int, height: int, leave_out: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One figurine on a light table: (uint8 RGB image, bool figure mask). `leave_out`: a limb index."""
    table = 200 + 6 * _smooth_noise(rng, height, width, max(4, width // 5))
    colour = np.array(_FIGURE_COLOURS[0], np.float32) * (1.0 + 0.05 * rng.uniform(-1, 1))
    shape = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(shape)
    for index, (kind, coords, line_width) in enumerate(_figure_parts(rng, width, height)):
        if leave_out is not None and index == 2 + leave_out:
            continue
        if kind == "ellipse":
            draw.ellipse(coords, fill=255)
        else:
            draw.line(coords, fill=255, width=line_width)
    soft = np.asarray(shape.filter(ImageFilter.GaussianBlur(0.7)), np.float32)[..., None] / 255.0
    shading = 1.0 + 0.08 * _smooth_noise(rng, height, width, max(4, width // 8))[..., None]
    rgb = table[..., None] * (1 - soft) + colour * shading * soft
    rgb += rng.normal(0, 2.0, (height, width, 1))
    return np.clip(rgb, 0, 255).astype(np.uint8), soft[..., 0] > 0.5


def _draw_thin_crack(
    rng: np.random.Generator, image: np.ndarray, plate: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    height, width = plate.shape
    scale = min(width, height)
    shape = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(shape)
    x, y = _random_point(rng, plate)
    points = [(x, y)]
    angle = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.integers(10, 16))):
        angle += rng.uniform(-0.5, 0.5)
        step = rng.uniform(0.025, 0.045) * scale
        points.append((points[-1][0] + np.cos(angle) * step, points[-1][1] + np.sin(angle) * step))
    draw.line(points, fill=255, width=int(rng.integers(1, 3)))
    mask = (np.asarray(shape) > 0) & plate
    out = image.astype(np.float32)
    out[mask] = out[mask] * 0.3
    result = np.clip(out, 0, 255).astype(np.uint8)
    return result, mask & (result != image).any(axis=-1)


def _draw_paint_fleck(
    rng: np.random.Generator, image: np.ndarray, figure: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    height, width = figure.shape
    scale = min(width, height)
    shape = Image.new("L", (width, height), 0)
    x, y = _random_point(rng, figure)
    r = rng.uniform(0.03, 0.05) * scale
    ImageDraw.Draw(shape).ellipse((x - r, y - r, x + r, y + r), fill=255)
    mask = (np.asarray(shape) > 0) & figure
    out = image.copy()
    out[mask] = np.array([235, 225, 90], np.uint8)  # a yellow fleck on the red paint
    return out, mask & (out != image).any(axis=-1)


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


def defect_kind(label: str, index: int, kinds: Sequence[str] = DEFECT_KINDS) -> str:
    name = label.lower()
    return name if name in kinds else kinds[index % len(kinds)]


def _texture(name: str) -> np.ndarray:
    """A 512x512 grayscale texture image bundled with scikit-image (no download)."""
    if name not in TEXTURES:
        raise ValueError(f"unknown texture {name!r}: choose one of {', '.join(TEXTURES)}")
    from skimage import data

    return np.asarray(getattr(data, name)(), dtype=np.uint8)


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
    scene: Literal["plate", "texture", "figure"] = "plate",
    texture: str = "brick",
) -> Path:
    """Write a dataset under `root`; return the manifest path (or the folder for layout="folders").

    labels: (name, "#RRGGBB") per anomaly type; empty for a classification dataset (no masks).
    Anomalous images take the labels in turn, one defect each. `prefix` names the files, so a
    train and a test dataset can share a folder. scene/texture: see the module docstring
    (`texture` needs scikit-image, a development dependency, for its bundled texture images).
    """
    width, height = size
    root = Path(root)
    rng = np.random.default_rng(seed)
    texture_image = _texture(texture) if scene == "texture" else None
    kinds = SCENE_KINDS[scene]

    def render(kind: str | None) -> tuple[np.ndarray, np.ndarray | None]:
        """(image, mask of the defect's pixels, None for a normal image)."""
        if scene == "figure" and kind == "missing":
            limb = int(rng.integers(4))
            state = rng.bit_generator.state
            whole, _ = render_figure(rng, width, height)
            rng.bit_generator.state = state  # the same figure, one limb left out
            image, _ = render_figure(rng, width, height, leave_out=limb)
            return image, (whole != image).any(axis=-1)
        if scene == "texture":
            assert texture_image is not None
            image, support = render_texture(rng, width, height, texture_image)
        elif scene == "figure":
            image, support = render_figure(rng, width, height)
        else:
            image, support = render_part(rng, width, height)
        if kind is None:
            return image, None
        if scene == "texture":
            return _draw_thin_crack(rng, image, support)
        if scene == "figure":
            return _draw_paint_fleck(rng, image, support)
        return draw_defect(rng, image, support, kind)
        image, support = render_part(rng, width, height)
        if kind is None:
            return image, support, None
        out, mask = draw_defect(rng, image, support, kind)
        return out, support, mask

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
        name = f"{prefix}{'anomaly' if anomalous else 'normal'}-{i:04d}.png"
        line: dict[str, object] = {}
        if anomalous and labels:
            k = (i - n_normal) % len(labels)
            label_name, hex_color = labels[k]
            image, mask = render(defect_kind(label_name, k, kinds))
            assert mask is not None
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
        else:
            image, _ = render(kinds[(i - n_normal) % len(kinds)] if anomalous else None)
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
