"""Native TensorRT backend for TensorRT 8.5 (Jetson, JetPack 5.1) and 10.x (x86, CUDA 12).

Needs TensorRT's Python bindings (JetPack's on Jetson, the `tensorrt` extra on x86) and
cuda-python of the host's CUDA major (11.8.x on JetPack 5.1, 12.x on CUDA 12; docs/gpu.md).

- API: only calls that exist in both 8.5 and 10.x (tensor-name I/O, `set_input_shape`,
  `execute_async_v3`, `build_serialized_network`, memory pools, timing caches); the one branch is
  the network flag (8.5 needs EXPLICIT_BATCH, 10.x deprecates it). TensorRT 11 removed
  `BuilderFlag.FP16`: versions outside [8.5, 11) are refused with the fix.
- Shapes: the manifest fixes the input (and so every output): the input shape is set on the
  context and output buffers are sized from the manifest, not from the engine, whose symbolic
  dimensions read -1.
- Precision: FP16 is kept only when it decides like the ONNX Runtime CPU session on the package's
  sample images (runtime/precision.py); otherwise FP32 (TF32 off), with the reason logged. The
  decision is saved next to the engine, so a restart neither rebuilds nor rechecks.
- Cache: `<cache_dir>/<sm_NN>-trt<x.y.z>/<graph sha256[:16]>-<fp16|fp32>.engine`, the decision in
  `<digest>.precision.json`, and one timing cache per GPU architecture and TensorRT version
  (`timing.cache`, shared by the graphs: it holds kernel timings, not graphs).
- Threads: CUDA's current device is per thread, so `run` selects the device in every thread
  that runs the engine, not only in the one that opened it.

Tested on CPU-only CI with stand-in `tensorrt` and CUDA runtime modules that expose only the
pinned API and execute the graph with ONNX Runtime (tests/unit/runtime/test_tensorrt_standin.py);
on a GPU by scripts/gpu-check.sh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import ModelFailedError, ModelPackageError, ModelStoppedError
from edge_agent.model_package import INPUT_IMAGE, OUTPUT_AREAS, OUTPUT_MASK, OUTPUT_SCORE, Manifest, load
from edge_agent.runtime.base import RuntimeOptions
from edge_agent.runtime.precision import Tolerance, compare
from edge_agent.runtime.samples import package_samples

log = logging.getLogger(__name__)
WORKSPACE_BYTES = 1 << 30
ENGINE_SUFFIX = ".engine"
TIMING_CACHE = "timing.cache"
MIN_VERSION = (8, 5)
MAX_VERSION = (11, 0)  # exclusive: TensorRT 11 removed BuilderFlag.FP16 and platform_has_fast_fp16
PRECISIONS = ("fp16", "fp32")
FP16_TOLERANCE = Tolerance()
# Diagnostics and benchmarks only (bench/gpu.py): "fp16" or "fp32" skips the check and serves that
# precision; unset or "auto" is the checked choice.
PRECISION_ENV = "EDGE_AGENT_TRT_PRECISION"
# Compute capabilities with fast FP16 arithmetic (Pascal consumer parts, sm_61, lack it).
_FAST_FP16 = {(5, 3), (6, 0), (6, 2)}


def version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_version(version: str) -> None:
    """Refuse TensorRT releases whose API this backend was not written for, naming the fix."""
    found = version_tuple(version)[:2]
    if not MIN_VERSION <= found < MAX_VERSION:
        raise ModelFailedError(
            f"TensorRT {version} is not supported by the tensorrt backend, which needs 8.5 <= TensorRT < 11 "
            "(TensorRT 11 removed BuilderFlag.FP16): on x86 pip install 'tensorrt>=10.0,<11' "
            "(pip install 'anomaly-edge-agent[tensorrt]'); on Jetson use JetPack 5.1's TensorRT 8.5"
        )


def has_fast_fp16(major: int, minor: int) -> bool:
    return major >= 7 or (major, minor) in _FAST_FP16


def graph_digest(graph: Path) -> str:
    return hashlib.sha256(graph.read_bytes()).hexdigest()[:16]


def engine_key(gpu_code: str, trt_version: str) -> str:
    return f"{gpu_code}-trt{trt_version}"


def engine_path(
    cache_dir: Path, graph: Path, gpu_code: str, trt_version: str, precision: str = "fp16"
) -> Path:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    return cache_dir / engine_key(gpu_code, trt_version) / f"{graph_digest(graph)}-{precision}{ENGINE_SUFFIX}"


def timing_cache_path(cache_dir: Path, gpu_code: str, trt_version: str) -> Path:
    return cache_dir / engine_key(gpu_code, trt_version) / TIMING_CACHE


def decision_path(cache_dir: Path, graph: Path, gpu_code: str, trt_version: str) -> Path:
    return cache_dir / engine_key(gpu_code, trt_version) / f"{graph_digest(graph)}.precision.json"


def _tensorrt() -> Any:
    try:
        import tensorrt as trt  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ModelFailedError(
            f"the tensorrt backend needs TensorRT's Python bindings ({exc}): on Jetson they come with "
            "JetPack 5.1 (python3-libnvinfer, system Python 3.8: create the venv with "
            "--system-site-packages); on x86 pip install 'anomaly-edge-agent[tensorrt]'. See docs/gpu.md"
        ) from None
    check_version(trt.__version__)
    return trt


# CUDA runtime ------------------------------------------------------------------------------------
def _cudart() -> Any:
    """cuda-python's runtime module: `cuda.bindings.runtime` (12.6+, 13) or `cuda.cudart` (11.8, 12.x)."""
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[import-not-found,no-redef]
        except ImportError:
            raise ModelFailedError(
                "the tensorrt backend needs cuda-python of this host's CUDA major version: 11.8.x on "
                "JetPack 5.1 (CUDA 11.4), 12.x on CUDA 12 (pip install 'anomaly-edge-agent[tensorrt]'); "
                "see docs/gpu.md"
            ) from None
    return cudart


