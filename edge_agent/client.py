"""Python client of the Edge Agent (ours or any wire-compatible one).

    with EdgeAgentClient() as agent:                       # default socket
        agent.start_model("my-model", wait=True)
        with SharedMemoryBuffer.create(768 * 576 * 3) as shm:   # created once, reused per frame
            result = agent.detect("my-model", frame, shm=shm)

`detect` returns `edge_agent.inference.Detection`, the same type the trainer's evaluation uses.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import grpc
import numpy as np

from edge_agent.errors import ModelFailedError
from edge_agent.imaging.overlay import read_rgb
from edge_agent.inference import AnomalyArea, Detection
from edge_agent.protocol import edge_agent_pb2 as pb
from edge_agent.protocol import edge_agent_pb2_grpc as pb_grpc

# The one default socket of the agent, its clients and the component helpers (the guide's path).
DEFAULT_SOCKET = "unix:///tmp/aws.iot.lookoutvision.EdgeAgent.sock"
MAX_MESSAGE_BYTES = 64 << 20
POLL_S = 0.5
_AGENT_NOT_READY = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND)


@dataclass(frozen=True)
class ModelState:
    name: str
    arn: str
    status: str  # STOPPED | STARTING | RUNNING | FAILED | STOPPING
    status_message: str

    def to_json(self) -> dict[str, str]:
        return {
            "model_component": self.name,
            "lookout_vision_model_arn": self.arn,
            "status": self.status,
            "status_message": self.status_message,
        }


class SharedMemoryBuffer:
    """A POSIX shared-memory segment this process owns: create once, write each frame, unlink at the end.

    Uses /dev/shm directly (not multiprocessing.shared_memory, whose resource tracker interferes
    with segments shared between processes on Python < 3.13).
    """

    def __init__(self, name: str, fd: int, size: int) -> None:
        self.name = name
        self.size = size
        self._fd = fd

    @classmethod
    def create(cls, size: int, name: str | None = None, mode: int = 0o660) -> SharedMemoryBuffer:
        name = name or f"edge-agent-{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(f"/dev/shm/{name.lstrip('/')}", os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            os.ftruncate(fd, size)
        except BaseException:
            os.close(fd)
            os.unlink(f"/dev/shm/{name.lstrip('/')}")
            raise
        return cls("/" + name.lstrip("/"), fd, size)

    def write(self, data: bytes | memoryview | np.ndarray, offset: int = 0) -> None:
        view = memoryview(np.ascontiguousarray(data) if isinstance(data, np.ndarray) else data).cast("B")
        if offset + len(view) > self.size:
            raise ValueError(f"{len(view)} bytes at offset {offset} do not fit in {self.size}")
        written = os.pwrite(self._fd, view, offset)
        if written != len(view):
            raise OSError(f"short write to shared memory {self.name}: {written} of {len(view)}")

    def read(self, size: int, offset: int = 0) -> bytes:
        return os.pread(self._fd, size, offset)

    def handle(self, size: int, offset: int = 0) -> pb.SharedMemoryHandle:
        return pb.SharedMemoryHandle(name=self.name, size=size, offset=offset)

    def close(self, unlink: bool = True) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if unlink:
            path = f"/dev/shm/{self.name.lstrip('/')}"
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    os.unlink(path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> SharedMemoryBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EdgeAgentClient:
    """Typed calls to the EdgeAgent service over its Unix socket; errors are grpc.RpcError."""

    def __init__(self, socket: str = DEFAULT_SOCKET, timeout_s: float | None = 60.0) -> None:
        target = socket if socket.startswith("unix:") else f"unix://{Path(socket).absolute()}"
        self.target = target
        self.channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        self.stub = pb_grpc.EdgeAgentStub(self.channel)
        self.timeout_s = timeout_s

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        grpc.channel_ready_future(self.channel).result(timeout=timeout_s)

    def list_models(self) -> list[ModelState]:
        response = self.stub.ListModels(pb.ListModelsRequest(), timeout=self.timeout_s)
        return [_state(m) for m in response.models]

    def describe_model(self, name: str) -> ModelState:
        response = self.stub.DescribeModel(
            pb.DescribeModelRequest(model_component=name), timeout=self.timeout_s
        )
        return _state(response.model_description)

    def start_model(self, name: str, wait: bool = False, timeout_s: float = 300.0) -> ModelState:
        """StartModel; with wait, poll DescribeModel as the guide's sample does until RUNNING."""
        status = self.stub.StartModel(
            pb.StartModelRequest(model_component=name), timeout=self.timeout_s
        ).status
        if not wait:
            return ModelState(name, "", pb.ModelStatus.Name(status), "")
        return self.wait_for(name, "RUNNING", timeout_s)

    def start_model_if_needed(
        self, name: str, timeout_s: float = 300.0, wait_for_agent: bool = False
    ) -> ModelState:
        """The guide's start_model_if_needed loop: start if STOPPED/FAILED, wait while STARTING/STOPPING.

        wait_for_agent: the caller runs beside an agent that may still be starting or may not have
        scanned its models folder yet (a model component's startup step): a missing socket,
        UNAVAILABLE and NOT_FOUND are waited out until the deadline instead of raised.
        """
        deadline = time.monotonic() + timeout_s
        started = False
        if wait_for_agent:
            _wait_for_socket(self.target, deadline, timeout_s)
        while True:
            try:
                state = self.describe_model(name)
            except grpc.RpcError as exc:
                if not (wait_for_agent and exc.code() in _AGENT_NOT_READY):
                    raise
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"model {name!r}: the agent at {self.target} answered {exc.code().name} "
                        f"for {timeout_s:.0f} s ({exc.details()})"
                    ) from None
                time.sleep(POLL_S)
                continue
            if state.status == "RUNNING":
                return state
            if state.status == "FAILED" and started:
                raise ModelFailedError(f"model {name!r} failed to start: {state.status_message}")
            if state.status in ("STOPPED", "FAILED"):
                try:
                    self.stub.StartModel(pb.StartModelRequest(model_component=name), timeout=self.timeout_s)
                    started = True
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:  # not a race with another starter
                        raise
                return self.wait_for(name, "RUNNING", max(1.0, deadline - time.monotonic()))
            if time.monotonic() > deadline:
                raise TimeoutError(f"model {name!r} still {state.status} after {timeout_s:.0f} s")
            time.sleep(0.1)

    def wait_for(self, name: str, status: str, timeout_s: float = 300.0) -> ModelState:
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        while True:
            state = self.describe_model(name)
            if state.status == status:
                return state
            if state.status == "FAILED":
                raise ModelFailedError(f"model {name!r} failed to start: {state.status_message}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"model {name!r} is {state.status}, not {status}, after {timeout_s:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def stop_model(self, name: str) -> str:
        status = self.stub.StopModel(pb.StopModelRequest(model_component=name), timeout=self.timeout_s).status
        return pb.ModelStatus.Name(status)

    def detect(
        self,
        name: str,
        image: np.ndarray | str | Path,
        shm: SharedMemoryBuffer | None = None,
        mask_shm: SharedMemoryBuffer | None = None,
    ) -> Detection:
        """DetectAnomalies on an RGB uint8 [H, W, 3] array or an image file.

        With `shm`, the pixels travel through that segment (written at offset 0); otherwise inline.
        With `mask_shm`, a segmentation model writes its mask there instead of into the reply.
        """
        array = (
            read_rgb(Path(image)) if isinstance(image, (str, Path)) else np.ascontiguousarray(image, np.uint8)
        )
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"image must be RGB [H, W, 3]; got shape {array.shape}")
        height, width = array.shape[:2]
        size = width * height * 3
        bitmap = pb.Bitmap(width=width, height=height)
        if shm is not None:
            shm.write(array)
            bitmap.shared_memory_handle.CopyFrom(shm.handle(size))
        else:
            bitmap.byte_data = array.tobytes()
        request = pb.DetectAnomaliesRequest(model_component=name, bitmap=bitmap)
        if mask_shm is not None:
            request.anomaly_mask_params.shared_memory_handle.CopyFrom(mask_shm.handle(size))
        result = self.stub.DetectAnomalies(request, timeout=self.timeout_s).detect_anomaly_result
        return detection_from_proto(result, mask_shm)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> EdgeAgentClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def detection_from_proto(
    result: pb.DetectAnomalyResult, mask_shm: SharedMemoryBuffer | None = None
) -> Detection:
    mask = None
    if result.HasField("anomaly_mask"):
        bitmap = result.anomaly_mask
        shape = (bitmap.height, bitmap.width, 3)
        if bitmap.WhichOneof("data") == "byte_data":
            mask = np.frombuffer(bitmap.byte_data, np.uint8).reshape(shape)
        elif mask_shm is not None:
            handle = bitmap.shared_memory_handle
            raw = mask_shm.read(bitmap.width * bitmap.height * 3, handle.offset)
            mask = np.frombuffer(raw, np.uint8).reshape(shape)
    return Detection(
        is_anomalous=result.is_anomalous,
        confidence=result.confidence,
        anomaly_score=result.anomaly_score,
        anomaly_threshold=result.anomaly_threshold,
        anomalies=tuple(
            AnomalyArea(a.name, a.pixel_anomaly.hex_color, a.pixel_anomaly.total_percentage_area)
            for a in result.anomalies
        ),
        mask=mask,
    )


def socket_file(target: str) -> str:
    """The file of a `unix:` target (`unix:///abs`, `unix:/abs`, `unix:rel`), for existence checks."""
    if target.startswith("unix://"):
        return target[len("unix://") :]
    return target[len("unix:") :] if target.startswith("unix:") else target


def _wait_for_socket(target: str, deadline: float, timeout_s: float) -> None:
    """gRPC backs off between connection attempts (up to minutes): wait for the file first instead."""
    path = socket_file(target)
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the agent socket {path} did not appear within {timeout_s:.0f} s; is the agent running?"
            )
        time.sleep(POLL_S)


def _state(message: pb.ModelDescription | pb.ModelMetadata) -> ModelState:
    return ModelState(
        message.model_component,
        message.lookout_vision_model_arn,
        pb.ModelStatus.Name(message.status),
        message.status_message,
    )
