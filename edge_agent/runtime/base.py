"""The runtime interface: open a model package's graph, run one bitmap, close."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

# spin mode -> ONNX Runtime session config entries (every key exists from ONNX Runtime 1.19 on).
SPIN_MODES: dict[str, dict[str, str]] = {
    "run": {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"},
    "off": {"session.intra_op.allow_spinning": "0"},
    "always": {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "0"},
}


@dataclass(frozen=True)
class RuntimeOptions:
    """Knobs shared by all backends; a backend ignores what it cannot use."""

    intra_op_threads: int = 0  # 0: the runtime's default (all cores)
    inter_op_threads: int = 1
    # How ONNX Runtime's workers wait for work (SPIN_MODES). "run", the measured default: they spin
    # between the operators of a run (a trained graph is many small ops; sleeping between them cost the
    # agent 10-15% on the cookies model) and stop when the run returns, so they do not hold the cores
    # that gRPC needs between calls. bench/trained_overhead.py compares the modes (bench/README.md).
    spin: str = "run"
    # Runs of one model the registry lets in at once (`serve --concurrency`). The CPU backend serves
    # them with a session on every core and a second one that overlapping runs share (run_width.py).
    parallel_runs: int = 1
    device_id: int = 0
    cache_dir: Path | None = None  # compiled-engine cache (TensorRT)
    # Told what a slow load is doing (a TensorRT engine build takes minutes); the registry shows it
    # in DescribeModel's status message while the model is STARTING. Backends that load fast ignore it.
    progress: Callable[[str], None] | None = field(default=None, compare=False)


class Runtime(Protocol):
    """One loaded graph. `run` must be safe to call from several threads at once."""

    backend: str

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph on a uint8 [H, W, 3] bitmap and return its outputs by name."""
        ...

    def close(self) -> None:
        """Release the session and its memory."""
        ...
