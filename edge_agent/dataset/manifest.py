"""Parse SageMaker Ground Truth JSON Lines manifests as Lookout for Vision reads them.

Attribute names are free, so keys are found the way the guide says: the classification label is
the object ending in `-metadata` whose `type` is `groundtruth/image-classification`; the mask is
the key ending in `-ref` whose `-ref-metadata` object has `type` `groundtruth/semantic-segmentation`.
This module only reads JSON; files are opened by `loader.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.dataset.errors import DatasetError
from edge_agent.dataset.types import Sample
from edge_agent.model_package import AnomalyLabel

CLASSIFICATION_TYPE = "groundtruth/image-classification"
SEGMENTATION_TYPE = "groundtruth/semantic-segmentation"
BACKGROUND_CLASS = "BACKGROUND"
NORMAL, ANOMALY = "normal", "anomaly"
_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")


@dataclass(frozen=True)
class ColorEntry:
    """One `internal-color-map` entry; colours are upper-case #RRGGBB."""

    name: str
    hex_color: str

    @property
    def is_background(self) -> bool:
        return self.name.upper() == BACKGROUND_CLASS


@dataclass(frozen=True)
class ManifestEntry:
    """One manifest line, before any file is opened."""

    line: int
    source_ref: str
    class_name: str  # as written
    mask_ref: str | None = None
    color_map: tuple[ColorEntry, ...] = ()

    @property
    def is_labelled(self) -> bool:
        return self.class_name.lower() in (NORMAL, ANOMALY)

    @property
    def is_anomalous(self) -> bool:
        return self.class_name.lower() == ANOMALY

    @property
    def anomaly_colors(self) -> tuple[ColorEntry, ...]:
        return tuple(entry for entry in self.color_map if not entry.is_background)


def read_manifest(path: Path) -> list[ManifestEntry]:
    """Every line of a manifest file; errors name the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"manifest {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"manifest {path} is not UTF-8 ({exc}): save it as UTF-8 JSON Lines") from None
    entries = list(parse_lines(text.splitlines(), str(path)))
    if not entries:
        raise DatasetError(f"manifest {path} has no JSON lines: it must hold one JSON object per image")
    return entries


def parse_lines(lines: list[str], where: str) -> Iterator[ManifestEntry]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{where} line {number} is not valid JSON ({exc.msg} at column {exc.colno}): "
                "each line must be one complete JSON object"
            ) from None
        if not isinstance(data, dict):
            raise DatasetError(f"{where} line {number} is not a JSON object")
        yield parse_entry(data, f"{where} line {number}", number)


def parse_entry(data: dict[str, Any], where: str, line: int = 0) -> ManifestEntry:
    """One manifest object to a ManifestEntry; `where` prefixes every error message."""
    source_ref = data.get("source-ref")
    if not isinstance(source_ref, str) or not source_ref:
        raise DatasetError(
            f"{where}: `source-ref` is missing or not a string: add the image's s3:// or file path"
        )
    class_name = _classification(data, where)
    mask_ref, color_map = _segmentation(data, where)
    return ManifestEntry(
        line=line, source_ref=source_ref, class_name=class_name, mask_ref=mask_ref, color_map=color_map
    )


def _type_of(value: Any) -> str:
    return str(value.get("type", "")) if isinstance(value, dict) else ""


def _prefer_ground_truth(keys: list[str]) -> list[str]:
    """Drop the model's predictions (`*-detected-metadata`, as in EvaluationManifest) when labels exist."""
    labels = [key for key in keys if not key.endswith("-detected-metadata")]
    return labels or keys


