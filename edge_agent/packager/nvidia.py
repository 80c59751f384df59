"""NVIDIA targets: build the TensorRT engine now, or ship ONNX plus build settings.

An engine is only valid for one GPU architecture and one TensorRT version, so it is built during
packaging only when this host has TensorRT and a GPU whose compute capability equals `gpu-code`,
and its TensorRT is the `trt-ver` release. The engine is filed under the host's full TensorRT
version, the key the device looks it up by. Otherwise the package carries the ONNX graph and the
settings, and the device builds the engine at install or first start into a cache keyed by GPU
architecture and TensorRT version (edge_agent.runtime.tensorrt), so a restart does not rebuild.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostGpu:
    """What this machine offers for engine building."""

    tensorrt_version: str | None
    gpu_codes: tuple[str, ...]  # e.g. ("sm_75",)


@dataclass(frozen=True)
class EnginePlan:
    build_now: bool
    reason: str


def same_release(host_version: str, target_version: str) -> bool:
    """The host's TensorRT is the target's release: `8.2.1.8` is `8.2.1`, `8.2.3` is not. A plan
    built by one TensorRT version is only loaded by that version (no version-compatible builds)."""
    target = target_version.split(".")
    return host_version.split(".")[: len(target)] == target


def plan_engine_build(options: dict[str, str], host: HostGpu) -> EnginePlan:
    """Decide whether this host can build the target's engine (pure: tested with fake hosts)."""
    gpu_code, trt_version = options["gpu-code"], options["trt-ver"]
    if host.tensorrt_version is None:
        return EnginePlan(False, "TensorRT is not installed on the packaging host")
    if gpu_code not in host.gpu_codes:
        found = ", ".join(host.gpu_codes) or "no NVIDIA GPU"
        return EnginePlan(False, f"the packaging host has {found}, the target needs {gpu_code}")
    if not same_release(host.tensorrt_version, trt_version):
        return EnginePlan(
            False, f"the packaging host has TensorRT {host.tensorrt_version}, the target has {trt_version}"
        )
    return EnginePlan(True, f"host matches {gpu_code} and TensorRT {trt_version}")


def backend_support(trt_version: str) -> str | None:
    """Why the device's tensorrt backend cannot use this TensorRT release, or None when it can (the
    package still runs there on the gpu or cpu backend: it carries the ONNX graph)."""
    from edge_agent.errors import ModelFailedError
    from edge_agent.runtime.tensorrt import check_version

    try:
        check_version(trt_version)
    except ModelFailedError as exc:
        return str(exc)
    return None


def tensorrt_problems(graph: Path) -> list[str]:
    """What TensorRT 8.5 / 10.x would refuse in this graph, checked without a GPU (trt_rules)."""
    import onnx

    from edge_agent.packager.trt_rules import check_model

    return [str(problem) for problem in check_model(onnx.load(str(graph)))]


def detect_host() -> HostGpu:
    """TensorRT version (if importable) and the compute capabilities nvidia-smi reports."""
    try:
        import tensorrt  # type: ignore[import-not-found]

        trt_version: str | None = str(tensorrt.__version__)
    except ImportError:
        trt_version = None
    return HostGpu(trt_version, tuple(_nvidia_smi_codes()))


def _nvidia_smi_codes() -> list[str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("op=detect_gpu nvidia_smi_failed=%s", exc)
        return []
    codes = []
    for line in out.splitlines():
        major, _, minor = line.strip().partition(".")
        if major.isdigit() and minor.isdigit():
            codes.append(f"sm_{major}{minor}")
    return codes
