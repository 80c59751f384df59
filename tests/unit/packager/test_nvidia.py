"""TensorRT decisions and cache keys. No GPU or TensorRT here: the hosts are fakes, and
nvidia-smi / tensorrt are replaced where detection is tested (mocked: they cannot run here)."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from edge_agent.packager import nvidia
from edge_agent.packager.nvidia import HostGpu, plan_engine_build
from edge_agent.runtime import BACKENDS
from edge_agent.runtime.tensorrt import engine_key, engine_path

OPTIONS = {"gpu-code": "sm_72", "trt-ver": "8.2.1", "cuda-ver": "10.2"}


@pytest.mark.parametrize(
    ("host", "build_now", "fragment"),
    [
        (HostGpu(None, ("sm_72",)), False, "TensorRT is not installed"),
        (HostGpu("8.2.1.8", ()), False, "no NVIDIA GPU"),
        (HostGpu("8.2.1.8", ("sm_86",)), False, "has sm_86, the target needs sm_72"),
        (HostGpu("8.6.1", ("sm_72",)), False, "TensorRT 8.6.1, the target has 8.2.1"),
        (HostGpu("8.2.3", ("sm_72",)), False, "TensorRT 8.2.3, the target has 8.2.1"),
        (HostGpu("8.2.1.8", ("sm_86", "sm_72")), True, "matches sm_72"),
    ],
)
def test_engine_is_built_during_packaging_only_on_a_matching_host(
    host: HostGpu, build_now: bool, fragment: str
) -> None:
    plan = plan_engine_build(OPTIONS, host)
    assert plan.build_now is build_now
    assert fragment in plan.reason


def test_detect_host_reads_tensorrt_and_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    monkeypatch.setattr(nvidia.shutil, "which", lambda name: "/usr/bin/nvidia-smi")

    def fake_run(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 0, stdout="8.6\n7.5\nbogus\n", stderr="")

    monkeypatch.setattr(nvidia.subprocess, "run", fake_run)
    assert nvidia.detect_host() == HostGpu("10.3.0", ("sm_86", "sm_75"))


def test_detect_host_without_gpu_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails
    monkeypatch.setattr(nvidia.shutil, "which", lambda name: None)
    assert nvidia.detect_host() == HostGpu(None, ())


def test_engine_cache_is_keyed_by_gpu_architecture_and_tensorrt_version(tmp_path: Path) -> None:
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"graph-1")
    a = engine_path(tmp_path / "cache", graph, "sm_72", "8.2.1")
    assert a.parent.name == engine_key("sm_72", "8.2.1") == "sm_72-trt8.2.1"
    assert engine_path(tmp_path / "cache", graph, "sm_72", "8.2.1") == a  # restart: same file
    assert engine_path(tmp_path / "cache", graph, "sm_86", "8.2.1") != a
    assert engine_path(tmp_path / "cache", graph, "sm_72", "8.6.1") != a
    graph.write_bytes(b"graph-2")
    assert engine_path(tmp_path / "cache", graph, "sm_72", "8.2.1") != a  # new model, new engine


def test_tensorrt_backend_is_registered_and_explains_missing_packages(tmp_path: Path) -> None:
    from edge_agent.errors import ModelFailedError
    from edge_agent.runtime import open_runtime

    assert BACKENDS["tensorrt"] == "edge_agent.runtime.tensorrt"
    try:
        import tensorrt  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises((ModelFailedError, ImportError)):
            open_runtime("tensorrt", tmp_path / "model.onnx")
