"""The machine's own speed over time: the same ONNX Runtime run back to back, second by second.

Why: on the shared development machine the trained cookies model takes about 12 ms for a while and
about 21 ms for a while, switching every few seconds to minutes whatever this process does. Any p99
over more than a few seconds then holds the slow speed, for the raw call as much as for the agent.
This prints each second's median and the share of runs slower than 1.4x the fastest tenth.

Run: .venv/bin/python bench/probes/machine_modes.py MODEL_DIR [SECONDS]
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


def main() -> None:
    model, seconds = Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    session = ort.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    feeds = {first.name: frame(first.shape[1], first.shape[0])}
    for _ in range(5):
        session.run(None, feeds)
    starts, took = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        session.run(None, feeds)
        starts.append(started)
        took.append(time.perf_counter() - started)
    at = np.array(starts) - starts[0]
    ms = np.array(took) * 1e3
    fast = float(np.percentile(ms, 10))
    slow = ms > 1.4 * fast
    print(
        f"{model}: {len(ms)} runs in {seconds:.0f} s; p10 {fast:.2f} ms, p50 {np.median(ms):.2f} ms, "
        f"p99 {np.percentile(ms, 99):.2f} ms; {slow.mean():.0%} slower than 1.4x p10\n"
    )
    print("| second | median ms | share slow |\n|---|---|---|")
    for second in range(int(at[-1]) + 1):
        inside = (at >= second) & (at < second + 1)
        if inside.any():
            print(f"| {second} | {np.median(ms[inside]):.1f} | {slow[inside].mean():.0%} |")


if __name__ == "__main__":
    main()
