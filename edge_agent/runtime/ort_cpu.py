"""ONNX Runtime on the CPU: the default backend on every device."""

from __future__ import annotations

import os
from pathlib import Path

from edge_agent.runtime.base import RuntimeOptions
from edge_agent.runtime.ort_session import NarrowRuns, OrtRuntime


def open_runtime(graph: Path, options: RuntimeOptions) -> OrtRuntime:
    return OrtRuntime(graph, options, ["CPUExecutionProvider"], backend="cpu", narrow=narrow_runs(options))


def narrow_runs(options: RuntimeOptions, cores: int | None = None) -> NarrowRuns | None:
    """Overlapping runs share the cores a lone run takes: up to one run per core, each on its share
    (one core each on 2 cores, 4 each for 2 runs on Jetson Xavier's 8). None where there is
    nothing to share: one run at a time, or runs that take one core anyway."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    wide = options.intra_op_threads or cores
    runs = min(options.parallel_runs, wide)
    if runs < 2:
        return None
    return NarrowRuns(runs=runs, threads=wide // runs)
