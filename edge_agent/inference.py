"""From a model package and a bitmap to a detection result.

This is the only place that turns graph outputs into what a client sees. The agent and the
evaluator (`edge_agent.evaluation`) both call `Predictor.predict`, so what is evaluated is
exactly what is served.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.errors import InvalidInputError, ModelFailedError, ModelPackageError
from edge_agent.model_package import (
    BACKGROUND_COLOR,
    BACKGROUND_NAME,
    OUTPUT_AREAS,
    OUTPUT_MASK,
    OUTPUT_SCORE,
    ModelPackage,
)
from edge_agent.model_package import load as load_package
from edge_agent.runtime import Runtime, RuntimeOptions, open_runtime


@dataclass(frozen=True)
class AnomalyArea:
    """One entry of DetectAnomalyResult.anomalies; `area` is a 0..1 fraction of the image."""

    name: str
    hex_color: str
    area: float


@dataclass(frozen=True)
class Detection:
    is_anomalous: bool
    confidence: float
    anomaly_score: float
    anomaly_threshold: float
    anomalies: tuple[AnomalyArea, ...] = ()
    mask: np.ndarray | None = None  # uint8 [H, W, 3] RGB, segmentation only

    def to_json(self) -> dict[str, object]:
        """The JSON shape printed by `edge-agent detect` (same keys as the gRPC result)."""
        return {
            "is_anomalous": self.is_anomalous,
            "confidence": round(self.confidence, 6),
            "anomaly_score": round(self.anomaly_score, 6),
            "anomaly_threshold": round(self.anomaly_threshold, 6),
            "anomalies": [
                {"name": a.name, "hex_color": a.hex_color, "total_percentage_area": round(a.area, 8)}
                for a in self.anomalies
            ],
        }


def confidence_of(score: float, threshold: float) -> float:
    """How sure the decision is, in [0.5, 1]: 0.5 at the threshold, 1 at the far end of the scale.

    Anomalous: 0.5 + 0.5 * (score - t) / (1 - t). Normal: 0.5 + 0.5 * (t - score) / t.
    """
    if score >= threshold:
        span = 1.0 - threshold
        value = 0.5 if span <= 0 else 0.5 + 0.5 * (score - threshold) / span
    else:
        value = 0.5 + 0.5 * (threshold - score) / threshold
    return float(min(1.0, max(0.5, value)))


class Predictor:
    """A model package bound to a runtime: validates the graph contract once, then predicts."""

    def __init__(self, package: ModelPackage, runtime: Runtime) -> None:
        self.package = package
        self.manifest = package.manifest
        self.runtime = runtime
        manifest = self.manifest
        self._threshold = float(np.float32(manifest.threshold))
        expected_shape = (manifest.height, manifest.width, 3)
        shape = tuple(getattr(runtime, "input_shape", expected_shape))
        if shape != expected_shape:
            raise ModelPackageError(
                f"graph input shape is {list(shape)} but the manifest says {list(expected_shape)}"
            )
        names = set(getattr(runtime, "output_names", ()))
        needed = {OUTPUT_SCORE} | ({OUTPUT_MASK, OUTPUT_AREAS} if manifest.is_segmentation else set())
        if names and not needed <= names:
            raise ModelPackageError(
                f"graph lacks the outputs {sorted(needed - names)} of a {manifest.model_type} model"
            )

    @classmethod
    def open(
        cls, directory: str | Path, backend: str = "cpu", options: RuntimeOptions | None = None
    ) -> Predictor:
        package = load_package(directory)
        package.verify_graph()
        runtime = open_runtime(backend, package.graph_path, options)
        try:
            return cls(package, runtime)
        except BaseException:
            runtime.close()
            raise

    def predict(self, image: np.ndarray) -> Detection:
        """Run one uint8 [H, W, 3] RGB bitmap of the model's size."""
        manifest = self.manifest
        if image.dtype != np.uint8 or image.shape != (manifest.height, manifest.width, 3):
            raise InvalidInputError(
                f"image is {image.dtype} {list(image.shape)}; this model takes uint8 "
                f"[{manifest.height}, {manifest.width}, 3] RGB"
            )
        outputs = self.runtime.run(image)
        return self.interpret(outputs)

    def interpret(self, outputs: dict[str, np.ndarray]) -> Detection:
        manifest = self.manifest
        # Compare the float32 values the client receives, so is_anomalous == (score >= threshold)
        # holds exactly on the wire. Plain float arithmetic, not numpy scalars: this runs on every
        # call, right after the graph has evicted the caches (numpy's scalar path cost 45 us more).
        value = outputs[OUTPUT_SCORE]
        if not isinstance(value, np.ndarray) or value.dtype != np.float32:
            value = np.asarray(value, dtype=np.float32)
        score = float(value.reshape(-1)[0])
        if score != score:  # NaN: no verdict can be derived from it
            raise ModelFailedError(
                f"model graph returned a NaN anomaly score; the model package is broken: retrain or "
                f"repackage it ({self.package.directory})"
            )
        score = 0.0 if score < 0.0 else 1.0 if score > 1.0 else score
        threshold = self._threshold
        anomalies: tuple[AnomalyArea, ...] = ()
        mask = None
        if manifest.is_segmentation:
            areas = np.asarray(outputs[OUTPUT_AREAS], dtype=np.float32).reshape(-1)
            entries = [AnomalyArea(BACKGROUND_NAME, BACKGROUND_COLOR, float(areas[0]))]
            for label, area in zip(manifest.labels, areas[1:]):
                if area > 0:
                    entries.append(AnomalyArea(label.name, label.hex_color, float(area)))
            anomalies = tuple(entries)
            mask = outputs[OUTPUT_MASK]
        return Detection(
            is_anomalous=score >= threshold,
            confidence=confidence_of(score, threshold),
            anomaly_score=score,
            anomaly_threshold=threshold,
            anomalies=anomalies,
            mask=mask,
        )

    def close(self) -> None:
        self.runtime.close()
