"""Small helpers for daemon tests: images, raw requests, status codes."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from edge_agent.client import EdgeAgentClient
from edge_agent.protocol import edge_agent_pb2 as pb
from tests.conftest import REPO

WIDTH, HEIGHT = 128, 96
_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def normal_image(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    return np.full((height, width, 3), 100, np.uint8)


def anomalous_image(width: int = WIDTH, height: int = HEIGHT, dark: bool = True) -> np.ndarray:
    """A bright square (>= 1% of the image) and optionally a dark one."""
    image = normal_image(width, height)
    image[10:30, 10:40] = 255
    if dark:
        image[60:70, 80:100] = 0
    return image


def code_of(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def detect_request(name: str, image: np.ndarray, **bitmap_fields: Any) -> pb.DetectAnomaliesRequest:
    height, width = image.shape[:2]
    bitmap = pb.Bitmap(width=width, height=height, **bitmap_fields)
    if "shared_memory_handle" not in bitmap_fields and "byte_data" not in bitmap_fields:
        bitmap.byte_data = image.tobytes()
    return pb.DetectAnomaliesRequest(model_component=name, bitmap=bitmap)


def legacy_mask_params(handle: pb.SharedMemoryHandle) -> pb.AnomalyMaskParams:
    """AnomalyMaskParams as the legacy C++ variant encodes it: the handle at field 3."""
    payload = handle.SerializeToString()
    raw = bytes([(3 << 3) | 2]) + _varint(len(payload)) + payload
    params = pb.AnomalyMaskParams.FromString(raw)
    assert not params.HasField("shared_memory_handle")
    return params


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class SpawnedAgent:
    """`edge-agent serve` started the test's own way: another entry point (`python -m MODULE`), another
    environment or user, or under a command `wrap` that execs it. Serves `models_dir`; stopped with
    SIGTERM by `stop()`."""

    def __init__(
        self,
        workdir: Path,
        *args: str,
        module: str = "edge_agent",
        global_args: tuple[str, ...] = (),
        wrap: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.workdir = workdir
        self.socket_path = workdir / "agent.sock"
        self.models_dir = workdir / "models"
        self.models_dir.mkdir(exist_ok=True)
        self.log_path = workdir / "agent.log"
        command = [
            *wrap,
            sys.executable,
            "-m",
            module,
            *global_args,
            "serve",
            "--socket",
            f"unix://{self.socket_path}",
        ]
        command += ["--models-dir", str(self.models_dir), "--poll-interval", "0.2", "--threads", "1", *args]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env, preexec_fn=preexec_fn
            )
        self.client = EdgeAgentClient(f"unix://{self.socket_path}", timeout_s=120)

    def wait_ready(self, timeout_s: float = 120.0) -> SpawnedAgent:
        try:
            grpc.channel_ready_future(self.client.channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise AssertionError(f"agent did not become ready; log:\n{self.log()}") from None
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def stop(self, timeout_s: float = 60.0) -> int:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def wait_until(predicate: Callable[[], bool], timeout_s: float = 30.0, step_s: float = 0.05) -> bool:
    """Poll until `predicate()` holds (readiness, never a fixed sleep); False if it never did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()
