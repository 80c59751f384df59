"""ONNX Runtime on the CPU: the default backend on every device."""

from __future__ import annotations

import os
from pathlib import Path

from edge_agent.runtime.base import RuntimeOptions
from edge_agent.runtime.ort_session import OrtRuntime


def open_runtime(graph: Path, options: RuntimeOptions) -> OrtRuntime:
    # Narrow runs beside each other only pay where a run could otherwise take several cores.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    wide = options.intra_op_threads or cores
    narrow = options.parallel_runs if options.parallel_runs > 1 and wide > 1 else 0
    return OrtRuntime(graph, options, ["CPUExecutionProvider"], backend="cpu", narrow_runs=narrow)
