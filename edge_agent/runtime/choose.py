"""Backend name -> module. Only the chosen module is imported, so GPU packages stay optional."""

from __future__ import annotations

import importlib
from pathlib import Path

from edge_agent.errors import InvalidInputError
from edge_agent.runtime.base import Runtime, RuntimeOptions

BACKENDS: dict[str, str] = {
    "cpu": "edge_agent.runtime.ort_cpu",
    "gpu": "edge_agent.runtime.ort_gpu",  # ONNX Runtime: TensorRT EP when usable, else CUDA
    "gpu-cuda": "edge_agent.runtime.ort_cuda",  # ONNX Runtime: CUDA EP only
    "tensorrt": "edge_agent.runtime.tensorrt",  # native TensorRT 8.5 / 10.x engines
}


def open_runtime(backend: str, graph: Path, options: RuntimeOptions | None = None) -> Runtime:
    """Open `graph` with the named backend (see BACKENDS)."""
    try:
        module_name = BACKENDS[backend]
    except KeyError:
        raise InvalidInputError(
            f"unknown runtime backend {backend!r}; choose one of {sorted(BACKENDS)}"
        ) from None
    module = importlib.import_module(module_name)
    return module.open_runtime(graph, options or RuntimeOptions())
