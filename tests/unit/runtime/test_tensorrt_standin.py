"""The native TensorRT backend end to end, on stand-ins for TensorRT and the CUDA runtime.

There is no GPU here: `standins.py` replaces `tensorrt` and cuda-python with modules that expose
only the API of TensorRT 8.5 or 10.x (and 11.x, to show the pin) and run the graph with ONNX
Runtime CPU. What this proves: the backend calls only names both supported releases have (a
removed or deprecated name fails here), sets shapes, sizes buffers from the manifest, selects the
device in every thread, caches engines by GPU, TensorRT version and graph, and keeps FP16 only
when it decides like the CPU. What it cannot prove: GPU numerics and speed (scripts/gpu-check.sh).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge_agent.errors import ModelFailedError
from edge_agent.model_package import OUTPUT_SCORE, load
from edge_agent.protocol.edge_agent_pb2 import RUNNING, STARTING
from edge_agent.registry import ModelRegistry, RegistryConfig
from edge_agent.runtime import RuntimeOptions, open_runtime
from edge_agent.runtime import tensorrt as backend
from edge_agent.testing.onnx_models import bright_blob_package
from tests.unit.runtime.standins import Knobs, install

SUPPORTED = ["8.5.2.2", "10.3.0.26"]
pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")  # a deprecated TensorRT/CUDA call fails


@pytest.fixture
def knobs() -> Knobs:
    return Knobs()


@pytest.fixture
def seg_package(tmp_path: Path):
    return bright_blob_package(tmp_path / "seg", segmentation=True)


def images(height: int = 96, width: int = 128) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    out = [np.zeros((height, width, 3), np.uint8), np.full((height, width, 3), 255, np.uint8)]
    for _ in range(3):
        image = rng.integers(40, 180, (height, width, 3), dtype=np.uint8)
        image[10:30, 20:60] = 250
        image[50:70, 70:90] = 5
        out.append(image)
    return out


@pytest.mark.parametrize("bindings", [True, False], ids=["cuda.bindings", "cuda.cudart"])
@pytest.mark.parametrize("version", SUPPORTED)
def test_engine_builds_runs_like_the_cpu_and_is_cached_by_gpu_version_and_graph(
    monkeypatch, tmp_path, knobs, seg_package, version, bindings
):
    install(monkeypatch, version, knobs, bindings=bindings)
    cache = tmp_path / "cache"
    runtime = open_runtime("tensorrt", seg_package.graph_path, RuntimeOptions(cache_dir=cache))
    cpu = open_runtime("cpu", seg_package.graph_path, RuntimeOptions(intra_op_threads=1))
    try:
        assert runtime.precision == "fp16" and "decides like the CPU" in runtime.reason
        for image in images():
            got, want = runtime.run(image), cpu.run(image)
            assert np.array_equal(got["anomaly_mask"], want["anomaly_mask"])
            assert got["anomaly_score"] == pytest.approx(want["anomaly_score"], abs=1e-3)
            assert got["label_areas"] == pytest.approx(want["label_areas"], abs=1e-3)
    finally:
        runtime.close()
        cpu.close()
    folder = cache / f"sm_86-trt{version}"
    digest = backend.graph_digest(seg_package.graph_path)
    assert (folder / f"{digest}-fp16.engine").is_file()
    assert json.loads((folder / f"{digest}.precision.json").read_text())["precision"] == "fp16"
    assert (folder / "timing.cache").is_file()
    assert knobs.builds == ["fp16"]

    again = open_runtime("tensorrt", seg_package.graph_path, RuntimeOptions(cache_dir=cache))
    again.close()
    assert knobs.builds == ["fp16"], "a restart must load the cached engine, not rebuild it"


@pytest.mark.parametrize("version", SUPPORTED)
def test_fp16_that_changes_decisions_falls_back_to_fp32_with_the_reason(
    monkeypatch, tmp_path, knobs, seg_package, version, caplog
):
    install(monkeypatch, version, knobs)
    knobs.fp16_score_offset = 0.6  # FP16 scores drift across the threshold
    runtime = open_runtime("tensorrt", seg_package.graph_path, RuntimeOptions(cache_dir=tmp_path))
    try:
        assert runtime.precision == "fp32"
        assert (
            "FP16 disagrees with the CPU session" in runtime.reason and "decisions changed" in runtime.reason
        )
        assert knobs.builds == ["fp16", "fp32"]
        assert any("fallback=fp32" in r.getMessage() for r in caplog.records)
        bright = np.full((96, 128, 3), 255, np.uint8)
        assert runtime.run(bright)[OUTPUT_SCORE].tolist() == [1.0]  # FP32: no drift
        assert knobs.timing_cache_loaded[-1] > 0, "the FP32 build reuses the FP16 build's timing cache"
    finally:
        runtime.close()
    reopened = open_runtime("tensorrt", seg_package.graph_path, RuntimeOptions(cache_dir=tmp_path))
    try:
        assert reopened.precision == "fp32" and knobs.builds == ["fp16", "fp32"]
    finally:
        reopened.close()


def test_a_gpu_without_fast_fp16_builds_fp32_only(monkeypatch, tmp_path, knobs, seg_package):
    install(monkeypatch, "8.5.2.2", knobs)
    knobs.compute_capability = (6, 1)
    runtime = open_runtime("tensorrt", seg_package.graph_path, RuntimeOptions(cache_dir=tmp_path))
    runtime.close()
    assert runtime.precision == "fp32" and knobs.builds == ["fp32"]
    assert (tmp_path / "sm_61-trt8.5.2.2").is_dir()


@pytest.mark.parametrize("version", ["11.4.0", "8.2.1"])
def test_tensorrt_outside_the_pinned_range_is_refused_with_the_fix(
    monkeypatch, tmp_path, knobs, seg_package, version
):
    install(monkeypatch, version, knobs)
    with pytest.raises(ModelFailedError, match=r"8\.5 <= TensorRT < 11.*tensorrt>=10\.0,<11"):
        open_runtime("tensorrt", seg_package.graph_path, RuntimeOptions(cache_dir=tmp_path))
    assert knobs.builds == []


def test_the_stand_ins_are_strict_about_the_api(monkeypatch, knobs):
    """The checks above mean something only if the stand-ins refuse what the releases lack."""
    trt10, _ = install(monkeypatch, "10.3.0.26", knobs)
    with pytest.warns(DeprecationWarning):
        assert trt10.Builder(trt10.Logger()).platform_has_fast_fp16
    assert not hasattr(trt10.Builder(trt10.Logger()), "build_engine")
    trt11, _ = install(monkeypatch, "11.4.0", knobs)
    assert not hasattr(trt11.BuilderFlag, "FP16")
    assert not hasattr(trt11.Builder(trt11.Logger()), "platform_has_fast_fp16")


@pytest.mark.parametrize("version", SUPPORTED)
def test_every_thread_that_runs_the_engine_selects_its_gpu(
    monkeypatch, tmp_path, knobs, seg_package, version
):
    install(monkeypatch, version, knobs)
    runtime = open_runtime(
        "tensorrt", seg_package.graph_path, RuntimeOptions(cache_dir=tmp_path, device_id=1)
    )
    results: list[object] = []

    def detect() -> None:
        try:
            results.append(runtime.run(np.full((96, 128, 3), 255, np.uint8))[OUTPUT_SCORE].tolist())
        except Exception as exc:
            results.append(exc)

    try:
        threads = [threading.Thread(target=detect) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [[1.0]] * 4
        assert sum(knobs.runs_by_thread.values()) == 6 + 4  # the FP16 check's 6 samples, then 4 requests
        assert len(knobs.runs_by_thread) >= 2  # threads other than the one that opened the engine ran it
        # Without the per-thread selection the stand-in, like CUDA, runs on the wrong device and fails:
        monkeypatch.setattr(backend.Cuda, "use_device", lambda self: None)
        results.clear()
        thread = threading.Thread(target=detect)
        thread.start()
        thread.join()
        assert isinstance(results[0], ModelFailedError)
    finally:
        runtime.close()


def test_outputs_are_sized_from_the_manifest_when_the_engine_reports_minus_one(
    monkeypatch, tmp_path, knobs, seg_package
):
    model = onnx.load(str(seg_package.graph_path))
    dim = model.graph.output[0].type.tensor_type.shape.dim[0]
    dim.Clear()
    dim.dim_param = "score_dim"  # what torch's exporter wrote before the shapes were fixed
    onnx.save(model, str(seg_package.graph_path))
    install(monkeypatch, "10.3.0.26", knobs)
    runtime = open_runtime("tensorrt", seg_package.graph_path, RuntimeOptions(cache_dir=tmp_path))
    try:
        out = runtime.run(np.full((96, 128, 3), 255, np.uint8))
        assert out[OUTPUT_SCORE].shape == (1,) and out["anomaly_mask"].shape == (96, 128, 3)
    finally:
        runtime.close()


def test_a_graph_tensorrt_cannot_parse_fails_with_the_parser_errors(
    monkeypatch, tmp_path, knobs, seg_package
):
    """The previous export: a Gather on a uint8 palette, which TensorRT refuses."""
    model = onnx.load(str(seg_package.graph_path))
    for init in model.graph.initializer:
        if init.name == "palette":
            init.CopyFrom(
                onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init).astype(np.uint8), "palette")
            )
    nodes = [n for n in model.graph.node if not (n.op_type == "Cast" and n.output[0] == "anomaly_mask")]
    for node in nodes:
        if node.op_type == "Gather" and node.input[0] == "palette":
            node.output[0] = "anomaly_mask"
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(seg_package.graph_path))
    install(monkeypatch, "8.5.2.2", knobs)
    with pytest.raises(ModelFailedError, match=r"TensorRT cannot parse .*uint8"):
        open_runtime("tensorrt", seg_package.graph_path, RuntimeOptions(cache_dir=tmp_path))


def test_carried_sample_images_are_part_of_the_fp16_check(monkeypatch, tmp_path, knobs, seg_package):
    from edge_agent.packager.samples import write_package_samples

    write_package_samples(seg_package.directory, images()[2:])
    install(monkeypatch, "10.3.0.26", knobs)
    runtime = open_runtime("tensorrt", seg_package.graph_path, RuntimeOptions(cache_dir=tmp_path))
    runtime.close()
    assert runtime.reason.startswith(
        "FP16 decides like the CPU session on 9 samples"
    )  # 3 carried + 6 synthetic


def test_describe_model_says_the_engine_is_building_while_start_model_waits(
    monkeypatch, tmp_path, knobs, seg_package
):
    install(monkeypatch, "8.5.2.2", knobs)
    knobs.build_gate = threading.Event()
    config = RegistryConfig(backend="tensorrt", runtime=RuntimeOptions(cache_dir=tmp_path / "cache"))
    registry = ModelRegistry(config, static_models={"seg": seg_package.directory})
    try:
        assert registry.start("seg") == STARTING  # StartModel returns at once
        deadline = threading.Event()
        for _ in range(600):
            info = registry.describe("seg")
            if info.status_message.startswith("building"):
                break
            deadline.wait(0.05)
        assert info.status == STARTING
        assert info.status_message.startswith("building the TensorRT FP16 engine (first start on this GPU")
        knobs.build_gate.set()
        for _ in range(600):
            info = registry.describe("seg")
            if info.status != STARTING:
                break
            deadline.wait(0.05)
        assert info.status == RUNNING, info.status_message
        assert info.status_message.startswith("running on tensorrt")
    finally:
        knobs.build_gate.set()
        registry.close()


def test_manifest_shapes_match_the_contract(seg_package):
    shapes = backend.output_shapes(load(seg_package.directory).manifest)
    assert shapes == {"anomaly_score": (1,), "anomaly_mask": (96, 128, 3), "label_areas": (3,)}


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_the_benchmark_override_serves_one_precision_without_the_check(
    monkeypatch, tmp_path, knobs, seg_package, precision
):
    install(monkeypatch, "10.3.0.26", knobs)
    monkeypatch.setenv(backend.PRECISION_ENV, precision)
    knobs.fp16_score_offset = 0.6  # would fail the check: the override does not run it
    runtime = open_runtime("tensorrt", seg_package.graph_path, RuntimeOptions(cache_dir=tmp_path))
    runtime.close()
    assert runtime.precision == precision and knobs.builds == [precision]
    assert not list(tmp_path.rglob("*.precision.json"))  # an override is not remembered as the decision


def test_an_unwritable_engine_cache_fails_the_start_with_the_fix(monkeypatch, tmp_path, knobs, seg_package):
    install(monkeypatch, "10.3.0.26", knobs)
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(ModelFailedError, match="writable --engine-cache"):
        open_runtime("tensorrt", seg_package.graph_path, RuntimeOptions(cache_dir=blocker))
