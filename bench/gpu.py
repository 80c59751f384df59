"""NVIDIA backends through the agent: latency with 1 and 8 clients, engine build time, CPU agreement.

For each backend (TensorRT FP16, TensorRT FP32, TensorRT with the checked choice, ONNX Runtime
CUDA, ONNX Runtime TensorRT EP, CPU), one run of this script:
1. starts the real agent (`edge-agent serve`) on a Unix socket with that backend and an empty
   engine cache (the TensorRT rows share one, so "auto" reuses the FP16 and FP32 engines);
2. times StartModel until RUNNING: for TensorRT that is the engine build (first start on this GPU);
3. sends the sample images (the package's carried samples, --images, and the synthetic ones)
   and compares each decision (and mask) with the CPU backend's;
4. measures DetectAnomalies through shared memory with 1 client and with 8 (each its own
   channel and segment), after a warm-up, and reports p50/p99 and the ratio to the CPU p50.
A backend that cannot start here (no TensorRT, no onnxruntime-gpu) gets a row that says why.
It prints one table and, with --json, writes every figure.

Run: python bench/gpu.py --model MODEL_DIR [--images DIR] [--calls 200] [--json out.json]
(scripts/gpu-check.sh runs it on the trained cookies model.)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from edge_agent.client import EdgeAgentClient, SharedMemoryBuffer
from edge_agent.model_package import load
from edge_agent.packager.samples import image_inputs
from edge_agent.protocol import edge_agent_pb2 as pb
from edge_agent.runtime.samples import package_samples

BACKENDS = [
    # (row, --backend, extra environment, engine-cache group)
    ("cpu", "cpu", {}, "cpu"),
    ("trt-fp16", "tensorrt", {"EDGE_AGENT_TRT_PRECISION": "fp16"}, "trt"),
    ("trt-fp32", "tensorrt", {"EDGE_AGENT_TRT_PRECISION": "fp32"}, "trt"),
    ("trt-auto", "tensorrt", {"EDGE_AGENT_TRT_PRECISION": "auto"}, "trt"),
    ("ort-cuda", "gpu-cuda", {}, "ort"),
    ("ort-trt-ep", "gpu", {}, "ort"),
]
MODEL = "bench"


class Agent:
    def __init__(self, workdir: Path, model: Path, backend: str, env: dict, cache: Path) -> None:
        self.socket = workdir / f"agent-{backend}-{time.monotonic_ns()}.sock"
        models = workdir / f"models-{self.socket.stem}"
        models.mkdir()
        (models / MODEL).symlink_to(model.resolve())
        self.log_path = workdir / f"{self.socket.stem}.log"
        self._log = self.log_path.open("wb")
        command = [sys.executable, "-m", "edge_agent", "--log-level", "INFO", "serve"]
        command += ["--socket", f"unix://{self.socket}", "--models-dir", str(models)]
        command += [
            "--backend",
            backend,
            "--engine-cache",
            str(cache),
            "--concurrency",
            "1",
            "--queue-depth",
            "16",
        ]
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
        self.client = EdgeAgentClient(f"unix://{self.socket}", timeout_s=900)
        self.client.wait_ready(60)

    def start(self, timeout_s: float) -> tuple[float, str]:
        started = time.monotonic()
        self.client.start_model(MODEL)
        messages = []
        while time.monotonic() - started < timeout_s:
            state = self.client.describe_model(MODEL)
            if state.status_message and (not messages or messages[-1] != state.status_message):
                messages.append(state.status_message)
            if state.status != "STARTING":
                if state.status != "RUNNING":
                    raise RuntimeError(f"{state.status}: {state.status_message}")
                return time.monotonic() - started, " | ".join(messages)
            time.sleep(0.2)
        raise RuntimeError(f"not RUNNING after {timeout_s:.0f} s: {' | '.join(messages)}")

    def tail(self, lines: int = 5) -> str:
        try:
            return " / ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        self.client.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def detections(agent: Agent, images: list[np.ndarray]) -> list[tuple[bool, float, np.ndarray | None]]:
    out = []
    for image in images:
        result = agent.client.detect(MODEL, image)
        out.append((result.is_anomalous, result.anomaly_score, result.mask))
    return out


def latency(socket: Path, image: np.ndarray, clients: int, calls: int) -> list[float]:
    """Seconds per call over all clients, each with its own channel and shared-memory segment."""
    samples: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)
    errors: list[BaseException] = []
    height, width = image.shape[:2]

    def client_loop() -> None:
        try:
            client = EdgeAgentClient(f"unix://{socket}", timeout_s=120)
            with SharedMemoryBuffer.create(image.nbytes) as shm:
                shm.write(image)
                request = pb.DetectAnomaliesRequest(
                    model_component=MODEL,
                    bitmap=pb.Bitmap(
                        width=width, height=height, shared_memory_handle=shm.handle(image.nbytes)
                    ),
                )
                for _ in range(5):
                    client.stub.DetectAnomalies(request, timeout=120)  # warm-up
                barrier.wait(60)
                mine = []
                for _ in range(calls):
                    started = time.perf_counter()
                    client.stub.DetectAnomalies(request, timeout=120)
                    mine.append(time.perf_counter() - started)
            client.close()
            with lock:
                samples.extend(mine)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]!r}")
    return samples


def ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, q))


def agreement(reference: list, got: list) -> tuple[float, float | None]:
    """Share of equal decisions, worst mask agreement (runs on Python 3.8 too: no zip(strict=))."""
    pairs = [(reference[i], got[i]) for i in range(len(reference))]
    same = sum(a[0] == b[0] for a, b in pairs) / len(pairs)
    masks = [
        float((a[2] == b[2]).all(axis=-1).mean()) for a, b in pairs if a[2] is not None and b[2] is not None
    ]
    return same, (min(masks) if masks else None)


def run(args: argparse.Namespace) -> list[dict]:
    package = load(args.model)
    manifest = package.manifest
    images = package_samples(package.directory, manifest.height, manifest.width)
    images = image_inputs(args.images, manifest, limit=args.max_images) + images
    rows: list[dict] = []
    reference = None
    cpu_p50 = None
    wanted = [b for b in BACKENDS if b[0] in args.backends.split(",")]
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as scratch:
        workdir = Path(scratch)
        for row_name, backend, env, group in wanted:
            row: dict = {"backend": row_name}
            cache = workdir / f"cache-{group}"
            agent = None
            try:
                agent = Agent(workdir, package.directory, backend, env, cache)
                row["start_s"], row["messages"] = agent.start(args.start_timeout)
                found = detections(agent, images)
                if reference is None:
                    reference = found  # CPU runs first
                row["decision_agreement"], row["mask_agreement"] = agreement(reference, found)
                row["max_score_diff"] = max(abs(reference[i][1] - found[i][1]) for i in range(len(found)))
                for clients in (1, 8):
                    samples = latency(agent.socket, images[0], clients, max(10, args.calls // clients))
                    row[f"p50_ms_{clients}"] = ms(samples, 50)
                    row[f"p99_ms_{clients}"] = ms(samples, 99)
                if cpu_p50 is None:
                    cpu_p50 = row["p50_ms_1"]
                row["p50_vs_cpu_1"] = row["p50_ms_1"] / cpu_p50
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                if agent is not None:
                    row["log"] = agent.tail()
            finally:
                if agent is not None:
                    agent.close()
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict], images: int) -> str:
    head = (
        f"{'backend':<11} {'start s':>8} {'p50 1c':>8} {'p99 1c':>8} {'p50 8c':>8} {'p99 8c':>8} "
        f"{'vs cpu':>7} {'decisions':>10} {'mask':>7} {'|dscore|':>9}"
    )
    lines = [
        f"bench/gpu.py: DetectAnomalies through the agent (shared memory), ms; {images} sample images",
        head,
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"{row['backend']:<11} unavailable: {row['error']}")
            continue
        mask = "-" if row["mask_agreement"] is None else f"{row['mask_agreement']:.4f}"
        lines.append(
            f"{row['backend']:<11} {row['start_s']:>8.1f} {row['p50_ms_1']:>8.2f} {row['p99_ms_1']:>8.2f} "
            f"{row['p50_ms_8']:>8.2f} {row['p99_ms_8']:>8.2f} {row['p50_vs_cpu_1']:>7.2f} "
            f"{row['decision_agreement']:>10.3f} {mask:>7} {row['max_score_diff']:>9.2e}"
        )
    lines.append(
        "start s: StartModel to RUNNING (TensorRT: the engine build on first start); vs cpu: p50 1c / CPU p50 1c"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, required=True, help="model package (e.g. the trained cookies model)"
    )
    parser.add_argument("--images", type=Path, help="more sample images of the model's size")
    parser.add_argument("--max-images", type=int, default=32)
    parser.add_argument(
        "--calls", type=int, default=200, help="timed calls per client count (split over clients)"
    )
    parser.add_argument("--start-timeout", type=float, default=600.0)
    parser.add_argument("--backends", default=",".join(b[0] for b in BACKENDS))
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    if not args.backends.startswith("cpu"):
        parser.error("--backends must start with cpu: it is the reference")
    rows = run(args)
    manifest = load(args.model).manifest
    count = len(image_inputs(args.images, manifest, limit=args.max_images)) + len(
        package_samples(args.model, manifest.height, manifest.width)
    )
    print(table(rows, count))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
