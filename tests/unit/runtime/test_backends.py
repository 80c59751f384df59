"""Backend selection. No GPU here: the provider choice is a pure function of what ONNX Runtime offers
and which packages are installed, so it is tested with those lists; running on a GPU is checked by
scripts/gpu-check.sh (tests/gpu, bench/gpu.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.errors import InvalidInputError, ModelFailedError, ModelStoppedError
from edge_agent.runtime import RuntimeOptions, open_runtime
from edge_agent.runtime.ort_gpu import check_install, decode_version, gpu_providers, installed_runtimes
from edge_agent.testing.onnx_models import bright_blob_package


def names(providers):
    return [p if isinstance(p, str) else p[0] for p in providers]


def test_gpu_backend_without_cuda_says_which_package_to_install():
    with pytest.raises(ModelFailedError, match=r"onnxruntime-gpu"):
        gpu_providers(RuntimeOptions(), ["CPUExecutionProvider"])


def test_both_onnxruntime_packages_installed_is_refused_with_the_fix():
    with pytest.raises(
        ModelFailedError, match=r"both onnxruntime-gpu and onnxruntime .*pip uninstall -y onnxruntime"
    ):
        check_install(["onnxruntime", "onnxruntime-gpu"], ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(ModelFailedError, match=r"offers \['CPUExecutionProvider'\]. Fix: pip uninstall"):
        check_install(["onnxruntime"], ["CPUExecutionProvider"])
    check_install(
        ["onnxruntime-gpu"], ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )  # the one good install


def test_this_cpu_install_has_only_onnxruntime():
    """CI installs no GPU package: the GPU backend refuses with the fix instead of running on the CPU."""
    assert "onnxruntime-gpu" not in installed_runtimes() and "onnxruntime" in installed_runtimes()
    with pytest.raises(ModelFailedError, match="onnxruntime-gpu"):
        open_runtime("gpu", Path("model.onnx"))


def test_tensorrt_ep_engines_are_cached_under_the_tensorrt_version_with_a_timing_cache(tmp_path):
    options = RuntimeOptions(device_id=1, cache_dir=tmp_path / "engines")
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    providers, reason = gpu_providers(options, available, trt_version="10.3.0")
    assert names(providers) == available
    trt = providers[0][1]
    folder = tmp_path / "engines" / "ort-trt10.3.0"
    assert trt["trt_engine_cache_enable"] and trt["trt_engine_cache_path"] == str(folder)
    assert trt["trt_timing_cache_enable"] and trt["trt_timing_cache_path"] == str(folder)
    assert trt["trt_fp16_enable"] is False
    assert trt["device_id"] == 1 and providers[1][1]["device_id"] == 1
    assert folder.is_dir() and "TensorRT 10.3.0 found" in reason


def test_tensorrt_ep_without_the_tensorrt_library_falls_back_to_cuda_and_says_why():
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    providers, reason = gpu_providers(RuntimeOptions(), available, trt_version=None)
    assert names(providers) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert "libnvinfer" in reason
    providers, reason = gpu_providers(RuntimeOptions(), available, trt_version="8.5.2", use_tensorrt=False)
    assert names(providers)[0] == "CUDAExecutionProvider" and "gpu-cuda" in reason


def test_cuda_only_machine_skips_tensorrt():
    providers, reason = gpu_providers(RuntimeOptions(), ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert names(providers) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert "no TensorRT execution provider" in reason


@pytest.mark.parametrize(
    ("number", "version"), [(8502, "8.5.2"), (8601, "8.6.1"), (100300, "10.3.0"), (101203, "10.12.3")]
)
def test_tensorrt_library_versions_decode_in_both_numbering_schemes(number, version):
    assert decode_version(number) == version


def test_unknown_backend_is_refused_with_the_choices():
    with pytest.raises(InvalidInputError, match=r"choose one of \['cpu', 'gpu'"):
        open_runtime("tpu", Path("x.onnx"))


def test_cpu_runtime_runs_and_closes(tmp_path):
    package = bright_blob_package(tmp_path / "p")
    runtime = open_runtime("cpu", package.graph_path, RuntimeOptions(intra_op_threads=1))
    outputs = runtime.run(np.full((96, 128, 3), 255, np.uint8))
    assert outputs["anomaly_score"].tolist() == [1.0]
    runtime.close()
    with pytest.raises(ModelStoppedError, match="stopped"):
        runtime.run(np.zeros((96, 128, 3), np.uint8))
