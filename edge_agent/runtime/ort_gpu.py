"""ONNX Runtime on NVIDIA GPUs (x86 and Jetson): TensorRT execution provider, then CUDA.

Needs the `gpu` extra (onnxruntime-gpu). TensorRT engines are cached in `options.cache_dir`,
keyed by ONNX Runtime per GPU architecture and TensorRT version, so a restart does not rebuild.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnxruntime as ort

from edge_agent.errors import ModelFailedError
from edge_agent.runtime.base import RuntimeOptions
from edge_agent.runtime.ort_session import OrtRuntime


def gpu_providers(options: RuntimeOptions, available: list[str]) -> list[Any]:
    """Provider list for this machine: TensorRT if present, CUDA, and CPU as the last resort."""
    if "CUDAExecutionProvider" not in available:
        raise ModelFailedError(
            "the GPU backend needs onnxruntime-gpu with CUDA (pip install 'anomaly-edge-agent[gpu]'); "
            f"this onnxruntime offers {available}"
        )
    providers: list[Any] = []
    if "TensorrtExecutionProvider" in available:
        trt: dict[str, Any] = {"device_id": options.device_id, "trt_fp16_enable": True}
        if options.cache_dir is not None:
            options.cache_dir.mkdir(parents=True, exist_ok=True)
            trt.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(options.cache_dir))
        providers.append(("TensorrtExecutionProvider", trt))
    providers.append(("CUDAExecutionProvider", {"device_id": options.device_id}))
    providers.append("CPUExecutionProvider")
    return providers


def open_runtime(graph: Path, options: RuntimeOptions) -> OrtRuntime:
    providers = gpu_providers(options, ort.get_available_providers())
    return OrtRuntime(graph, options, providers, backend="gpu")