def _classification(data: dict[str, Any], where: str) -> str:
    found = [
        key
        for key, value in data.items()
        if key.endswith("-metadata") and _type_of(value).endswith(CLASSIFICATION_TYPE.split("/")[1])
    ]
    found = _prefer_ground_truth(found)
    if not found:
        raise DatasetError(
            f"{where}: no classification label: add e.g. `anomaly-label` with `anomaly-label-metadata` "
            f'holding "class-name" and "type": "{CLASSIFICATION_TYPE}"'
        )
    if len(found) > 1:
        raise DatasetError(f"{where}: several classification label attributes {sorted(found)}: keep one")
    key = found[0]
    attribute = key[: -len("-metadata")]
    if attribute not in data:
        # The guide requires the value (0/1, int or string) but ignores it: class-name decides.
        raise DatasetError(
            f"{where}: `{key}` has no label attribute `{attribute}` beside it: "
            f'add "{attribute}": 1 (anomaly) or 0 (normal)'
        )
    class_name = data[key].get("class-name")
    if not isinstance(class_name, str):
        raise DatasetError(f'{where}: `{key}` has no "class-name": set it to "normal" or "anomaly"')
    return class_name


def _segmentation(data: dict[str, Any], where: str) -> tuple[str | None, tuple[ColorEntry, ...]]:
    found = [
        key
        for key, value in data.items()
        if key.endswith("-ref-metadata") and _type_of(value).endswith(SEGMENTATION_TYPE.split("/")[1])
    ]
    found = _prefer_ground_truth(found)
    if not found:
        return None, ()
    if len(found) > 1:
        raise DatasetError(f"{where}: several segmentation mask attributes {sorted(found)}: keep one")
    key = found[0]
    ref_key = key[: -len("-metadata")]
    mask_ref = data.get(ref_key)
    if not isinstance(mask_ref, str) or not mask_ref:
        raise DatasetError(
            f"{where}: `{key}` has no mask reference `{ref_key}` beside it: add the mask's path"
        )
    raw_map = data[key].get("internal-color-map")
    if not isinstance(raw_map, dict) or not raw_map:
        raise DatasetError(f'{where}: `{key}` has no "internal-color-map" object: list the mask\'s labels')
    entries: list[ColorEntry] = []
    for index in sorted(raw_map, key=lambda k: (not str(k).isdigit(), int(k) if str(k).isdigit() else 0, k)):
        item = raw_map[index]
        name = item.get("class-name") if isinstance(item, dict) else None
        color = item.get("hex-color") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise DatasetError(f'{where}: internal-color-map entry "{index}" has no "class-name"')
        if not isinstance(color, str) or not _HEX.fullmatch(color):
            raise DatasetError(
                f'{where}: internal-color-map entry "{index}" ({name}) has hex-color {color!r}: '
                "use #RRGGBB, e.g. #23A436"
            )
        entries.append(ColorEntry(name=name, hex_color=color.upper()))
    return mask_ref, tuple(entries)


def export_lines(samples: Iterable[Sample], labels: Iterable[AnomalyLabel]) -> Iterator[dict[str, Any]]:
    """Normalised manifest lines for samples (local absolute paths, `anomaly-label` 1/0).

    Masks get a segmentation block whose color map lists BACKGROUND and the sample's labels.
    """
    colors = {label.name: label.hex_color for label in labels}
    for sample in samples:
        line: dict[str, Any] = {
            "source-ref": str(sample.image.resolve()),
            "anomaly-label": int(sample.is_anomalous),
            "anomaly-label-metadata": {
                "class-name": ANOMALY if sample.is_anomalous else NORMAL,
                "type": CLASSIFICATION_TYPE,
                "human-annotated": "yes",
                "job-name": "edge-agent/dataset-export",
            },
        }
        if sample.mask is not None:
            color_map = {"0": {"class-name": BACKGROUND_CLASS, "hex-color": "#ffffff", "confidence": 0.0}}
            for index, name in enumerate(sample.labels, start=1):
                color_map[str(index)] = {
                    "class-name": name,
                    "hex-color": colors[name].lower(),
                    "confidence": 0.0,
                }
            line["anomaly-mask-ref"] = str(sample.mask.resolve())
            line["anomaly-mask-ref-metadata"] = {
                "internal-color-map": color_map,
                "type": SEGMENTATION_TYPE,
                "human-annotated": "yes",
                "job-name": "edge-agent/dataset-export",
            }
        yield line


def write_manifest(path: Path, samples: Iterable[Sample], labels: Iterable[AnomalyLabel]) -> Path:
    """Write samples as a normalised Ground Truth manifest that `load_dataset` reads back as is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for line in export_lines(samples, labels):
            handle.write(json.dumps(line) + "\n")
    return path
