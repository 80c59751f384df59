"""ONNX Runtime session shared by the CPU and GPU backends (they differ only in providers)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import ModelPackageError, ModelStoppedError
from edge_agent.model_package import INPUT_IMAGE
from edge_agent.runtime.base import SPIN_MODES, RuntimeOptions
from edge_agent.runtime.run_width import NarrowRuns, RunWidths

# No telemetry from an agent on a factory device. ONNX Runtime 1.32 starts it when first imported:
# it writes a device id and an event database under $HOME/.cache/Microsoft/DeveloperTools/.onnxruntime
# (or logs "Failed to persist telemetry device ID" where HOME is not writable). Only this variable,
# set before that import, stops it; disable_telemetry_events() afterwards still writes the files.
# `edge-agent serve` sets it before anything imports ONNX Runtime; this covers library use.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
import onnxruntime as ort

ort.disable_telemetry_events()  # the events themselves, in versions that honour only the call


class OrtRuntime:
    """An InferenceSession that feeds the client's bitmap as the graph's uint8 input.

    With `narrow` it holds a second session of the same graph on fewer threads, and `RunWidths`
    sends each run to one of the two (run_width.py says when and why).
    """

    def __init__(
        self,
        graph: Path,
        options: RuntimeOptions,
        providers: Sequence[Any],
        backend: str,
        narrow: NarrowRuns | None = None,
    ) -> None:
        self.backend = backend
        self._session: ort.InferenceSession | None = _open_session(
            graph, options, providers, options.intra_op_threads
        )
        inputs = self._session.get_inputs()
        if [i.name for i in inputs] != [INPUT_IMAGE] or inputs[0].type != "tensor(uint8)":
            raise ModelPackageError(
                f"graph {graph} must take one input {INPUT_IMAGE!r} of type uint8; "
                f"it takes {[(i.name, i.type) for i in inputs]}"
            )
        self.input_shape = tuple(inputs[0].shape)
        self.output_names = [o.name for o in self._session.get_outputs()]
        self._narrow: ort.InferenceSession | None = None
        self._widths: RunWidths | None = None
        if narrow is not None:
            self._narrow = _open_session(graph, options, providers, narrow.threads)
            self._widths = RunWidths(narrow.runs)
            if all(isinstance(side, int) for side in self.input_shape):
                # The registry warms the wide session up; the first overlapping call must not pay
                # for this one's first run (its arena and kernels).
                zeros = np.zeros(self.input_shape, dtype=np.uint8)
                try:
                    self._narrow.run(self.output_names, {INPUT_IMAGE: zeros})
                except Exception as exc:  # ORT raises its own exception types
                    raise ModelPackageError(f"ONNX Runtime cannot run {graph}: {_first_line(exc)}") from None
        self._lock = threading.Lock()

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        if self._widths is None:
            values = self._live(self._session).run(self.output_names, {INPUT_IMAGE: image})
        else:
            with self._widths.choose() as wide:
                session = self._live(self._session if wide else self._narrow)
                values = session.run(self.output_names, {INPUT_IMAGE: image})
        return dict(zip(self.output_names, values))

    def close(self) -> None:
        with self._lock:
            self._session = None
            self._narrow = None

    @staticmethod
    def _live(session: ort.InferenceSession | None) -> ort.InferenceSession:
        if session is None:
            raise ModelStoppedError("the model was stopped before this request ran; start it again")
        return session


def _open_session(
    graph: Path, options: RuntimeOptions, providers: Sequence[Any], intra_op_threads: int
) -> ort.InferenceSession:
    session_options = ort.SessionOptions()
    session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session_options.intra_op_num_threads = intra_op_threads
    session_options.inter_op_num_threads = options.inter_op_threads
    session_options.log_severity_level = 3
    for key, value in SPIN_MODES[options.spin].items():
        session_options.add_session_config_entry(key, value)
    try:
        return ort.InferenceSession(str(graph), session_options, providers=list(providers))
    except Exception as exc:  # ORT raises its own exception types for corrupt graphs
        raise ModelPackageError(f"ONNX Runtime cannot load {graph}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
