"""Agent overhead: DetectAnomalies through the agent vs the raw ONNX Runtime call, same model, same image.

For each image size, one run of this script:
1. builds a conv model (resize inside the graph, ~20+ ms on this machine) for that input size;
2. measures the raw `session.run` of that graph in this process (the baseline);
3. starts the real agent on a Unix socket, and measures DetectAnomalies through shared memory
   (one segment created once and reused) and inline bytes;
4. starts `grpc_floor_server.py` (the same session.run behind an empty gRPC call, nothing else) and
   measures it: the floor that any Python gRPC server adds, so agent minus floor is the agent's cost;
5. alternates rounds of 2, 3 and 4 to cancel drift, and reports p50/p99 and ratios to the raw p50.

Run: .venv/bin/python bench/agent_overhead.py [--rounds 3] [--calls 30] [--sizes 640x480,1024x1024,4096x4096]
With --metrics: metrics on vs off instead, two agents in one run (bench/metrics_overhead.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grpc_floor_server import bench_image

from edge_agent.client import EdgeAgentClient, SharedMemoryBuffer
from edge_agent.model_package import INPUT_IMAGE
from edge_agent.protocol import edge_agent_pb2 as pb
from edge_agent.runtime import RuntimeOptions, open_runtime
from edge_agent.testing.onnx_models import heavy_package

PATHS = ("raw", "shm", "inline", "floor_loop", "floor_thread")


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, q))


def time_calls(fn, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def bench_size(
    width: int, height: int, rounds: int, calls: int, threads: int, workdir: Path, agent_args: list[str]
) -> dict:
    package = heavy_package(
        workdir / f"heavy-{width}x{height}", width, height, side=224, layers=8, channels=32
    )
    image = bench_image(width, height)
    runtime = open_runtime("cpu", package.graph_path, RuntimeOptions(intra_op_threads=threads))
    session = runtime._session  # the raw ONNX Runtime session: baseline without any agent code
    socket = workdir / f"agent-{width}.sock"
    models = workdir / f"models-{width}"
    models.mkdir()
    (models / "heavy").symlink_to(package.directory)
    log = (workdir / f"agent-{width}.log").open("wb")
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "--log-level",
            "WARNING",
            "serve",
            "--socket",
            f"unix://{socket}",
            "--models-dir",
            str(models),
            "--threads",
            str(threads),
            *agent_args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    floor_socket = workdir / f"floor-{width}.sock"
    floor = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve().parent / "grpc_floor_server.py"),
            str(floor_socket),
            str(package.directory),
            str(threads),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    samples: dict[str, list[float]] = {name: [] for name in PATHS}
    try:
        floor_channel = grpc.insecure_channel(f"unix://{floor_socket}")
        grpc.channel_ready_future(floor_channel).result(timeout=60)
        client = EdgeAgentClient(f"unix://{socket}", timeout_s=120)
        client.wait_ready(30)
        client.start_model("heavy", wait=True)
        with SharedMemoryBuffer.create(width * height * 3) as shm:
            # The frame is written once: we time the agent call, not the client filling its segment.
            shm.write(image)
            bitmap = pb.Bitmap(
                width=width, height=height, shared_memory_handle=shm.handle(width * height * 3)
            )
            via_shm = pb.DetectAnomaliesRequest(model_component="heavy", bitmap=bitmap)
            inline = pb.DetectAnomaliesRequest(
                model_component="heavy",
                bitmap=pb.Bitmap(width=width, height=height, byte_data=image.tobytes()),
            )
            floor_loop = floor_channel.unary_unary("/Floor/Loop")
            floor_thread = floor_channel.unary_unary("/Floor/Thread")
            calls_by_path = {
                "raw": lambda: session.run(None, {INPUT_IMAGE: image}),
                "shm": lambda: client.stub.DetectAnomalies(via_shm, timeout=120),
                "inline": lambda: client.stub.DetectAnomalies(inline, timeout=120),
                "floor_loop": lambda: floor_loop(b"", timeout=120),
                "floor_thread": lambda: floor_thread(b"", timeout=120),
            }
            for fn in calls_by_path.values():
                time_calls(fn, 3)  # warm-up
            for _ in range(rounds):
                for name, fn in calls_by_path.items():
                    samples[name] += time_calls(fn, max(5, calls // 2) if name == "inline" else calls)
        client.close()
        floor_channel.close()
    finally:
        for process in (agent, floor):
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        log.close()
        runtime.close()
    raw_p50 = percentile(samples["raw"], 50)
    row = {"size": f"{width}x{height}", "raw_p50_ms": raw_p50}
    for name in PATHS[1:]:
        row[f"{name}_p50_ms"] = percentile(samples[name], 50)
        row[f"{name}_p99_ms"] = percentile(samples[name], 99)
        row[f"{name}_p50_ratio"] = row[f"{name}_p50_ms"] / raw_p50
        row[f"{name}_p99_ratio"] = row[f"{name}_p99_ms"] / raw_p50
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="runtime threads, same for raw and agent")
    parser.add_argument("--sizes", default="640x480,1024x1024,4096x4096")
    parser.add_argument("--copy-frames", action="store_true", help="start the agent with --copy-frames")
    parser.add_argument("--metrics", action="store_true", help="compare agents with metrics on and off")
    args = parser.parse_args()
    if args.metrics:
        from metrics_overhead import bench_metrics, hot_path_cost, print_rows

        workdir = Path(tempfile.mkdtemp(prefix="ea-bench-", dir="/tmp"))
        try:
            sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
            rows = [bench_metrics(w, h, args.rounds, args.calls, args.threads, workdir) for w, h in sizes]
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print(
            f"\ncpu cores: {os.cpu_count()}, runtime threads: {args.threads or 'default'}, rounds: {args.rounds}"
        )
        print_rows(rows)
        cost = hot_path_cost()["per_call_us"]
        print(
            f"\ncounting, in-process: {cost:.1f} us per call ({100 * cost / 1000 / 20:.3f}% of a 20 ms model)"
        )
        return
    workdir = Path(tempfile.mkdtemp(prefix="ea-bench-", dir="/tmp"))
    rows = []
    try:
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.split("x"))
            calls = args.calls if width * height < 4_000_000 else max(6, args.calls // 5)
            agent_args = ["--copy-frames"] if args.copy_frames else []
            rows.append(bench_size(width, height, args.rounds, calls, args.threads, workdir, agent_args))
            print(f"done {size}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\ncpu cores: {os.cpu_count()}, runtime threads: {args.threads or 'default'}, rounds: {args.rounds}, "
        f"frames: {'copied' if args.copy_frames else 'in place where the guard is built'}\n"
    )
    print(
        "| image | raw p50 ms | shm p50 ms | shm p99 ms | shm p50 / raw | shm p99 / raw "
        "| inline p50 ms | inline p99 ms | inline p50 / raw |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']} | {r['raw_p50_ms']:.1f} | {r['shm_p50_ms']:.1f} | {r['shm_p99_ms']:.1f} "
            f"| {r['shm_p50_ratio']:.3f} | {r['shm_p99_ratio']:.3f} | {r['inline_p50_ms']:.1f} "
            f"| {r['inline_p99_ms']:.1f} | {r['inline_p50_ratio']:.3f} |"
        )
    print("\nThe floor (grpc_floor_server.py: the same session.run behind an empty gRPC call):\n")
    print(
        "| image | floor, loop p50 / raw | floor, thread p50 / raw | shm p50 / raw "
        "| floor, thread - raw ms | shm - floor, thread ms |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']} | {r['floor_loop_p50_ratio']:.3f} | {r['floor_thread_p50_ratio']:.3f} "
            f"| {r['shm_p50_ratio']:.3f} | {r['floor_thread_p50_ms'] - r['raw_p50_ms']:+.2f} "
            f"| {r['shm_p50_ms'] - r['floor_thread_p50_ms']:+.2f} |"
        )


if __name__ == "__main__":
    main()
