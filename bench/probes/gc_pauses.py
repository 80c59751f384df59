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
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1]


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
    sys.path.insert(0, str(BENCH))
    from trained_overhead import MODEL, frame, requests

    from edge_agent.client import EdgeAgentClient, SharedMemoryBuffer
    from edge_agent.model_package import load as load_package

    work = Path(tempfile.mkdtemp(prefix="ea-gc-"))
    (work / "models").mkdir()
    (work / "models" / MODEL).symlink_to(model.resolve())
    out, socket = work / "gc.json", f"unix://{work}/agent.sock"
    agent = subprocess.Popen(
        [sys.executable, __file__, "--as-agent", str(out), "--log-level", "WARNING", "serve", "--socket", socket,
         "--models-dir", str(work / "models"), *serve_args]
    )  # fmt: skip
    atexit.register(lambda: agent.poll() is None and agent.kill())
    manifest = load_package(model).manifest
    image = frame(manifest.width, manifest.height)
    client = EdgeAgentClient(socket, timeout_s=120)
    client.wait_ready(60)
    client.start_model(MODEL, wait=True, timeout_s=300)
    with SharedMemoryBuffer.create(image.size) as shm, SharedMemoryBuffer.create(image.size) as mask:
        shm.write(image)
        request = requests(image, shm, mask)[path]
        for _ in range(20):
            client.stub.DetectAnomalies(request, timeout=120)
        begin, spans = time.perf_counter(), []
        for _ in range(calls):
            started = time.perf_counter()
            client.stub.DetectAnomalies(request, timeout=120)
            spans.append((started, time.perf_counter()))
    client.close()
    agent.send_signal(signal.SIGTERM)
    agent.wait(60)
    data = json.loads(out.read_text())
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
