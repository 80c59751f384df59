"""What each `--runtime-spin` mode costs and gives at the pace clients really call: latency and CPU.

bench/trained_overhead.py calls back to back, the pattern the issue's ratios are stated in. A
camera does not: it sends a frame every 33 ms (30 fps) or 100 ms (10 fps) and the agent idles in
between. ONNX Runtime's workers, left spinning after a run (`always`, ONNX Runtime's own default),
keep a core busy for tens of milliseconds after every call; `run` stops them when the run returns.
Which one is faster depends on how long the machine takes to come back from idle, and the price
of `always` is CPU that the camera application on the same device does not get.

One real agent per mode on a trained cookies model, shared memory in, mask into a client segment;
for each pause between calls, blocks alternate between the agents and ONNX Runtime's default
session in this process called with the same pause (the raw baseline). Per block: the calls' p50
and the agent's CPU (its /proc stat, user + system) per call, counted up to one pause after the
block's last call so that spinning after a call is charged to it.

Run: .venv/bin/python bench/spin_cost.py --model runs/cookies-model [--spin run,always] [--gaps-ms 0,33,100] [--rounds 6] [--calls 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trained_overhead import REPO, Agent, frame, requests, round_ratios, trained_model

from edge_agent.client import SharedMemoryBuffer
from edge_agent.model_package import INPUT_IMAGE
from edge_agent.model_package import load as load_package

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    """CPU time of process `pid` (user + system), or of this process when None."""
    if pid is None:
        return time.process_time()
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def paced_block(
    call: Callable[[], object], calls: int, gap_s: float, pid: int | None
) -> tuple[list[float], float]:
    """`calls` calls with `gap_s` of idling before each and after the last: latencies, CPU per call."""
    time.sleep(max(gap_s, 0.2))
    call()  # untimed: the first call after a quiet spell
    took = []
    used = cpu_seconds(pid)
    for _ in range(calls):
        time.sleep(gap_s)
        started = time.perf_counter()
        call()
        took.append(time.perf_counter() - started)
    time.sleep(gap_s)
    return took, (cpu_seconds(pid) - used) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "runs" / "cookies-model")
    parser.add_argument("--spin", default="run,always", help="--runtime-spin modes, one agent each")
    parser.add_argument("--gaps-ms", default="0,33,100", help="pauses between calls, ms")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    package = trained_model(args.model)
    loaded = load_package(package)
    manifest = loaded.manifest
    image = frame(manifest.width, manifest.height)
    workdir = Path(tempfile.mkdtemp(prefix="ea-spin-", dir="/tmp"))
    raw = ort.InferenceSession(str(loaded.graph_path), providers=["CPUExecutionProvider"])
    agents = {spin: Agent(workdir, package, spin, 0, []) for spin in args.spin.split(",")}
    gaps = [float(g) / 1e3 for g in args.gaps_ms.split(",")]
    latency: dict[tuple[str, float], list[list[float]]] = {}
    cpu: dict[tuple[str, float], list[float]] = {}
    try:
        with SharedMemoryBuffer.create(image.size) as shm, SharedMemoryBuffer.create(image.size) as mask:
            shm.write(image)
            request = requests(image, shm, mask)["shm>segment"]
            calls: dict[str, tuple[Callable[[], object], int | None]] = {
                "raw": (lambda: raw.run(None, {INPUT_IMAGE: image}), None)
            }
            for spin, agent in agents.items():
                calls[spin] = (
                    lambda a=agent: a.client.stub.DetectAnomalies(request, timeout=120),
                    agent.proc.pid,
                )
            for _ in range(args.rounds):
                for gap in gaps:
                    for name, (call, pid) in calls.items():
                        took, per_call = paced_block(call, args.calls, gap, pid)
                        latency.setdefault((name, gap), []).append(took)
                        cpu.setdefault((name, gap), []).append(per_call)
    finally:
        for agent in agents.values():
            agent.stop()
    print(
        f"\n{package}, {manifest.width}x{manifest.height}; cpu cores {os.cpu_count()}; onnxruntime {ort.__version__}; "
        f"shm in, mask into a segment; {args.rounds} rounds x {args.calls} calls per block\n"
    )
    print(
        "| pause between calls | who | p50 ms | p50 / raw p50, median of round ratios [95%] | CPU ms per call |"
    )
    print("|---|---|---|---|---|")
    for gap in gaps:
        for name in calls:
            blocks = latency[name, gap]
            middle, low, high = round_ratios(blocks, latency["raw", gap])
            p50 = float(np.median([t for block in blocks for t in block]))
            who = "raw (default session, in process)" if name == "raw" else f"agent, --runtime-spin {name}"
            print(
                f"| {gap * 1e3:.0f} ms | {who} | {p50 * 1e3:.1f} | {middle:.3f} [{low:.3f}, {high:.3f}] "
                f"| {np.median(cpu[name, gap]) * 1e3:.1f} |"
            )


if __name__ == "__main__":
    main()
