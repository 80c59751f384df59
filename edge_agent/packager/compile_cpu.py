"""CPU compilation: ONNX Runtime offline graph optimisation, optional int8 quantisation.

Offline optimisation (`SessionOptions.optimized_model_filepath`) saves the rewritten graph so the
device skips that work at load time. The level is EXTENDED, not ALL: EXTENDED fusions target the
CPU execution provider but stay portable across CPUs, while the layout level (ALL) bakes in
choices for the packaging host's instruction set (ONNX Runtime's documentation says so).

`mcpu`/`mattr` do not change the file: ONNX Runtime picks AVX2/AVX-512/NEON kernels at run time
from the CPU it finds. They are recorded in target.json and checked on the device at install
(see edge_agent.packager.device), which warns when the device lacks a feature it was packaged for.

int8 quantisation (static, QDQ, Conv/MatMul/Gemm only, calibrated on sample inputs) is kept only
when `check_agreement` passes against the float model on the same samples.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edge_agent.inference import Predictor
from edge_agent.model_package import INPUT_IMAGE

log = logging.getLogger(__name__)

CPU_LEVEL = "extended"
PORTABLE_LEVEL = "basic"  # EP-independent rewrites only: what the TensorRT path gets
LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
}
QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")


@dataclass(frozen=True)
class Tolerance:
    """How far a compiled model may drift from the float model on the samples."""

    max_score_diff: float = 0.02
    min_mask_agreement: float = 0.99  # fraction of pixels with the same label colour


@dataclass(frozen=True)
class Agreement:
    samples: int
    max_score_diff: float
    decisions_equal: bool
    min_mask_agreement: float | None

    def passes(self, tolerance: Tolerance) -> bool:
        mask_ok = self.min_mask_agreement is None or self.min_mask_agreement >= tolerance.min_mask_agreement
        return self.decisions_equal and self.max_score_diff <= tolerance.max_score_diff and mask_ok

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def optimize_graph(source: Path, destination: Path, level: str = CPU_LEVEL) -> None:
    """Run ONNX Runtime's graph optimiser on the CPU provider and save the result."""
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    options.optimized_model_filepath = str(destination)
    options.log_severity_level = 3
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    log.info("op=optimize level=%s source=%s bytes=%d", level, source.name, destination.stat().st_size)


def check_agreement(reference_dir: Path, candidate_dir: Path, samples: Sequence[np.ndarray]) -> Agreement:
    """Run both packages through the Predictor on the samples and measure the drift."""
    reference = Predictor.open(reference_dir)
    candidate = Predictor.open(candidate_dir)
    try:
        max_diff, equal, mask_agreement = 0.0, True, None
        for image in samples:
            a, b = reference.predict(image), candidate.predict(image)
            max_diff = max(max_diff, abs(a.anomaly_score - b.anomaly_score))
            equal = equal and a.is_anomalous == b.is_anomalous
            if a.mask is not None and b.mask is not None:
                same = float(np.mean(np.all(a.mask == b.mask, axis=-1)))
                mask_agreement = same if mask_agreement is None else min(mask_agreement, same)
        return Agreement(len(samples), max_diff, equal, mask_agreement)
    finally:
        reference.close()
        candidate.close()


def quantizable_ops(graph: Path) -> int:
    model = onnx.load(str(graph), load_external_data=False)
    return sum(1 for node in model.graph.node if node.op_type in QUANTIZED_OPS)


def quantize_int8(source: Path, destination: Path, samples: Sequence[np.ndarray]) -> None:
    """Static QDQ int8 quantisation of Conv/MatMul/Gemm, calibrated on `samples`."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter([{INPUT_IMAGE: image} for image in samples])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    with tempfile.TemporaryDirectory(prefix="edge-agent-quant-") as scratch:
        # The calibrator writes augmented models next to its inputs; keep them out of the package.
        staged = Path(scratch) / "float.onnx"
        shutil.copyfile(source, staged)
        quantize_static(
            str(staged),
            str(destination),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
