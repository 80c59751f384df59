"""Small real datasets on disk: PNG/JPEG images, PNG masks and Ground Truth manifest lines.

A uniquely named module (not conftest) so tests can import it without clashing with other conftest files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CRACK = "#23A436"
DENT = "#1F77B4"


class DatasetWriter:
    """Writes images, masks and manifests under one folder, as a user's dataset would look."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def image(self, name: str, size: tuple[int, int] = (96, 64), fmt: str = "PNG", value: int = 120) -> Path:
        """A gray image of size (width, height) with a bright square, so content differs per name."""
        width, height = size
        pixels = np.full((height, width, 3), value, np.uint8)
        seed = sum(name.encode()) % 20
        pixels[seed : seed + 8, seed : seed + 8] = 250
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, format=fmt)
        return path

    def mask(
        self,
        name: str,
        paints: dict[str, tuple[int, int, int, int]],
        size: tuple[int, int] = (96, 64),
        background: tuple[int, int, int] = (0, 0, 0),
        fmt: str = "PNG",
    ) -> Path:
        """A mask painting each colour over its box (x0, y0, x1, y1)."""
        width, height = size
        pixels = np.zeros((height, width, 3), np.uint8)
        pixels[:] = background
        for color, (x0, y0, x1, y1) in paints.items():
            value = color.lstrip("#")
            pixels[y0:y1, x0:x1] = [int(value[i : i + 2], 16) for i in (0, 2, 4)]
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, format=fmt)
        return path

    @staticmethod
    def line(
        source_ref: str,
        class_name: str,
        label: Any = None,
        mask_ref: str | None = None,
        colors: dict[str, str] | None = None,
        background: bool = True,
        label_attr: str = "anomaly-label",
        mask_attr: str = "anomaly-mask-ref",
    ) -> dict[str, Any]:
        """One manifest line; `colors` maps label name -> hex colour for the mask's color map."""
        if label is None:
            label = 1 if class_name == "anomaly" else 0
        line: dict[str, Any] = {
            "source-ref": source_ref,
            label_attr: label,
            f"{label_attr}-metadata": {
                "class-name": class_name,
                "type": "groundtruth/image-classification",
                "human-annotated": "yes",
                "job-name": "labeling-job/test",
            },
        }
        if mask_ref is not None:
            color_map: dict[str, Any] = {}
            if background:
                color_map["0"] = {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.0}
            for name, color in (colors or {}).items():
                color_map[str(len(color_map))] = {"class-name": name, "hex-color": color, "confidence": 0.0}
            line[mask_attr] = mask_ref
            line[f"{mask_attr}-metadata"] = {
                "internal-color-map": color_map,
                "type": "groundtruth/semantic-segmentation",
                "human-annotated": "yes",
            }
        return line

    def manifest(self, lines: list[dict[str, Any]], name: str = "train.manifest") -> Path:
        path = self.root / name
        path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
        return path

    def segmentation(self, normal: int = 2, cracked: int = 2, name: str = "train.manifest") -> Path:
        """A small valid segmentation manifest: plain normal images and `cracked` anomalies with masks."""
        lines = []
        for i in range(normal):
            self.image(f"images/normal-{i}.png")
            lines.append(self.line(f"images/normal-{i}.png", "normal"))
        for i in range(cracked):
            self.image(f"images/crack-{i}.jpg", fmt="JPEG")
            self.mask(f"masks/crack-{i}.png", {CRACK: (10, 10, 30, 20)})
            lines.append(
                self.line(
                    f"images/crack-{i}.jpg",
                    "anomaly",
                    mask_ref=f"masks/crack-{i}.png",
                    colors={"cracked": CRACK},
                )
            )
        return self.manifest(lines, name)
