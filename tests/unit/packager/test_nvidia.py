"""TensorRT decisions and cache keys. No GPU or TensorRT here: the hosts are fakes, and
nvidia-smi / tensorrt are replaced where detection is tested (mocked: they cannot run here)."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from edge_agent.packager import nvidia
from edge_agent.packager.catalogue import load_catalogue
from edge_agent.packager.nvidia import HostGpu, plan_engine_build
from edge_agent.runtime import BACKENDS
from edge_agent.runtime.tensorrt import check_version, engine_key, engine_path, timing_cache_path

OPTIONS = {"gpu-code": "sm_72", "trt-ver": "8.5.2", "cuda-ver": "11.4"}  # jetson_xavier, JetPack 5.1


@pytest.mark.parametrize(
    ("host", "build_now", "fragment"),
    [
        (HostGpu(None, ("sm_72",)), False, "TensorRT is not installed"),
        (HostGpu("8.5.2.2", ()), False, "no NVIDIA GPU"),
        (HostGpu("8.5.2.2", ("sm_86",)), False, "has sm_86, the target needs sm_72"),
        (HostGpu("8.6.1", ("sm_72",)), False, "TensorRT 8.6.1, the target has 8.5.2"),
        (HostGpu("8.5.3", ("sm_72",)), False, "TensorRT 8.5.3, the target has 8.5.2"),
        (HostGpu("8.5.2.2", ("sm_86", "sm_72")), True, "matches sm_72"),
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
    a = engine_path(tmp_path / "cache", graph, "sm_72", "8.5.2.2")
    assert a.parent.name == engine_key("sm_72", "8.5.2.2") == "sm_72-trt8.5.2.2"
    assert engine_path(tmp_path / "cache", graph, "sm_72", "8.5.2.2") == a  # restart: same file
    assert engine_path(tmp_path / "cache", graph, "sm_86", "8.5.2.2") != a
    assert engine_path(tmp_path / "cache", graph, "sm_72", "10.3.0") != a
    assert engine_path(tmp_path / "cache", graph, "sm_72", "8.5.2.2", "fp32") != a  # one file per precision
    assert timing_cache_path(tmp_path / "cache", "sm_72", "8.5.2.2").parent == a.parent
    graph.write_bytes(b"graph-2")
    assert engine_path(tmp_path / "cache", graph, "sm_72", "8.5.2.2") != a  # new model, new engine


def test_tensorrt_backend_is_registered_and_explains_missing_packages(tmp_path: Path) -> None:
    from edge_agent.errors import ModelFailedError
    from edge_agent.runtime import open_runtime

    assert BACKENDS["tensorrt"] == "edge_agent.runtime.tensorrt"
    try:
        import tensorrt  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises((ModelFailedError, ImportError)):
            open_runtime("tensorrt", tmp_path / "model.onnx")


def test_jetson_xavier_is_jetpack_5_1_and_its_tensorrt_is_in_the_backends_range() -> None:
    device = load_catalogue().devices["jetson_xavier"]
    assert device["compiler_options"] == {"gpu-code": "sm_72", "trt-ver": "8.5.2", "cuda-ver": "11.4"}
    assert device["software"]["python"] == "3.8" and device["software"]["jetpack"] == "5.1"
    assert "JetPack 5.1" in device["description"]
    check_version(device["compiler_options"]["trt-ver"])  # the tensorrt backend accepts 8.5
    assert nvidia.backend_support(device["compiler_options"]["trt-ver"]) is None


@pytest.mark.parametrize(("version", "fragment"), [("8.2.1", "8.5 <= TensorRT < 11"), ("11.4.0", "removed")])
def test_targets_outside_the_backends_tensorrt_range_are_named(version: str, fragment: str) -> None:
    assert fragment in (nvidia.backend_support(version) or "")


def test_tensorrt_problems_are_listed_for_graphs_tensorrt_would_refuse(
    blob_segmentation: Path, tmp_path: Path
) -> None:
    import onnx

    assert nvidia.tensorrt_problems(blob_segmentation / "model.onnx") == []
    model = onnx.load(str(blob_segmentation / "model.onnx"))
    model.opset_import[0].version = 18
    onnx.save(model, str(tmp_path / "m.onnx"))
    assert any("opset 18" in p for p in nvidia.tensorrt_problems(tmp_path / "m.onnx"))


def test_only_custom_domains_that_nodes_use_need_a_plugin(tmp_path):
    """ONNX Runtime's optimizer imports all its domains; TensorRT minds only the ones nodes use."""
    import onnx
    from onnx import TensorProto, helper

    from edge_agent.packager.trt_rules import check_model

    def model(domain: str) -> onnx.ModelProto:
        node = helper.make_node("Relu" if not domain else "FusedGemm", ["x"], ["y"], domain=domain)
        graph = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        )
        opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
        return helper.make_model(graph, opset_imports=opsets, ir_version=8)

    assert not [p for p in check_model(model("")) if "custom domain" in str(p)]
    assert [p for p in check_model(model("com.microsoft")) if "custom domain 'com.microsoft'" in str(p)]
