"""ONNX Runtime on NVIDIA GPUs (x86 and Jetson): TensorRT execution provider, then CUDA.

Needs onnxruntime-gpu *instead of* onnxruntime (x86: the `gpu` extra after removing onnxruntime;
Jetson: NVIDIA's Jetson build, PyPI has none for aarch64). With both installed they share the
`onnxruntime` module and the CPU build hides the CUDA provider, so that is refused at start with
the commands that fix it (docs/gpu.md).

Backends: `gpu` uses the TensorRT EP when this onnxruntime offers it and TensorRT's library
loads, else CUDA; `gpu-cuda` uses CUDA only. The provider and the reason are logged. TensorRT EP
engines go to `<cache_dir>/ort-trt<version>/` with a timing cache beside them: ONNX Runtime names
its cached engines by graph hash, precision and sm only, so the TensorRT version is in the folder,
and an upgraded TensorRT starts an empty folder rather than loading engines it cannot read.
The TensorRT EP runs FP32 (its FP16 has no decision check; the native tensorrt backend has one).
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import Any

from edge_agent.errors import ModelFailedError
from edge_agent.runtime.base import RuntimeOptions

log = logging.getLogger(__name__)
_NVINFER = ("libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so")
FIX_BOTH = (
    "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'onnxruntime-gpu>=1.19' "
    "(on Jetson: NVIDIA's onnxruntime-gpu wheel for JetPack; see docs/gpu.md)"
)


def installed_runtimes() -> list[str]:
    """Which ONNX Runtime distributions are installed (they all provide the one `onnxruntime` module)."""
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        return []
    found = []
    for name in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino"):
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def check_install(distributions: list[str], available: list[str]) -> None:
    """Refuse an install the GPU backend cannot use, naming the fix."""
    if "onnxruntime-gpu" in distributions and len(distributions) > 1:
        others = [d for d in distributions if d != "onnxruntime-gpu"]
        raise ModelFailedError(
            f"both onnxruntime-gpu and {', '.join(others)} are installed; they share the onnxruntime module "
            f"and the CUDA provider disappears. Keep only onnxruntime-gpu: {FIX_BOTH}"
        )
    if "CUDAExecutionProvider" not in available:
        raise ModelFailedError(
            "the GPU backend needs onnxruntime-gpu with CUDA; this onnxruntime "
            f"({', '.join(distributions) or 'unknown package'}) offers {available}. Fix: {FIX_BOTH}"
        )


def tensorrt_version() -> str | None:
    """The TensorRT library's version, as the TensorRT EP will load it (None when absent)."""
    try:
        import tensorrt  # type: ignore[import-not-found]

        return str(tensorrt.__version__)
    except ImportError:
        pass
    for name in _NVINFER:
        try:
            library = ctypes.CDLL(name)
            number = int(library.getInferLibVersion())
        except (OSError, AttributeError):
            continue
        return decode_version(number)
    return None


def decode_version(number: int) -> str:
    """NV_TENSORRT_VERSION: major*1000+minor*100+patch before 10, major*10000+minor*100+patch from 10."""
    if number >= 100000:
        return f"{number // 10000}.{number // 100 % 100}.{number % 100}"
    return f"{number // 1000}.{number // 100 % 10}.{number % 100}"


def gpu_providers(
    options: RuntimeOptions,
    available: list[str],
    trt_version: str | None = None,
    use_tensorrt: bool = True,
) -> tuple[list[Any], str]:
    """Provider list for this machine and why: TensorRT EP if usable, CUDA, CPU for nodes neither takes."""
    if "CUDAExecutionProvider" not in available:
        check_install([], available)
    providers: list[Any] = []
    if not use_tensorrt:
        reason = "CUDAExecutionProvider: the gpu-cuda backend was chosen"
    elif "TensorrtExecutionProvider" not in available:
        reason = "CUDAExecutionProvider: this onnxruntime-gpu has no TensorRT execution provider"
    elif trt_version is None:
        reason = "CUDAExecutionProvider: the TensorRT EP is offered but TensorRT's library (libnvinfer) is not found"
    else:
        trt: dict = {"device_id": options.device_id, "trt_fp16_enable": False}
        if options.cache_dir is not None:
            folder = Path(options.cache_dir) / f"ort-trt{trt_version}"
            folder.mkdir(parents=True, exist_ok=True)
            trt.update(
                trt_engine_cache_enable=True,
                trt_engine_cache_path=str(folder),
                trt_timing_cache_enable=True,
                trt_timing_cache_path=str(folder),
            )
        providers.append(("TensorrtExecutionProvider", trt))
        reason = f"TensorrtExecutionProvider: offered, TensorRT {trt_version} found"
    providers.append(("CUDAExecutionProvider", {"device_id": options.device_id}))
    providers.append("CPUExecutionProvider")
    return providers, reason


def open_runtime(graph: Path, options: RuntimeOptions, use_tensorrt: bool = True) -> Any:
    from edge_agent.runtime import ort_session  # imports ONNX Runtime with its telemetry off

    ort, OrtRuntime = ort_session.ort, ort_session.OrtRuntime

    available = list(ort.get_available_providers())
    check_install(installed_runtimes(), available)
    trt_version = tensorrt_version() if use_tensorrt and "TensorrtExecutionProvider" in available else None
    providers, reason = gpu_providers(options, available, trt_version, use_tensorrt)
    runtime = OrtRuntime(graph, options, providers, backend="gpu" if use_tensorrt else "gpu-cuda")
    session = getattr(runtime, "_session", None)
    active = session.get_providers() if session is not None else []
    log.info("op=ort_gpu graph=%s provider=%r active=%s", graph, reason, active)
    runtime.provider_reason = reason  # type: ignore[attr-defined]
    return runtime
