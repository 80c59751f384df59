"""Python's garbage collector in the real agent: how often it runs during calls, how long, and
whether its collections sit in the slowest calls (is the agent's p99 the collector's?).

Starts the agent in a wrapper process (`--as-agent`) that records every collection with
`gc.callbacks` (CLOCK_MONOTONIC, comparable across processes on Linux), makes CALLS calls of one
path after 20 untimed ones, and prints the collections per generation and how many of the slowest
1% of calls overlapped one.

Run: .venv/bin/python bench/probes/gc_pauses.py MODEL_DIR ['shm>segment'|'shm>inline'] [CALLS] [serve args...]
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from wrapped_agent import timed_calls


def as_agent(out: str, argv: list[str]) -> int:
    """The real agent, with every collection's generation, start and end written at exit."""
    from edge_agent.cli import main

    events: list[tuple[int, float, float]] = []
    started = [0.0]

    def record(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            events.append((info["generation"], started[0], time.perf_counter()))

    gc.callbacks.append(record)
    atexit.register(
        lambda: Path(out).write_text(json.dumps({"events": events, "objects": len(gc.get_objects())}))
    )
    return main(argv)


def measure(model: Path, path: str, calls: int, serve_args: list[str]) -> None:
    spans, data = timed_calls(__file__, model, path, calls, serve_args, warmup=20)
    begin = spans[0][0]
    events = [event for event in data["events"] if event[1] >= begin]
    latency = np.array([end - start for start, end in spans]) * 1e3
    print(
        f"{model}, {path}, {calls} calls: p50 {np.percentile(latency, 50):.2f} ms, p99 "
        f"{np.percentile(latency, 99):.2f} ms; {data['objects']} objects tracked at exit"
    )
    print("| generation | collections | per call | p50 ms | max ms |\n|---|---|---|---|---|")
    for generation in (0, 1, 2):
        took = np.array([(end - start) * 1e3 for g, start, end in events if g == generation])
        if len(took):
            print(
                f"| {generation} | {len(took)} | {len(took) / calls:.3f} | {np.median(took):.3f} | {took.max():.3f} |"
            )
        else:
            print(f"| {generation} | 0 | 0 | – | – |")
    slowest = np.argsort(latency)[-max(1, calls // 100) :]
    hit = sum(any(start < spans[i][1] and end > spans[i][0] for _, start, end in events) for i in slowest)
    print(f"\nslowest 1% of calls ({len(slowest)}) that overlap any collection: {hit}")


if __name__ == "__main__":
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    if sys.argv[1] == "--as-agent":
        sys.exit(as_agent(sys.argv[2], sys.argv[3:]))
    measure(
        Path(sys.argv[1]),
        sys.argv[2] if len(sys.argv) > 2 else "shm>segment",
        int(sys.argv[3]) if len(sys.argv) > 3 else 300,
        sys.argv[4:],
    )
