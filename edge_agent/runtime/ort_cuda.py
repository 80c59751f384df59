"""ONNX Runtime on the CUDA execution provider only (no TensorRT EP): see ort_gpu.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.runtime.base import RuntimeOptions
from edge_agent.runtime.ort_gpu import open_runtime as open_gpu


def open_runtime(graph: Path, options: RuntimeOptions) -> Any:
    return open_gpu(graph, options, use_tensorrt=False)
