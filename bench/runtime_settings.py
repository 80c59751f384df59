"""ONNX Runtime session settings on one model package, in this process: which spin mode is fastest.

Each configuration gets its own session on the same graph; blocks of calls alternate between them
over several rounds (drift cancels), and p50/p99 are reported as ratios to ONNX Runtime's default
session (the raw baseline of bench/trained_overhead.py). With `--busy-thread`, a Python thread
wakes every 0.5 ms while the model runs, as the agent's gRPC threads do: spinning workers that hold
the cores then show up in the latency.

Run: .venv/bin/python bench/runtime_settings.py runs/cookies-model [--rounds 5] [--calls 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_overhead import percentile, time_calls

from edge_agent.model_package import INPUT_IMAGE
from edge_agent.model_package import load as load_package
from edge_agent.runtime import RuntimeOptions, open_runtime
from edge_agent.runtime.base import SPIN_MODES


def sessions(graph: Path, threads: int) -> dict[str, object]:
    """name -> a callable running the graph once."""
    default = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    out: dict[str, object] = {"default": default}
    for mode in SPIN_MODES:
        runtime = open_runtime("cpu", graph, RuntimeOptions(intra_op_threads=threads, spin=mode))
        out[f"agent spin={mode}"] = runtime._session  # the agent's own session options
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--busy-thread", action="store_true", help="a thread that wakes every 0.5 ms")
    args = parser.parse_args()
    package = load_package(args.package)
    manifest = package.manifest
    image = np.random.default_rng(0).integers(0, 255, (manifest.height, manifest.width, 3), dtype=np.uint8)
    runs = {
        name: (lambda s=s: s.run(None, {INPUT_IMAGE: image}))
        for name, s in sessions(package.graph_path, args.threads).items()
    }
    stop = threading.Event()

    def wake_often() -> None:
        while not stop.is_set():
            time.sleep(0.0005)

    if args.busy_thread:
        threading.Thread(target=wake_often, daemon=True).start()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        time_calls(fn, 3)
    for _ in range(args.rounds):
        for name, fn in runs.items():
            samples[name] += time_calls(fn, args.calls)
    stop.set()
    base = percentile(samples["default"], 50)
    print(
        f"\n{args.package} ({manifest.width}x{manifest.height}), cpu cores {os.cpu_count()}, "
        f"onnxruntime {ort.__version__}, busy thread: {args.busy_thread}\n"
    )
    print("| session | p50 ms | p99 ms | p50 / default p50 | p99 / default p50 |")
    print("|---|---|---|---|---|")
    for name, values in samples.items():
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(f"| {name} | {p50:.1f} | {p99:.1f} | {p50 / base:.3f} | {p99 / base:.3f} |")


if __name__ == "__main__":
    main()
