"""Calls to the real agent started in a probe's wrapper process, for probes that instrument it.

A probe runs `SCRIPT --as-agent OUT serve ...` (its own `as_agent` wraps the agent and writes what
it recorded to OUT as JSON at exit); `timed_calls` starts that process on a models folder holding
MODEL_DIR, makes `warmup` untimed and `calls` timed DetectAnomalies calls of one path
(bench/trained_overhead.py's requests, shared memory in), stops the agent with SIGTERM and returns
the calls' (start, end) on CLOCK_MONOTONIC with what the wrapper wrote.
"""

from __future__ import annotations

import atexit
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1]


def timed_calls(
    script: str, model: Path, path: str, calls: int, serve_args: list[str], warmup: int = 0
) -> tuple[list[tuple[float, float]], Any]:
    sys.path.insert(0, str(BENCH))
    from trained_overhead import MODEL, frame, requests

    from edge_agent.client import EdgeAgentClient, SharedMemoryBuffer
    from edge_agent.model_package import load as load_package

    work = Path(tempfile.mkdtemp(prefix="ea-probe-"))
    (work / "models").mkdir()
    (work / "models" / MODEL).symlink_to(model.resolve())
    out, socket = work / "recorded.json", f"unix://{work}/agent.sock"
    agent = subprocess.Popen(
        [sys.executable, script, "--as-agent", str(out), "--log-level", "WARNING", "serve", "--socket", socket,
         "--models-dir", str(work / "models"), *serve_args]
    )  # fmt: skip
    atexit.register(lambda: agent.poll() is None and agent.kill())
    manifest = load_package(model).manifest
    image = frame(manifest.width, manifest.height)
    client = EdgeAgentClient(socket, timeout_s=120)
    client.wait_ready(60)
    client.start_model(MODEL, wait=True, timeout_s=300)
    spans = []
    with SharedMemoryBuffer.create(image.size) as shm, SharedMemoryBuffer.create(image.size) as mask:
        shm.write(image)
        request = requests(image, shm, mask)[path]
        for _ in range(warmup):
            client.stub.DetectAnomalies(request, timeout=120)
        for _ in range(calls):
            started = time.perf_counter()
            client.stub.DetectAnomalies(request, timeout=120)
            spans.append((started, time.perf_counter()))
    client.close()
    agent.send_signal(signal.SIGTERM)
    agent.wait(60)
    return spans, json.loads(out.read_text())
