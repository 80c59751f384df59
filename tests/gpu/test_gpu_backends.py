"""The NVIDIA backends on a real GPU, against ONNX Runtime CPU on the same package and images.

Skipped with the reason on machines without a GPU, TensorRT or onnxruntime-gpu (CI has none);
scripts/gpu-check.sh runs them. EDGE_AGENT_GPU_MODEL=DIR adds a trained package (the script passes
the cookies model) to the small test packages.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from edge_agent.model_package import OUTPUT_MASK, OUTPUT_SCORE, load
from edge_agent.runtime import RuntimeOptions, open_runtime
from edge_agent.runtime.ort_gpu import installed_runtimes
from edge_agent.runtime.precision import compare
from edge_agent.runtime.samples import package_samples
from edge_agent.testing.onnx_models import bright_blob_package, heavy_package

pytestmark = pytest.mark.gpu


def packages(root: Path) -> list[Path]:
    found = [
        bright_blob_package(root / "blob-seg", segmentation=True).directory,
        heavy_package(root / "heavy", 320, 240, side=224, layers=6, channels=32).directory,
    ]
    trained = os.environ.get("EDGE_AGENT_GPU_MODEL")
    if trained:
        found.append(Path(trained))
    return found


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return packages(tmp_path_factory.mktemp("gpu-models"))


def agreement(backend: str, directory: Path, cache: Path):
    package = load(directory)
    manifest = package.manifest
    images = package_samples(directory, manifest.height, manifest.width)
    gpu = open_runtime(backend, package.graph_path, RuntimeOptions(cache_dir=cache))
    cpu = open_runtime("cpu", package.graph_path, RuntimeOptions())
    try:
        return gpu, compare(cpu.run, gpu.run, images, manifest.threshold)
    finally:
        cpu.close()


def test_only_onnxruntime_gpu_is_installed(ort_cuda) -> None:
    assert installed_runtimes() == ["onnxruntime-gpu"], installed_runtimes()


@pytest.mark.parametrize("backend", ["gpu", "gpu-cuda"])
def test_onnx_runtime_gpu_decides_like_the_cpu(backend, ort_cuda, models, tmp_path) -> None:
    for directory in models:
        runtime, result = agreement(backend, directory, tmp_path / "cache")
        try:
            assert "CUDAExecutionProvider" in runtime._session.get_providers()
            assert result.decisions_equal and result.max_score_diff < 1e-3, (directory, result.describe())
        finally:
            runtime.close()


def test_tensorrt_builds_checks_and_caches_the_engine(tensorrt_module, models, tmp_path) -> None:
    for directory in models:
        runtime, result = agreement("tensorrt", directory, tmp_path / "cache")
        try:
            assert runtime.precision in ("fp16", "fp32") and runtime.reason
            assert result.decisions_equal, (directory, runtime.precision, result.describe())
            if runtime.precision == "fp32":
                assert result.max_score_diff < 1e-3, result.describe()
        finally:
            runtime.close()
        assert list((tmp_path / "cache").rglob("*.engine")) and list(
            (tmp_path / "cache").rglob("timing.cache")
        )
        again = open_runtime(
            "tensorrt", load(directory).graph_path, RuntimeOptions(cache_dir=tmp_path / "cache")
        )
        try:
            assert again.build_seconds == 0.0 and again.precision == runtime.precision  # cached, not rebuilt
        finally:
            again.close()


def test_tensorrt_runs_from_many_threads(tensorrt_module, models, tmp_path) -> None:
    directory = models[0]
    package = load(directory)
    runtime = open_runtime("tensorrt", package.graph_path, RuntimeOptions(cache_dir=tmp_path))
    cpu = open_runtime("cpu", package.graph_path, RuntimeOptions())
    image = np.full((package.manifest.height, package.manifest.width, 3), 255, np.uint8)
    want = cpu.run(image)
    failures: list[object] = []

    def work() -> None:
        try:
            for _ in range(20):
                got = runtime.run(image)
                assert got[OUTPUT_SCORE].tolist() == pytest.approx(want[OUTPUT_SCORE].tolist(), abs=1e-2)
                if OUTPUT_MASK in want:
                    assert np.array_equal(got[OUTPUT_MASK], want[OUTPUT_MASK])
        except Exception as exc:
            failures.append(exc)

    try:
        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
    finally:
        runtime.close()
        cpu.close()
