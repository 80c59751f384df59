"""Stand-ins for `tensorrt` and cuda-python's runtime: no GPU here, so these take their place.

They expose only the API of the version they stand for (8.5, 10.x, or 11.x to show the pin), so a
backend call that a supported release lacks fails here as it would on a device:
- names removed in 10 (`num_bindings`, `get_binding_shape`, `execute_async_v2`, `build_engine`,
  `max_workspace_size`) exist only in the 8.5 stand-in, and names deprecated in 10
  (`platform_has_fast_fp16`, the EXPLICIT_BATCH flag) warn there with DeprecationWarning, which
  the tests turn into errors; TensorRT 11 lacks `BuilderFlag.FP16` and `platform_has_fast_fp16`.
- 8.5 builds implicit-batch networks unless EXPLICIT_BATCH is passed, and its ONNX parser refuses
  them, as the real one does.
- The parser applies edge_agent.packager.trt_rules (the rules checkable without a GPU).
- "Device memory" is host memory behind integer addresses; the engine runs the ONNX graph with
  ONNX Runtime CPU, FP16 engines round every output through float16 (and can be told to drift, to
  exercise the fallback). CUDA's current device is per thread, like the real runtime: an engine
  run from a thread that never called cudaSetDevice for its GPU fails.
Nothing here measures speed or GPU numerics; scripts/gpu-check.sh does that on a GPU.
"""

from __future__ import annotations

import ctypes
import enum
import json
import sys
import threading
import types
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from edge_agent.packager.trt_rules import check_model


@dataclass
class Knobs:
    """What a test can set on the stand-in world."""

    fp16_score_offset: float = 0.0  # added to scores of FP16 engines (0: float16 rounding only)
    compute_capability: tuple[int, int] = (8, 6)
    devices: int = 2
    builds: list[str] = field(default_factory=list)  # precision of each build, in order
    runs_by_thread: dict[int, int] = field(default_factory=dict)  # thread id -> runs
    timing_cache_loaded: list[int] = field(default_factory=list)  # bytes given to create_timing_cache
    build_gate: threading.Event | None = None  # when set, a build waits for it (a slow build)


# CUDA runtime --------------------------------------------------------------------------------------
class _Memory:
    def __init__(self) -> None:
        self.blocks: dict[int, Any] = {}


def make_cudart(knobs: Knobs, protocol_streams: bool) -> types.ModuleType:
    """cuda.bindings.runtime (protocol_streams: streams have __cuda_stream__) or the older cuda.cudart."""
    rt = types.ModuleType("cudart")
    memory = _Memory()
    local = threading.local()

    class cudaError_t(enum.IntEnum):
        cudaSuccess = 0
        cudaErrorInvalidValue = 1
        cudaErrorMemoryAllocation = 2
        cudaErrorInvalidDevice = 101

    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    class cudaStream_t:
        def __init__(self, handle: int) -> None:
            self._handle = handle

        if protocol_streams:

            def __cuda_stream__(self) -> tuple[int, int]:
                return (0, self._handle)

            def __int__(self) -> int:
                warnings.warn(
                    "int() of cuda.bindings objects is deprecated", DeprecationWarning, stacklevel=2
                )
                return self._handle
        else:

            def __int__(self) -> int:
                return self._handle

    @dataclass
    class cudaDeviceProp:
        major: int
        minor: int

    def cudaSetDevice(device: int) -> tuple[cudaError_t]:
        if not 0 <= device < knobs.devices:
            return (cudaError_t.cudaErrorInvalidDevice,)
        local.device = device
        return (cudaError_t.cudaSuccess,)

    def cudaGetDeviceProperties(device: int) -> tuple[cudaError_t, Any]:
        if not 0 <= device < knobs.devices:
            return (cudaError_t.cudaErrorInvalidDevice, None)
        return (cudaError_t.cudaSuccess, cudaDeviceProp(*knobs.compute_capability))

    def cudaMalloc(size: int) -> tuple[cudaError_t, int]:
        block = ctypes.create_string_buffer(size)
        address = ctypes.addressof(block)
        memory.blocks[address] = block
        return (cudaError_t.cudaSuccess, address)

    def cudaFree(address: int) -> tuple[cudaError_t]:
        if memory.blocks.pop(address, None) is None:
            return (cudaError_t.cudaErrorInvalidValue,)
        return (cudaError_t.cudaSuccess,)

    def cudaStreamCreate() -> tuple[cudaError_t, cudaStream_t]:
        return (cudaError_t.cudaSuccess, cudaStream_t(len(memory.blocks) + 0x1000))

    def _stream_ok(stream: Any) -> bool:
        return isinstance(stream, cudaStream_t)

    def cudaMemcpyAsync(dst: int, src: int, count: int, kind: Any, stream: Any) -> tuple[cudaError_t]:
        device_side = dst if kind == cudaMemcpyKind.cudaMemcpyHostToDevice else src
        block = memory.blocks.get(device_side)
        if block is None or count > ctypes.sizeof(block) or not _stream_ok(stream):
            return (cudaError_t.cudaErrorInvalidValue,)
        ctypes.memmove(dst, src, count)
        return (cudaError_t.cudaSuccess,)

    def cudaStreamSynchronize(stream: Any) -> tuple[cudaError_t]:
        return (cudaError_t.cudaSuccess if _stream_ok(stream) else cudaError_t.cudaErrorInvalidValue,)

    def cudaStreamDestroy(stream: Any) -> tuple[cudaError_t]:
        return cudaStreamSynchronize(stream)

    def cudaGetErrorName(err: cudaError_t) -> tuple[cudaError_t, bytes]:
        return (cudaError_t.cudaSuccess, err.name.encode())

    for name, value in dict(locals()).items():
        if name.startswith("cuda"):
            setattr(rt, name, value)
    rt.current_device = lambda: getattr(local, "device", None)  # for the stand-in engine only
    rt.memory = memory
    return rt


