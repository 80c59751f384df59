"""The GPU extras pin what the backends support, and CI installs none of them."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from edge_agent.errors import ModelFailedError
from edge_agent.runtime import tensorrt as backend

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


@pytest.fixture(scope="module")
def extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["optional-dependencies"]


def test_tensorrt_extra_stays_below_the_release_that_removed_the_api_used(extras) -> None:
    assert backend.MAX_VERSION == (11, 0)
    assert "tensorrt-cu12>=10.0,<11; platform_machine == 'x86_64'" in extras["tensorrt"]
    assert not any(r.startswith("tensorrt>=") or r.startswith("tensorrt ") for r in extras["tensorrt"])


def test_cuda_python_matches_the_hosts_cuda_major(extras) -> None:
    assert "cuda-python>=12.0,<13; platform_machine == 'x86_64'" in extras["tensorrt"]  # CUDA 12 hosts
    assert (
        "cuda-python>=11.8,<12; platform_machine == 'aarch64'" in extras["tensorrt"]
    )  # JetPack 5.1, CUDA 11.4


def test_gpu_extra_is_x86_only_and_never_next_to_the_cpu_build_in_ci(extras) -> None:
    assert extras["gpu"] == ["onnxruntime-gpu>=1.19; platform_machine == 'x86_64'"]
    for name in ("onnxruntime-gpu", "tensorrt", "tensorrt-cu12", "cuda-python", "cuda-bindings"):
        with pytest.raises(metadata.PackageNotFoundError):
            metadata.distribution(name)  # CPU-only CI installs no GPU package


def test_tensorrt_versions_in_and_out_of_range() -> None:
    for good in ("8.5.2.2", "8.6.1", "10.0.1", "10.13.0.35"):
        backend.check_version(good)
    for bad in ("8.2.1.8", "11.0.0", "11.4.0.106", "7.1.3"):
        with pytest.raises(ModelFailedError, match=r"8\.5 <= TensorRT < 11"):
            backend.check_version(bad)
