"""Native TensorRT backend: build the engine once per GPU architecture and TensorRT version, cache it.

Needs the `tensorrt` extra and cuda-python (`cuda.bindings`), so it only imports on NVIDIA devices.
Engines live at `<cache_dir>/<sm_NN>-trt<x.y.z>/<graph sha256[:16]>.engine`: a new GPU or TensorRT
release gets a new folder, and a restart finds the engine it built before.

Untested on this project's CI (no GPU there); the cache key and build decision are unit-tested.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import ModelFailedError, ModelStoppedError
from edge_agent.model_package import INPUT_IMAGE
from edge_agent.runtime.base import RuntimeOptions

log = logging.getLogger(__name__)
WORKSPACE_BYTES = 1 << 30
ENGINE_SUFFIX = ".engine"


def engine_key(gpu_code: str, trt_version: str) -> str:
    return f"{gpu_code}-trt{trt_version}"


def engine_path(cache_dir: Path, graph: Path, gpu_code: str, trt_version: str) -> Path:
    digest = hashlib.sha256(graph.read_bytes()).hexdigest()[:16]
    return cache_dir / engine_key(gpu_code, trt_version) / f"{digest}{ENGINE_SUFFIX}"


def local_gpu_code(device_id: int = 0) -> str:
    cudart = _cudart()
    err, props = cudart.cudaGetDeviceProperties(device_id)
    _check(err, "cudaGetDeviceProperties")
    return f"sm_{props.major}{props.minor}"


def build_engine(graph: Path, destination: Path, fp16: bool = True) -> Path:
    """Parse the ONNX graph and serialise a TensorRT engine to `destination` (atomically)."""
    import tensorrt as trt  # type: ignore[import-not-found]

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(graph.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFailedError(f"TensorRT cannot parse {graph}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if fp16 and builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelFailedError(f"TensorRT could not build an engine for {graph}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_bytes(bytes(serialized))
    os.replace(tmp, destination)
    log.info("op=build_engine graph=%s engine=%s", graph, destination)
    return destination


def load_or_build(graph: Path, cache_dir: Path, gpu_code: str, trt_version: str) -> Path:
    path = engine_path(cache_dir, graph, gpu_code, trt_version)
    if path.is_file():
        log.info("op=engine_cache hit=%s", path)
        return path
    return build_engine(graph, path)


class TensorRTRuntime:
    """One deserialised engine with device buffers for its bindings (TensorRT 10 tensor API)."""

    def __init__(self, graph: Path, options: RuntimeOptions) -> None:
        import tensorrt as trt  # type: ignore[import-not-found]

        self.backend = "tensorrt"
        cudart = _cudart()
        _check(cudart.cudaSetDevice(options.device_id)[0], "cudaSetDevice")
        gpu_code = local_gpu_code(options.device_id)
        # An engine built at install (model component) sits in the package's engines/ folder.
        prebuilt = engine_path(graph.parent / "engines", graph, gpu_code, trt.__version__)
        cache_dir = options.cache_dir or graph.parent / "engines"
        engine_file = (
            prebuilt if prebuilt.is_file() else load_or_build(graph, cache_dir, gpu_code, trt.__version__)
        )
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(engine_file.read_bytes())
        if self._engine is None:
            raise ModelFailedError(f"TensorRT cannot deserialise {engine_file}; delete it to rebuild")
        self._context = self._engine.create_execution_context()
        self._lock = threading.Lock()
        self._buffers: dict[str, tuple[Any, np.ndarray]] = {}
        self._stream: Any = None
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self.output_names = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.input_shape = tuple(self._engine.get_tensor_shape(INPUT_IMAGE))
        try:
            for name in names:
                shape = tuple(self._engine.get_tensor_shape(name))
                host = np.empty(shape, dtype=trt.nptype(self._engine.get_tensor_dtype(name)))
                err, pointer = cudart.cudaMalloc(host.nbytes)
                _check(err, "cudaMalloc")
                self._buffers[name] = (pointer, host)
                self._context.set_tensor_address(name, int(pointer))
            err, stream = cudart.cudaStreamCreate()
            _check(err, "cudaStreamCreate")
            self._stream = stream
        except BaseException:
            self.close()  # a failed start (e.g. GPU out of memory) must not leak device memory
            raise

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        cudart = _cudart()
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        with self._lock:
            if self._engine is None:
                raise ModelStoppedError("the model was stopped before this request ran; start it again")
            pointer, _ = self._buffers[INPUT_IMAGE]
            data = np.ascontiguousarray(image)
            _check(
                cudart.cudaMemcpyAsync(pointer, data.ctypes.data, data.nbytes, h2d, self._stream)[0],
                "copy in",
            )
            if not self._context.execute_async_v3(int(self._stream)):
                raise ModelFailedError("TensorRT execution failed")
            results = {}
            for name in self.output_names:
                pointer, host = self._buffers[name]
                _check(
                    cudart.cudaMemcpyAsync(host.ctypes.data, pointer, host.nbytes, d2h, self._stream)[0],
                    "copy out",
                )
                results[name] = host
            _check(cudart.cudaStreamSynchronize(self._stream)[0], "synchronize")
            return {name: value.copy() for name, value in results.items()}

    def close(self) -> None:
        cudart = _cudart()
        with self._lock:
            for pointer, _ in self._buffers.values():
                cudart.cudaFree(pointer)
            self._buffers.clear()
            if self._stream is not None:
                cudart.cudaStreamDestroy(self._stream)
                self._stream = None
            self._context = None
            self._engine = None


def open_runtime(graph: Path, options: RuntimeOptions) -> TensorRTRuntime:
    return TensorRTRuntime(graph, options)


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[import-not-found,no-redef]
        except ImportError:
            raise ModelFailedError(
                "the tensorrt backend needs cuda-python (pip install cuda-python) and TensorRT "
                "(pip install 'anomaly-edge-agent[tensorrt]')"
            ) from None
    return cudart


def _check(err: Any, what: str) -> None:
    if int(err) != 0:
        raise ModelFailedError(f"CUDA call {what} failed with error {int(err)}")