class Cuda:
    """The few CUDA runtime calls the backend makes, with errors turned into ModelFailedError."""

    def __init__(self, device_id: int) -> None:
        self.rt = _cudart()
        self.device_id = device_id
        self._bound = threading.local()

    def call(self, what: str, result: Any) -> Any:
        values = result if isinstance(result, tuple) else (result,)
        err = values[0]
        if err != self.rt.cudaError_t.cudaSuccess:
            name = str(err)
            try:
                name_result = self.rt.cudaGetErrorName(err)
                name = name_result[1].decode() if isinstance(name_result[1], bytes) else str(name_result[1])
            except Exception:  # the name is for the message only
                pass
            raise ModelFailedError(f"CUDA call {what} failed on GPU {self.device_id}: {name}")
        rest = values[1:]
        return rest[0] if len(rest) == 1 else rest

    def use_device(self) -> None:
        """cudaSetDevice in the calling thread, once per thread (the current device is per thread)."""
        if getattr(self._bound, "device", None) != self.device_id:
            self.call("cudaSetDevice", self.rt.cudaSetDevice(self.device_id))
            self._bound.device = self.device_id

    def compute_capability(self) -> tuple[int, int]:
        props = self.call("cudaGetDeviceProperties", self.rt.cudaGetDeviceProperties(self.device_id))
        return int(props.major), int(props.minor)


def stream_handle(stream: Any) -> int:
    """The cudaStream_t value TensorRT takes: the `__cuda_stream__` protocol where cuda-python has it
    (int() of binding objects is deprecated there), int() on the older releases that lack it."""
    protocol = getattr(stream, "__cuda_stream__", None)
    if protocol is not None:
        return int(protocol()[1])
    return int(stream)


def local_gpu_code(device_id: int = 0) -> str:
    cuda = Cuda(device_id)
    major, minor = cuda.compute_capability()
    return f"sm_{major}{minor}"


# Building ----------------------------------------------------------------------------------------
def _network_flags(trt: Any) -> int:
    """8.5 builds implicit-batch networks unless told; 10.x is explicit-batch only (flag deprecated)."""
    if version_tuple(trt.__version__)[0] < 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


