"""Backend selection. No GPU here: the provider choice is a pure function of what ONNX Runtime offers,
so it is tested with provider lists; running on a GPU is checked on a GPU machine (see bench/README.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.errors import InvalidInputError, ModelFailedError, ModelStoppedError
from edge_agent.runtime import RuntimeOptions, open_runtime
from edge_agent.runtime.ort_gpu import gpu_providers
from edge_agent.testing.onnx_models import bright_blob_package


def test_gpu_backend_without_cuda_says_which_package_to_install():
    with pytest.raises(ModelFailedError, match=r"onnxruntime-gpu"):
        gpu_providers(RuntimeOptions(), ["CPUExecutionProvider"])


def test_tensorrt_comes_first_with_an_engine_cache_then_cuda_then_cpu(tmp_path):
    options = RuntimeOptions(device_id=1, cache_dir=tmp_path / "engines")
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    providers = gpu_providers(options, available)
    assert [p if isinstance(p, str) else p[0] for p in providers] == available
    trt = providers[0][1]
    assert trt["trt_engine_cache_enable"] and trt["trt_engine_cache_path"] == str(tmp_path / "engines")
    assert trt["device_id"] == 1 and providers[1][1]["device_id"] == 1
    assert (tmp_path / "engines").is_dir()


def test_cuda_only_machine_skips_tensorrt():
    providers = gpu_providers(RuntimeOptions(), ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert [p if isinstance(p, str) else p[0] for p in providers] == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]


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
