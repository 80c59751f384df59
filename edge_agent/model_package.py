"""Model package format v1: the one contract between the trainer, the packager and the agent.

A package is a directory holding `manifest.json` and an ONNX graph. The graph takes the client's
packed RGB888 bitmap as `uint8[H, W, 3]` and does all pre- and post-processing itself, so the
agent feeds client memory straight to the runtime. See docs/model-format.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge_agent.errors import ModelPackageError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
DEFAULT_GRAPH_NAME = "model.onnx"
MAX_MANIFEST_BYTES = 1 << 20  # ours are a few kB

# Graph contract (names of inputs and outputs).
INPUT_IMAGE = "image"  # uint8 [H, W, 3], packed RGB888 exactly as the client sends it
OUTPUT_SCORE = "anomaly_score"  # float32 [1], already normalised to 0..1
OUTPUT_MASK = "anomaly_mask"  # uint8 [H, W, 3], RGB mask painted in label colours (segmentation)
OUTPUT_AREAS = "label_areas"  # float32 [L + 1], area fraction per label, index 0 = background

MIN_SIDE_PX = 64
MAX_SIDE_PX = 4096
BACKGROUND_NAME = "background"
BACKGROUND_COLOR = "#000000"

ModelType = Literal["classification", "segmentation"]
_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")


@dataclass(frozen=True)
class AnomalyLabel:
    """An anomaly type of a segmentation model and its mask colour (upper-case #RRGGBB)."""

    name: str
    hex_color: str

    def rgb(self) -> tuple[int, int, int]:
        return hex_to_rgb(self.hex_color)


@dataclass(frozen=True)
class Manifest:
    """Everything the agent needs besides the graph. Frozen, validated on construction."""

    model_type: ModelType
    width: int
    height: int
    threshold: float
    model_arn: str
    labels: tuple[AnomalyLabel, ...] = ()
    graph: str = DEFAULT_GRAPH_NAME
    graph_sha256: str = ""
    model_version: int = 1
    score_normalization: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.format_version != FORMAT_VERSION:
            raise ModelPackageError(
                f"manifest format_version is {self.format_version!r}; this agent reads version "
                f"{FORMAT_VERSION}: repackage the model with a matching edge-agent"
            )
        if self.model_type not in ("classification", "segmentation"):
            raise ModelPackageError(
                f"manifest model_type is {self.model_type!r}; expected 'classification' or 'segmentation'"
            )
        for side, value in (("width", self.width), ("height", self.height)):
            if not isinstance(value, int) or not MIN_SIDE_PX <= value <= MAX_SIDE_PX:
                raise ModelPackageError(
                    f"manifest input {side} is {value!r}; expected an integer in {MIN_SIDE_PX}..{MAX_SIDE_PX}"
                )
        if not isinstance(self.threshold, (int, float)) or not 0.0 <= float(self.threshold) <= 1.0:
            raise ModelPackageError(f"manifest threshold is {self.threshold!r}; expected a number in 0..1")
        if self.model_type == "segmentation" and not self.labels:
            raise ModelPackageError("a segmentation manifest needs at least one anomaly label")
        if self.model_type == "classification" and self.labels:
            raise ModelPackageError("a classification manifest must not list anomaly labels")
        names = [label.name for label in self.labels]
        if len(set(names)) != len(names):
            raise ModelPackageError(f"manifest anomaly labels repeat a name: {names}")
        for label in self.labels:
            if not label.name or label.name.lower() == BACKGROUND_NAME:
                raise ModelPackageError(f"anomaly label name {label.name!r} is empty or reserved")
            if not _HEX.match(label.hex_color) or label.hex_color != label.hex_color.upper():
                raise ModelPackageError(
                    f"label {label.name!r} colour {label.hex_color!r} is not upper-case #RRGGBB"
                )
        if not self.graph or "/" in self.graph or self.graph.startswith("."):
            raise ModelPackageError(f"manifest graph {self.graph!r} must be a file name inside the package")

    @property
    def is_segmentation(self) -> bool:
        return self.model_type == "segmentation"

    @property
    def input_bytes(self) -> int:
        return self.width * self.height * 3

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["labels"] = [asdict(label) for label in self.labels]
        data["input"] = {"width": data.pop("width"), "height": data.pop("height"), "format": "RGB888"}
        return data

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """Build a manifest from parsed JSON, naming the field that is wrong."""
        if not isinstance(data, dict):
            raise ModelPackageError("manifest must be a JSON object")
        try:
            inp = data["input"]
            labels = tuple(
                AnomalyLabel(name=str(item["name"]), hex_color=str(item["hex_color"]))
                for item in data.get("labels", [])
            )
            return cls(
                format_version=data["format_version"],
                model_type=data["model_type"],
                width=inp["width"],
                height=inp["height"],
                threshold=data["threshold"],
                model_arn=str(data.get("model_arn", "")),
                labels=labels,
                graph=str(data.get("graph", DEFAULT_GRAPH_NAME)),
                graph_sha256=str(data.get("graph_sha256", "")),
                model_version=int(data.get("model_version", 1)),
                score_normalization=dict(data.get("score_normalization", {})),
                provenance=dict(data.get("provenance", {})),
            )
        except KeyError as exc:
            raise ModelPackageError(f"manifest is missing the field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ModelPackageError(f"manifest has a field of the wrong type: {exc}") from None


@dataclass(frozen=True)
class ModelPackage:
    """A package on disk: its directory and parsed manifest."""

    directory: Path
    manifest: Manifest

    @property
    def graph_path(self) -> Path:
        return self.directory / self.manifest.graph

    def verify_graph(self) -> None:
        """Check the graph file exists and matches the manifest's hash (detects corrupt copies)."""
        path = self.graph_path
        if not path.is_file():
            raise ModelPackageError(f"model graph {path} is missing")
        if self.manifest.graph_sha256 and sha256_file(path) != self.manifest.graph_sha256:
            raise ModelPackageError(
                f"model graph {path} is corrupt: its SHA-256 does not match the manifest; "
                "copy the model package again"
            )


def load(directory: str | os.PathLike[str]) -> ModelPackage:
    """Read and validate a package directory's manifest (the graph is checked by verify_graph)."""
    path = Path(directory)
    manifest_path = path / MANIFEST_NAME
    raw = _read_manifest(manifest_path, path)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelPackageError(f"{manifest_path} is not UTF-8 text") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ModelPackageError(f"{manifest_path} is not valid JSON: {exc}") from None
    return ModelPackage(directory=path, manifest=Manifest.from_json(data))


def _read_manifest(manifest_path: Path, package: Path) -> bytes:
    """The manifest's bytes, refusing what is not a small regular file: the agent reads manifests
    found in its models folder, and a FIFO there must not block it, nor /dev/zero fill its memory."""
    try:
        fd = os.open(manifest_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ModelPackageError(f"{manifest_path} not found: is {package} a model package?") from None
    except OSError as exc:
        raise ModelPackageError(f"cannot read {manifest_path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ModelPackageError(f"{manifest_path} is not a regular file")
        if info.st_size > MAX_MANIFEST_BYTES:
            raise ModelPackageError(
                f"{manifest_path} is {info.st_size} bytes; a manifest is at most {MAX_MANIFEST_BYTES}"
            )
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(MAX_MANIFEST_BYTES + 1)[:MAX_MANIFEST_BYTES]
    except OSError as exc:
        raise ModelPackageError(f"cannot read {manifest_path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def save(directory: str | os.PathLike[str], manifest: Manifest) -> ModelPackage:
    """Write the manifest atomically; fills graph_sha256 from the graph file if it is present."""
    path = Path(directory)
    graph = path / manifest.graph
    if graph.is_file() and not manifest.graph_sha256:
        manifest = Manifest(**{**manifest.__dict__, "graph_sha256": sha256_file(graph)})
    text = json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path, prefix=".manifest-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path / MANIFEST_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ModelPackage(directory=path, manifest=manifest)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hex_to_rgb(hex_color: str) -> tuple[int, int, int]:
    value = hex_color.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def normalize_hex(hex_color: str) -> str:
    """Upper-case #RRGGBB, the form used on the wire and in manifests."""
    if not _HEX.match(hex_color):
        raise ValueError(f"{hex_color!r} is not a #RRGGBB colour")
    return hex_color.upper()
