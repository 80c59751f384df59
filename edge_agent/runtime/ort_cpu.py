"""ONNX Runtime on the CPU: the default backend on every device."""

from __future__ import annotations

from pathlib import Path

from edge_agent.runtime.base import RuntimeOptions
from edge_agent.runtime.ort_session import OrtRuntime
from edge_agent.runtime.run_width import narrow_runs


def open_runtime(graph: Path, options: RuntimeOptions) -> OrtRuntime:
    return OrtRuntime(graph, options, ["CPUExecutionProvider"], backend="cpu", narrow=narrow_runs(options))
