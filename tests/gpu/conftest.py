"""GPU tests: run by scripts/gpu-check.sh on an NVIDIA machine; skipped, with the reason, elsewhere."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs an NVIDIA GPU (scripts/gpu-check.sh runs these)")


def nvidia_gpus() -> list[str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in out.splitlines() if line.startswith("GPU ")]


def tegra() -> bool:
    return Path("/etc/nv_tegra_release").is_file()  # Jetson: no nvidia-smi before JetPack 6


@pytest.fixture(scope="session")
def gpu() -> str:
    gpus = nvidia_gpus()
    if not gpus and not tegra():
        pytest.skip(
            "no NVIDIA GPU on this machine (nvidia-smi lists none): scripts/gpu-check.sh runs these on one"
        )
    return gpus[0] if gpus else "Jetson (Tegra)"


@pytest.fixture(scope="session")
def tensorrt_module(gpu: str):
    try:
        import tensorrt  # type: ignore[import-not-found]
    except ImportError as exc:
        pytest.skip(f"TensorRT's Python bindings are not installed ({exc}); see docs/gpu.md")
    try:
        from edge_agent.runtime.tensorrt import _cudart

        _cudart()
    except Exception as exc:
        pytest.skip(f"cuda-python is not usable: {exc}")
    return tensorrt


@pytest.fixture(scope="session")
def ort_cuda(gpu: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        pytest.skip(f"this onnxruntime has no CUDA provider ({available}): install onnxruntime-gpu alone")
    return available
