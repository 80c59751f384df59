"""Shared fixtures: small real model packages, and a real agent process on a real Unix socket."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# The tests fork agent processes (subprocess.Popen) while this process holds gRPC channels. Before
# Python 3.10, Popen forks rather than vforks, so gRPC's fork handlers run, and grpcio 1.70 (the
# newest for Python 3.8) then stalls each fork (10 forks in 40 s with idle channels, in a local
# stress script) and now and then aborts the process (grpc/grpc#31885). The children exec at once
# and never use this process's gRPC, so they need no fork support. Set before gRPC is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
import grpc
import pytest

from edge_agent.client import EdgeAgentClient
from edge_agent.testing.onnx_models import bright_blob_package, heavy_package

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@dataclass(frozen=True)
class Packages:
    classification: Path  # bright blob, 128x96
    segmentation: Path  # bright/dark blob, 128x96
    heavy: Path  # conv stack at 256x256: slow enough to overload


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    root = tmp_path_factory.mktemp("packages")
    return Packages(
        classification=bright_blob_package(root / "classification").directory,
        segmentation=bright_blob_package(root / "segmentation", segmentation=True).directory,
        heavy=heavy_package(root / "heavy", 256, 256, side=256, layers=8, channels=48).directory,
    )


class AgentProcess:
    """`edge-agent serve` in a subprocess, as deployed; stopped with SIGTERM."""

    def __init__(self, workdir: Path, args: list[str]) -> None:
        self.workdir = workdir
        self.socket_path = workdir / "agent.sock"
        self.socket = f"unix://{self.socket_path}"
        self.models_dir = workdir / "models"
        self.models_dir.mkdir(exist_ok=True)
        self.log_path = workdir / "agent.log"
        self._log = self.log_path.open("wb")
        command = [sys.executable, "-m", "edge_agent", "serve", "--socket", self.socket]
        command += ["--models-dir", str(self.models_dir), "--poll-interval", "0.2", "--threads", "1", *args]
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, cwd=workdir)
        self.client = EdgeAgentClient(self.socket, timeout_s=30)

    def wait_ready(self, timeout_s: float = 30.0) -> AgentProcess:
        future = grpc.channel_ready_future(self.client.channel)
        try:
            future.result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise AssertionError(f"agent did not become ready; log:\n{self.log()}") from None
        return self

    def add_model(self, name: str, package: Path) -> Path:
        target = self.models_dir / name
        shutil.copytree(package, target)
        return target

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self, timeout_s: float = 30.0) -> int:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._log.close()


@pytest.fixture
def start_agent() -> Iterator:
    """Factory: start_agent(*extra_args, ready=True) -> AgentProcess; all are stopped at the end."""
    started: list[AgentProcess] = []
    workdirs: list[Path] = []

    def start(*args: str, ready: bool = True, workdir: Path | None = None) -> AgentProcess:
        if workdir is None:
            # Short path: a Unix socket path must fit in 107 bytes.
            workdir = Path(tempfile.mkdtemp(prefix="ea-", dir="/tmp"))
            workdirs.append(workdir)
        agent = AgentProcess(workdir, list(args))
        started.append(agent)
        return agent.wait_ready() if ready else agent

    yield start
    for agent in started:
        agent.stop()
    for workdir in workdirs:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_agent(packages: Packages) -> Iterator[AgentProcess]:
    """One agent for a whole test module; tests add models under unique names."""
    workdir = Path(tempfile.mkdtemp(prefix="ea-", dir="/tmp"))
    agent = AgentProcess(workdir, ["--queue-depth", "64"]).wait_ready()
    yield agent
    rc = agent.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    assert rc == 0, agent.log()
