"""ONNX Runtime session options on a trained model, in one process: each p50 against the default.

Every configuration is its own session of the same graph; blocks of calls alternate between them,
each after a 0.2 s pause (spinning workers of the previous block's session would otherwise slow
the next one: bench/README.md). Outputs are checked equal to the default session's first.

Run: .venv/bin/python bench/probes/session_options.py MODEL_DIR [ROUNDS]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trained_overhead import frame

AGENT_RUN = [("session.intra_op.allow_spinning", "1"), ("session.force_spinning_stop", "1")]
CONFIGS: dict[str, dict] = {
    "default": {},
    "agent (spin run)": {"entries": AGENT_RUN},
    "denormals as zero": {"entries": [("session.set_denormal_as_zero", "1")]},
    "dynamic_block_base 4": {"entries": [("session.dynamic_block_base", "4")]},
    "worker pinned to core 2": {"intra": 2, "entries": [("session.intra_op_thread_affinities", "2")]},
    "CPU arena off": {"attrs": {"enable_cpu_mem_arena": False}},
    "memory patterns off": {"attrs": {"enable_mem_pattern": False}},
    "one thread": {"intra": 1},
}


def session(graph: Path, intra: int | None = None, entries=(), attrs=None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    if intra is not None:
        options.intra_op_num_threads = intra
    for key, value in entries:
        options.add_session_config_entry(key, value)
    for key, value in (attrs or {}).items():
        setattr(options, key, value)
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


def main() -> None:
    model, rounds = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 10
    sessions = {name: session(model / "model.onnx", **config) for name, config in CONFIGS.items()}
    first = sessions["default"].get_inputs()[0]
    height, width = first.shape[:2]
    feeds = {first.name: frame(width, height)}
    reference = sessions["default"].run(None, feeds)
    for name, candidate in sessions.items():
        for want, got in zip(reference, candidate.run(None, feeds), strict=True):
            assert np.allclose(want, got, atol=1e-3), f"{name} answers differently"
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for index in range(rounds):
        for name in list(sessions)[:: 1 if index % 2 == 0 else -1]:
            time.sleep(0.2)
            sessions[name].run(None, feeds)
            for _ in range(10):
                started = time.perf_counter()
                sessions[name].run(None, feeds)
                times[name].append(time.perf_counter() - started)
    base = float(np.percentile(times["default"], 50))
    print(f"{model}; onnxruntime {ort.__version__}; {rounds} rounds x 10 calls\n")
    print("| session | p50 ms | p50 / default p50 |\n|---|---|---|")
    for name, values in times.items():
        p50 = float(np.percentile(values, 50))
        print(f"| {name} | {p50 * 1e3:.2f} | {p50 / base:.3f} |")


if __name__ == "__main__":
    main()