def build_engine(
    graph: Path,
    destination: Path,
    fp16: bool = True,
    timing_cache: Path | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> Path:
    """Parse the ONNX graph and serialise a TensorRT engine to `destination` (atomically).

    `input_shape` (the manifest's [H, W, 3]) sets one optimisation profile when the graph's input
    has run-time dimensions; our graphs are static and need none. The timing cache is read before
    and written after the build, so a rebuild (other precision, new model version) is faster."""
    trt = _tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(graph.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFailedError(f"TensorRT cannot parse {graph}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    else:
        config.clear_flag(trt.BuilderFlag.TF32)  # FP32 is the reference: no reduced-mantissa matmuls
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        dims = tuple(tensor.shape)
        if any(d < 0 for d in dims):
            if input_shape is None or len(input_shape) != len(dims):
                raise ModelFailedError(
                    f"graph input {tensor.name} has run-time dimensions {dims} and no shape to build for"
                )
            profile = builder.create_optimization_profile()
            profile.set_shape(tensor.name, input_shape, input_shape, input_shape)
            config.add_optimization_profile(profile)
    cache = None
    if timing_cache is not None:
        cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
        config.set_timing_cache(cache, False)
    started = time.monotonic()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelFailedError(f"TensorRT could not build an engine for {graph} (see the agent's log)")
    try:
        _write_atomic(destination, bytes(serialized))
    except OSError as exc:
        raise ModelFailedError(
            f"cannot write the TensorRT engine to {destination}: {exc.strerror}; start the agent with a "
            "writable --engine-cache folder"
        ) from None
    if cache is not None and timing_cache is not None:
        try:
            _write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
        except OSError as exc:  # the engine is built: a lost timing cache only slows the next build
            log.warning("op=timing_cache path=%s error=%s", timing_cache, exc.strerror)
    log.info(
        "op=build_engine graph=%s engine=%s precision=%s seconds=%.1f",
        graph,
        destination,
        "fp16" if fp16 else "fp32",
        time.monotonic() - started,
    )
    return destination


def load_or_build(graph: Path, cache_dir: Path, gpu_code: str, trt_version: str, fp16: bool = True) -> Path:
    """The cached engine for this GPU, TensorRT and graph, built first if missing (install-time use)."""
    path = engine_path(cache_dir, graph, gpu_code, trt_version, "fp16" if fp16 else "fp32")
    if path.is_file():
        log.info("op=engine_cache hit=%s", path)
        return path
    return build_engine(graph, path, fp16, timing_cache_path(cache_dir, gpu_code, trt_version))


def _write_atomic(destination: Path, data: bytes) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(f".{destination.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    tmp.write_bytes(data)
    os.replace(tmp, destination)


# Running -----------------------------------------------------------------------------------------
def output_shapes(manifest: Manifest) -> dict[str, tuple[int, ...]]:
    """What the package contract fixes for each output (docs/model-format.md)."""
    shapes = {OUTPUT_SCORE: (1,)}
    if manifest.is_segmentation:
        shapes[OUTPUT_MASK] = (manifest.height, manifest.width, 3)
        shapes[OUTPUT_AREAS] = (len(manifest.labels) + 1,)
    return shapes


class Engine:
    """One deserialised engine, its execution context, device buffers and stream."""

    def __init__(self, trt: Any, cuda: Cuda, engine_file: Path, manifest: Manifest) -> None:
        self._cuda = cuda
        self._lock = threading.Lock()
        self._buffers: dict[str, tuple[int, np.ndarray]] = {}
        self._stream: Any = None
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(engine_file.read_bytes())
        if self._engine is None:
            raise ModelFailedError(f"TensorRT cannot deserialise {engine_file}; delete it to rebuild")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if inputs != [INPUT_IMAGE]:
            raise ModelPackageError(f"engine {engine_file} takes {inputs}, expected [{INPUT_IMAGE!r}]")
        self.input_shape = (manifest.height, manifest.width, 3)
        shapes = output_shapes(manifest)
        missing = sorted(set(shapes) - set(self.output_names))
        if missing:
            raise ModelPackageError(f"engine {engine_file} lacks the outputs {missing}")
        try:
            if not self._context.set_input_shape(INPUT_IMAGE, self.input_shape):
                raise ModelFailedError(
                    f"TensorRT refused the input shape {self.input_shape} for {engine_file}"
                )
            shapes[INPUT_IMAGE] = self.input_shape
            for name in [INPUT_IMAGE, *self.output_names]:
                shape = shapes.get(name)
                resolved = tuple(self._context.get_tensor_shape(name))
                if shape is None:  # an output the contract does not name: only a static one is usable
                    if any(d < 0 for d in resolved):
                        raise ModelPackageError(f"engine output {name} has run-time dimensions {resolved}")
                    shape = resolved
                elif all(d >= 0 for d in resolved) and int(np.prod(resolved)) != int(np.prod(shape)):
                    raise ModelPackageError(
                        f"engine tensor {name} has shape {resolved}; the manifest implies {shape}"
                    )
                host = np.empty(shape, dtype=trt.nptype(self._engine.get_tensor_dtype(name)))
                pointer = cuda.call("cudaMalloc", cuda.rt.cudaMalloc(max(host.nbytes, 1)))
                self._buffers[name] = (pointer, host)
                self._context.set_tensor_address(name, pointer)
            self._stream = cuda.call("cudaStreamCreate", cuda.rt.cudaStreamCreate())
        except BaseException:
            self.close()  # a failed start (e.g. GPU out of memory) must not leak device memory
            raise

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        cuda, rt = self._cuda, self._cuda.rt
        h2d = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        with self._lock:
            if self._context is None:
                raise ModelStoppedError("the model was stopped before this request ran; start it again")
            cuda.use_device()  # this thread may never have selected the model's GPU
            data = np.ascontiguousarray(image, dtype=np.uint8)
            pointer, host_in = self._buffers[INPUT_IMAGE]
            if data.nbytes != host_in.nbytes:
                raise ModelFailedError(f"input is {data.nbytes} bytes, the engine takes {host_in.nbytes}")
            stream = self._stream
            cuda.call("copy in", rt.cudaMemcpyAsync(pointer, data.ctypes.data, data.nbytes, h2d, stream))
            if not self._context.execute_async_v3(stream_handle(stream)):
                raise ModelFailedError("TensorRT execution failed (see the agent's log)")
            for name in self.output_names:
                pointer, host = self._buffers[name]
                cuda.call("copy out", rt.cudaMemcpyAsync(host.ctypes.data, pointer, host.nbytes, d2h, stream))
            cuda.call("cudaStreamSynchronize", rt.cudaStreamSynchronize(stream))
            return {name: self._buffers[name][1].copy() for name in self.output_names}

    def close(self) -> None:
        rt = self._cuda.rt
        with self._lock:
            for pointer, _ in self._buffers.values():
                rt.cudaFree(pointer)
            self._buffers.clear()
            if self._stream is not None:
                rt.cudaStreamDestroy(self._stream)
                self._stream = None
            self._context = None
            self._engine = None


class TensorRTRuntime:
    """The model's engine at the precision that passed the check, built on first start if needed."""

    def __init__(self, graph: Path, options: RuntimeOptions) -> None:
        trt = _tensorrt()
        self.backend = "tensorrt"
        self._trt = trt
        self._graph = graph
        self._progress: Callable[[str], None] = options.progress or (lambda message: None)
        self.manifest = load(graph.parent).manifest
        self._cuda = Cuda(options.device_id)
        self._cuda.use_device()
        major, minor = self._cuda.compute_capability()
        self.gpu_code = f"sm_{major}{minor}"
        self.trt_version = str(trt.__version__)
        self._cache_dir = options.cache_dir or graph.parent / "engines"
        self._prebuilt_dir = graph.parent / "engines"  # built at packaging or install time
        self.build_seconds = 0.0
        self.precision, self.reason, self._engine = self._open_engine(has_fast_fp16(major, minor))
        self.input_shape = self._engine.input_shape
        self.output_names = self._engine.output_names
        log.info(
            "op=tensorrt_ready graph=%s gpu=%s trt=%s precision=%s reason=%r",
            graph,
            self.gpu_code,
            self.trt_version,
            self.precision,
            self.reason,
        )

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        engine = self._engine
        if engine is None:
            raise ModelStoppedError("the model was stopped before this request ran; start it again")
        return engine.run(image)

    def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()

    # precision choice -------------------------------------------------------------------------
    def _open_engine(self, fast_fp16: bool) -> tuple[str, str, Engine]:
        forced = os.environ.get(PRECISION_ENV, "auto").strip().lower()
        if forced in PRECISIONS:
            return forced, f"forced by {PRECISION_ENV}={forced} (no check)", self._build(forced)
        if forced != "auto":
            raise ModelFailedError(f"{PRECISION_ENV}={forced!r}: use fp16, fp32 or auto")
        decision = self._saved_decision()
        if decision is not None:
            precision, reason = decision
            path = self._engine_file(precision)
            if path is not None:
                log.info("op=engine_cache hit=%s precision=%s", path, precision)
                return precision, reason, Engine(self._trt, self._cuda, path, self.manifest)
        if not fast_fp16:
            reason = f"{self.gpu_code} has no fast FP16 arithmetic"
            return "fp32", reason, self._checked("fp32", reason)
        fp16 = self._build("fp16")
        try:
            agreement = self._agreement(fp16)
        except BaseException:
            fp16.close()
            raise
        if agreement.passes(FP16_TOLERANCE):
            reason = f"FP16 decides like the CPU session on {agreement.describe()}"
            self._save_decision("fp16", reason)
            return "fp16", reason, fp16
        fp16.close()
        reason = (
            f"FP16 disagrees with the CPU session ({agreement.describe()}; allowed score difference "
            f"{FP16_TOLERANCE.max_score_diff}, mask agreement {FP16_TOLERANCE.min_mask_agreement}): using FP32"
        )
        log.warning("op=fp16_check fallback=fp32 graph=%s %s", self._graph, reason)
        return "fp32", reason, self._checked("fp32", reason)

    def _checked(self, precision: str, reason: str) -> Engine:
        engine = self._build(precision)
        try:
            agreement = self._agreement(engine)
        except BaseException:
            engine.close()
            raise
        if not agreement.passes(FP16_TOLERANCE):
            engine.close()
            raise ModelFailedError(
                f"the TensorRT {precision.upper()} engine disagrees with the ONNX Runtime CPU session "
                f"({agreement.describe()}); serve this model with the cpu or gpu backend and report it"
            )
        self._save_decision(precision, reason)
        return engine

    def _build(self, precision: str) -> Engine:
        path = self._engine_file(precision)
        if path is None:
            path = engine_path(self._cache_dir, self._graph, self.gpu_code, self.trt_version, precision)
            self._progress(
                f"building the TensorRT {precision.upper()} engine (first start on this GPU, {self.gpu_code}, "
                f"TensorRT {self.trt_version}); this takes minutes: the model becomes RUNNING when it is done"
            )
            started = time.monotonic()
            build_engine(
                self._graph,
                path,
                fp16=precision == "fp16",
                timing_cache=timing_cache_path(self._cache_dir, self.gpu_code, self.trt_version),
                input_shape=(self.manifest.height, self.manifest.width, 3),
            )
            self.build_seconds += time.monotonic() - started
        return Engine(self._trt, self._cuda, path, self.manifest)

    def _engine_file(self, precision: str) -> Path | None:
        for folder in (self._prebuilt_dir, self._cache_dir):
            path = engine_path(folder, self._graph, self.gpu_code, self.trt_version, precision)
            if path.is_file():
                return path
        return None

    def _agreement(self, engine: Engine) -> Any:
        from edge_agent.runtime.ort_cpu import open_runtime as open_cpu

        images = package_samples(self._graph.parent, self.manifest.height, self.manifest.width)
        self._progress(f"checking the TensorRT engine against the CPU session on {len(images)} sample images")
        reference = open_cpu(self._graph, RuntimeOptions())
        try:
            return compare(reference.run, engine.run, images, self.manifest.threshold)
        finally:
            reference.close()

    def _saved_decision(self) -> tuple[str, str] | None:
        path = decision_path(self._cache_dir, self._graph, self.gpu_code, self.trt_version)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("precision") in PRECISIONS:
                return str(data["precision"]), str(data.get("reason", ""))
        except (OSError, ValueError):
            pass
        return None

    def _save_decision(self, precision: str, reason: str) -> None:
        path = decision_path(self._cache_dir, self._graph, self.gpu_code, self.trt_version)
        record = {
            "precision": precision,
            "reason": reason,
            "gpu": self.gpu_code,
            "tensorrt": self.trt_version,
        }
        try:
            _write_atomic(path, (json.dumps(record, indent=2) + "\n").encode("utf-8"))
        except OSError as exc:  # a read-only cache costs a recheck at the next start, nothing more
            log.warning("op=save_precision path=%s error=%s", path, exc)


def open_runtime(graph: Path, options: RuntimeOptions) -> TensorRTRuntime:
    return TensorRTRuntime(graph, options)


__all__: list[str] = [
    "Engine",
    "TensorRTRuntime",
    "build_engine",
    "check_version",
    "engine_path",
    "load_or_build",
    "local_gpu_code",
    "open_runtime",
    "timing_cache_path",
]
