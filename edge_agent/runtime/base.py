"""The runtime interface: open a model package's graph, run one bitmap, close."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class RuntimeOptions:
    """Knobs shared by all backends; a backend ignores what it cannot use."""

    intra_op_threads: int = 0  # 0: the runtime's default (all cores)
    inter_op_threads: int = 1
    # ONNX Runtime's workers busy-wait for work after each run by default; in the agent they then hold
    # the cores that gRPC needs to answer (p99 about 2x the raw p50 on 2 cores, 1.4x without; bench/README.md).
    spin_wait: bool = False
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