# TensorRT ----------------------------------------------------------------------------------------
def make_tensorrt(version: str, knobs: Knobs, cudart: types.ModuleType) -> types.ModuleType:
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version

    class DataType(enum.IntEnum):
        FLOAT = 0
        HALF = 1
        INT8 = 2
        INT32 = 3
        BOOL = 4
        UINT8 = 5
        if major >= 10:
            INT64 = 8

    _np = {
        DataType.FLOAT: np.float32,
        DataType.HALF: np.float16,
        DataType.INT32: np.int32,
        DataType.BOOL: np.bool_,
        DataType.UINT8: np.uint8,
        DataType.INT8: np.int8,
    }

    def nptype(dtype: DataType) -> Any:
        return _np[dtype]

    class TensorIOMode(enum.IntEnum):
        NONE = 0
        INPUT = 1
        OUTPUT = 2

    class MemoryPoolType(enum.IntEnum):
        WORKSPACE = 0

    flags = ["INT8", "TF32", "REFIT", "STRICT_TYPES" if major < 10 else "DIRECT_IO"]
    if major < 11:
        flags.append("FP16")
    BuilderFlag = enum.IntEnum("BuilderFlag", flags)

    class NetworkDefinitionCreationFlag(enum.IntEnum):
        EXPLICIT_BATCH = 0

    class _Logger:
        WARNING = 2
        INFO = 3

        def __init__(self, severity: int = 2) -> None:
            self.severity = severity

    class _Tensor:
        def __init__(self, name: str, shape: tuple[int, ...], dtype: DataType) -> None:
            self.name, self.shape, self.dtype = name, shape, dtype

    class _Network:
        def __init__(self, explicit_batch: bool) -> None:
            self.explicit_batch = explicit_batch
            self.model: onnx.ModelProto | None = None
            self.inputs: list[_Tensor] = []

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        def get_input(self, index: int) -> _Tensor:
            return self.inputs[index]

    class _Error:
        def __init__(self, text: str) -> None:
            self.text = text

        def __str__(self) -> str:
            return self.text

    class OnnxParser:
        def __init__(self, network: _Network, logger: _Logger) -> None:
            self._network = network
            self._errors: list[_Error] = []

        def parse(self, data: bytes) -> bool:
            if not self._network.explicit_batch:
                self._errors = [_Error("ONNX networks need an explicit-batch network (8.5)")]
                return False
            model = onnx.load_model_from_string(bytes(data))
            problems = check_model(model)
            if problems:
                self._errors = [_Error(str(p)) for p in problems]
                return False
            self._network.model = model
            for value in model.graph.input:
                dims = tuple(
                    d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim
                )
                self._network.inputs.append(
                    _Tensor(value.name, dims, _dtype(value.type.tensor_type.elem_type))
                )
            return True

        @property
        def num_errors(self) -> int:
            return len(self._errors)

        def get_error(self, index: int) -> _Error:
            return self._errors[index]

    class ITimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> bytes:
            return self.data + b"t"

    class IOptimizationProfile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}

        def set_shape(self, name: str, low: tuple, opt: tuple, high: tuple) -> None:
            self.shapes[name] = (tuple(low), tuple(opt), tuple(high))

    class IBuilderConfig:
        def __init__(self) -> None:
            self.flags: set[int] = {BuilderFlag.TF32}
            self.pools: dict[int, int] = {}
            self.cache: ITimingCache | None = None
            self.profiles: list[IOptimizationProfile] = []

        def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
            self.pools[pool] = size

        def set_flag(self, flag: Any) -> None:
            self.flags.add(flag)

        def clear_flag(self, flag: Any) -> None:
            self.flags.discard(flag)

        def get_flag(self, flag: Any) -> bool:
            return flag in self.flags

        def create_timing_cache(self, data: bytes) -> ITimingCache:
            knobs.timing_cache_loaded.append(len(data))
            return ITimingCache(bytes(data))

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            self.cache = cache
            return True

        def get_timing_cache(self) -> ITimingCache | None:
            return self.cache

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

        if major < 10:
            max_workspace_size = 0  # removed in 10

    class IHostMemory(bytes):
        pass

    class Builder:
        def __init__(self, logger: _Logger) -> None:
            self.logger = logger

        def create_network(self, flags: int = 0) -> _Network:
            explicit = bool(flags & (1 << NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
            if major >= 10:
                if explicit:
                    warnings.warn(
                        "EXPLICIT_BATCH is deprecated in TensorRT 10", DeprecationWarning, stacklevel=2
                    )
                explicit = True  # 10.x networks are always explicit-batch
            return _Network(explicit)

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def build_serialized_network(self, network: _Network, config: IBuilderConfig) -> IHostMemory | None:
            if network.model is None:
                return None
            for tensor in network.inputs:
                if any(d < 0 for d in tensor.shape) and not any(
                    tensor.name in p.shapes for p in config.profiles
                ):
                    return None  # real TensorRT: "Network has dynamic or shape inputs, but no optimization profile"
            if knobs.build_gate is not None:
                knobs.build_gate.wait(60)
            fp16 = major < 11 and config.get_flag(BuilderFlag.FP16)
            knobs.builds.append("fp16" if fp16 else "fp32")
            header = json.dumps({"fp16": fp16, "version": version}).encode()
            return IHostMemory(len(header).to_bytes(4, "little") + header + network.model.SerializeToString())

        if major < 11:

            @property
            def platform_has_fast_fp16(self) -> bool:
                if major >= 10:
                    warnings.warn("platform_has_fast_fp16 is deprecated", DeprecationWarning, stacklevel=2)
                return True

        if major < 10:

            def build_engine(self, network: _Network, config: IBuilderConfig) -> Any:  # removed in 10
                raise AssertionError(
                    "build_engine is deprecated since 8.0 and gone in 10; use build_serialized_network"
                )

    class ICudaEngine:
        def __init__(self, blob: bytes) -> None:
            size = int.from_bytes(blob[:4], "little")
            header = json.loads(blob[4 : 4 + size])
            if header["version"] != version:
                raise RuntimeError("engine built by another TensorRT version")
            self.fp16 = bool(header["fp16"])
            self.model_bytes = blob[4 + size :]
            model = onnx.load_model_from_string(self.model_bytes)
            self._io: dict[str, tuple[TensorIOMode, tuple[int, ...], DataType]] = {}
            for value, mode in [(v, TensorIOMode.INPUT) for v in model.graph.input] + [
                (v, TensorIOMode.OUTPUT) for v in model.graph.output
            ]:
                dims = tuple(
                    d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim
                )
                self._io[value.name] = (mode, dims, _dtype(value.type.tensor_type.elem_type))
            self.names = list(self._io)

        @property
        def num_io_tensors(self) -> int:
            return len(self.names)

        def get_tensor_name(self, index: int) -> str:
            return self.names[index]

        def get_tensor_mode(self, name: str) -> TensorIOMode:
            return self._io[name][0]

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return self._io[name][1]  # symbolic dimensions read -1, as on the real engine

        def get_tensor_dtype(self, name: str) -> DataType:
            return self._io[name][2]

        def create_execution_context(self) -> IExecutionContext:
            return IExecutionContext(self)

        if major < 10:
            num_bindings = property(lambda self: len(self.names))  # removed in 10

            def get_binding_shape(self, index: int) -> tuple[int, ...]:  # removed in 10
                return self._io[self.names[index]][1]

    class IExecutionContext:
        def __init__(self, engine: ICudaEngine) -> None:
            self._engine = engine
            self._session = ort.InferenceSession(engine.model_bytes, providers=["CPUExecutionProvider"])
            self._addresses: dict[str, int] = {}
            self._input_shape: tuple[int, ...] | None = None
            self._device = cudart.current_device()

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            declared = self._engine.get_tensor_shape(name)
            if len(declared) != len(shape) or any(
                declared[i] >= 0 and declared[i] != shape[i] for i in range(len(shape))
            ):
                return False
            self._input_shape = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            mode, dims, _ = self._engine._io[name]
            if mode == TensorIOMode.INPUT and self._input_shape is not None:
                return self._input_shape
            return dims

        def set_tensor_address(self, name: str, address: int) -> bool:
            if not isinstance(address, int):
                raise TypeError("set_tensor_address takes an int device address")
            self._addresses[name] = address
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            if not isinstance(stream_handle, int):
                raise TypeError("execute_async_v3 takes the stream's int handle")
            if cudart.current_device() != self._device:
                return False  # this thread's current device is not the engine's GPU
            knobs.runs_by_thread[threading.get_ident()] = (
                knobs.runs_by_thread.get(threading.get_ident(), 0) + 1
            )
            if self._input_shape is None or set(self._addresses) != set(self._engine.names):
                return False
            image_name = next(
                n for n in self._engine.names if self._engine.get_tensor_mode(n) == TensorIOMode.INPUT
            )
            count = int(np.prod(self._input_shape))
            image = np.ctypeslib.as_array((ctypes.c_uint8 * count).from_address(self._addresses[image_name]))
            outputs = [
                n for n in self._engine.names if self._engine.get_tensor_mode(n) == TensorIOMode.OUTPUT
            ]
            values = self._session.run(outputs, {image_name: image.reshape(self._input_shape).copy()})
            for name, value in zip(outputs, values):
                value = np.ascontiguousarray(value)
                if self._engine.fp16 and value.dtype == np.float32:
                    value = (
                        value.astype(np.float16).astype(np.float32) + np.float32(knobs.fp16_score_offset)
                    ).astype(np.float32)
                block = cudart.memory.blocks[self._addresses[name]]
                if value.nbytes > ctypes.sizeof(block):
                    return False  # would write past the buffer: the caller sized it wrongly
                ctypes.memmove(self._addresses[name], value.ctypes.data, value.nbytes)
            return True

        if major < 10:

            def execute_async_v2(self, bindings: list, stream_handle: int) -> bool:  # removed in 10
                raise AssertionError("execute_async_v2 is gone in 10; use execute_async_v3")

    class Runtime:
        def __init__(self, logger: _Logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, blob: bytes) -> ICudaEngine | None:
            try:
                return ICudaEngine(bytes(blob))
            except (RuntimeError, ValueError):
                return None

    def _dtype(elem_type: int) -> DataType:
        return {
            onnx.TensorProto.FLOAT: DataType.FLOAT,
            onnx.TensorProto.FLOAT16: DataType.HALF,
            onnx.TensorProto.UINT8: DataType.UINT8,
            onnx.TensorProto.INT32: DataType.INT32,
            onnx.TensorProto.BOOL: DataType.BOOL,
        }[elem_type]

    for name, value in {
        "DataType": DataType,
        "nptype": nptype,
        "TensorIOMode": TensorIOMode,
        "MemoryPoolType": MemoryPoolType,
        "BuilderFlag": BuilderFlag,
        "NetworkDefinitionCreationFlag": NetworkDefinitionCreationFlag,
        "Logger": _Logger,
        "Builder": Builder,
        "OnnxParser": OnnxParser,
        "Runtime": Runtime,
    }.items():
        setattr(trt, name, value)
    return trt


def install(monkeypatch: Any, version: str, knobs: Knobs, bindings: bool = True) -> tuple[Any, Any]:
    """Put the stand-ins where `import tensorrt` and cuda-python's imports find them."""
    cudart = make_cudart(knobs, protocol_streams=bindings)
    trt = make_tensorrt(version, knobs, cudart)
    cuda = types.ModuleType("cuda")
    cuda.__path__ = []  # a package
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart", "tensorrt"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    if bindings:
        package = types.ModuleType("cuda.bindings")
        package.__path__ = []
        package.runtime = cudart
        cuda.bindings = package
        monkeypatch.setitem(sys.modules, "cuda.bindings", package)
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart)
    else:
        cuda.cudart = cudart
        monkeypatch.setitem(sys.modules, "cuda.cudart", cudart)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    return trt, cudart
