"""Metrics on vs off: the same DetectAnomalies calls to two agents in one run, alternating rounds.

Called by `bench/agent_overhead.py --metrics`. Both agents serve the same conv model (agent_overhead's
~20 ms one) on their own socket; "on" has every observability feature a line would turn on:
`--metrics-address` (Unix socket), `--stats-db`, `--dashboard-frames 8`, and while it runs a scraper
reads /metrics every second and the dashboard's summary every 5 s (a Prometheus default is 15 s).
Each round times `calls` calls to each agent, the raw `session.run` first; ratios are against the raw
p50 of the same run, and on/off is the ratio of the two agents' p50 (and p99).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

from agent_overhead import percentile, time_calls
from grpc_floor_server import bench_image

from edge_agent.client import EdgeAgentClient, SharedMemoryBuffer
from edge_agent.model_package import INPUT_IMAGE
from edge_agent.observability.scrape import fetch
from edge_agent.protocol import edge_agent_pb2 as pb
from edge_agent.runtime import RuntimeOptions, open_runtime
from edge_agent.testing.onnx_models import heavy_package

PATHS = ("raw", "shm_off", "shm_on", "inline_off", "inline_on")


def _agent(workdir: Path, name: str, models: Path, threads: int, extra: list[str]) -> subprocess.Popen:
    log = (workdir / f"agent-{name}.log").open("wb")
    command = [sys.executable, "-m", "edge_agent", "--log-level", "WARNING", "serve"]
    command += ["--socket", f"unix://{workdir / name}.sock", "--models-dir", str(models)]
    command += ["--threads", str(threads), *extra]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)


def bench_metrics(width: int, height: int, rounds: int, calls: int, threads: int, workdir: Path) -> dict:
    package = heavy_package(
        workdir / f"heavy-{width}x{height}", width, height, side=224, layers=8, channels=32
    )
    image = bench_image(width, height)
    runtime = open_runtime("cpu", package.graph_path, RuntimeOptions(intra_op_threads=threads))
    session = runtime._session
    models = workdir / f"models-m{width}"
    models.mkdir()
    (models / "heavy").symlink_to(package.directory)
    metrics_socket = workdir / f"metrics-{width}.sock"
    on_args = [
        "--metrics-address",
        f"unix://{metrics_socket}",
        "--stats-db",
        str(workdir / f"stats-{width}.db"),
    ]
    on_args += ["--dashboard-frames", "8"]
    agents = {
        "off": _agent(workdir, f"off-{width}", models, threads, []),
        "on": _agent(workdir, f"on-{width}", models, threads, on_args),
    }
    stop = threading.Event()
    scrapes = [0]

    def scraper() -> None:
        tick = 0
        while not stop.wait(1.0):
            try:
                fetch(f"unix://{metrics_socket}")
                if tick % 5 == 0:
                    fetch(f"unix://{metrics_socket}", "/api/summary?window=1d")
                scrapes[0] += 1
            except OSError:
                pass
            tick += 1

    samples: dict[str, list[float]] = {name: [] for name in PATHS}
    clients: dict[str, EdgeAgentClient] = {}
    try:
        for name in agents:
            client = clients[name] = EdgeAgentClient(
                f"unix://{workdir / f'{name}-{width}'}.sock", timeout_s=120
            )
            client.wait_ready(30)
            client.start_model("heavy", wait=True)
        threading.Thread(target=scraper, daemon=True).start()
        with SharedMemoryBuffer.create(width * height * 3) as shm:
            shm.write(image)
            bitmap = pb.Bitmap(
                width=width, height=height, shared_memory_handle=shm.handle(width * height * 3)
            )
            via_shm = pb.DetectAnomaliesRequest(model_component="heavy", bitmap=bitmap)
            inline = pb.DetectAnomaliesRequest(
                model_component="heavy",
                bitmap=pb.Bitmap(width=width, height=height, byte_data=image.tobytes()),
            )
            calls_by_path = {
                "raw": lambda: session.run(None, {INPUT_IMAGE: image}),
                "shm_off": lambda: clients["off"].stub.DetectAnomalies(via_shm, timeout=120),
                "shm_on": lambda: clients["on"].stub.DetectAnomalies(via_shm, timeout=120),
                "inline_off": lambda: clients["off"].stub.DetectAnomalies(inline, timeout=120),
                "inline_on": lambda: clients["on"].stub.DetectAnomalies(inline, timeout=120),
            }
            for fn in calls_by_path.values():
                time_calls(fn, 3)
            for i in range(rounds):
                # Alternate which agent goes first, so neither always runs right after the raw call.
                order = list(calls_by_path.items())
                if i % 2:
                    order = [order[0], order[2], order[1], order[4], order[3]]
                for name, fn in order:
                    samples[name] += time_calls(
                        fn, max(5, calls // 2) if name.startswith("inline") else calls
                    )
    finally:
        stop.set()
        for client in clients.values():
            client.close()
        for process in agents.values():
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        runtime.close()
    raw = percentile(samples["raw"], 50)
    row = {"size": f"{width}x{height}", "raw_p50_ms": raw, "scrapes": scrapes[0]}
    for name in PATHS[1:]:
        row[f"{name}_p50_ms"] = percentile(samples[name], 50)
        row[f"{name}_p99_ms"] = percentile(samples[name], 99)
    for path in ("shm", "inline"):
        row[f"{path}_on_off_p50"] = row[f"{path}_on_p50_ms"] / row[f"{path}_off_p50_ms"]
        row[f"{path}_on_off_p99"] = row[f"{path}_on_p99_ms"] / row[f"{path}_off_p99_ms"]
    return row


def print_rows(rows: list[dict]) -> None:
    print(
        "\n| image | raw p50 ms | shm off p50 / raw | shm on p50 / raw | **shm on / off p50** | shm on / off p99 "
        "| inline off p50 / raw | inline on p50 / raw | **inline on / off p50** | scrapes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        raw = r["raw_p50_ms"]
        print(
            f"| {r['size']} | {raw:.1f} | {r['shm_off_p50_ms'] / raw:.3f} | {r['shm_on_p50_ms'] / raw:.3f} "
            f"| **{r['shm_on_off_p50']:.3f}** | {r['shm_on_off_p99']:.3f} | {r['inline_off_p50_ms'] / raw:.3f} "
            f"| {r['inline_on_p50_ms'] / raw:.3f} | **{r['inline_on_off_p50']:.3f}** | {r['scrapes']} |"
        )


def hot_path_cost(calls: int = 200_000) -> dict[str, float]:
    """Microseconds per DetectAnomalies call that counting adds, in-process (no gRPC, no model):
    what the interceptor does for one successful call: its counter, the model's counters and
    histogram, the frame counter, and the store's in-memory add."""
    import tempfile
    import time

    from edge_agent.observability.metrics import AgentMetrics, Outcome
    from edge_agent.observability.store import StatsStore
    from edge_agent.testing.onnx_models import bright_blob_package

    with tempfile.TemporaryDirectory() as tmp:
        package = bright_blob_package(Path(tmp) / "m")
        metrics = AgentMetrics(lambda name: package.directory, list, dict, lambda: True, lambda: 0, lambda: 0)
        store = StatsStore(None, flush_s=3600)
        metrics.add_sink(store.add)
        requests = metrics.requests.labels("DetectAnomalies", "OK")
        frames = metrics.frames.labels("m", "shared_memory_in_place")  # the interceptor caches it too
        ok, anomalous = Outcome("OK", False, 0.02), Outcome("OK", True, 0.02)
        metrics.record_detection("m", ok)
        started = time.perf_counter()
        for i in range(calls):
            requests.inc()
            metrics.record_detection("m", anomalous if i % 10 == 0 else ok)
            frames.inc()
        per_call_us = (time.perf_counter() - started) / calls * 1e6
        store.close()
    return {"per_call_us": per_call_us}
