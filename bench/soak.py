"""Bounded soak of the real agent: 8 client processes, two models, one restarted every 10 s.

Each client mixes inline and shared-memory frames and, on the segmentation model, inline and
shared-memory masks. Every answer is checked against an in-process `Predictor` of the same package
on the same image: verdict, score (to 1e-6) and mask (exactly). While the restarted model is not
RUNNING its calls are answered FAILED_PRECONDITION; those are counted, never wrong. Anything else is
an error. Prints per minute: answers/s, p50 and p99 latency; and the agent's RSS, descriptors,
threads and memory mappings after warm-up and at the end.

    .venv/bin/python bench/soak.py --minutes 10            # exit 1 on any wrong answer or error
    .venv/bin/python bench/soak.py --minutes 1 --clients 4
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import grpc  # noqa: E402

from edge_agent.client import EdgeAgentClient, SharedMemoryBuffer  # noqa: E402
from edge_agent.inference import Predictor  # noqa: E402
from edge_agent.testing.onnx_models import bright_blob_package  # noqa: E402

# model -> (width, height, segmentation); "seg" is the one stopped and started every --restart-s.
MODELS = {"cls": (640, 480, False), "seg": (128, 96, True)}
RESTARTED = "seg"


def images(width: int, height: int) -> list[np.ndarray]:
    """Normal, anomalous (bright and dark squares of several sizes) and noisy frames."""
    rng = np.random.default_rng(width)
    frames = [np.full((height, width, 3), 100, np.uint8)]
    for side in (4, 12, 24, 40):
        frame = np.full((height, width, 3), 100, np.uint8)
        frame[10 : 10 + side, 10 : 10 + side] = 255
        frame[height - 10 - side // 2 : height - 10, width // 2 : width // 2 + side] = 0
        frames.append(frame)
    frames.append(rng.integers(60, 140, (height, width, 3), dtype=np.uint8))
    return frames


def agent_stats(pid: int) -> dict[str, float]:
    with open(f"/proc/{pid}/status") as handle:
        fields = dict(line.split(":", 1) for line in handle)
    with open(f"/proc/{pid}/maps") as handle:
        mappings = sum(1 for _ in handle)
    return {
        "rss_mib": int(fields["VmRSS"].split()[0]) / 1024,
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"]),
        "mappings": mappings,
    }


def client(index: int, socket: str, seconds: float, expected: dict, results: mp.Queue) -> None:
    """One client process: a random mix of paths; per-call (time, latency, outcome) sent in batches."""
    rng = random.Random(index)
    frames = {name: images(w, h) for name, (w, h, _) in MODELS.items()}
    segments = {name: SharedMemoryBuffer.create(w * h * 3) for name, (w, h, _) in MODELS.items()}
    mask_segment = SharedMemoryBuffer.create(MODELS["seg"][0] * MODELS["seg"][1] * 3)
    batch: list[tuple[float, float, str]] = []
    start = time.monotonic()
    flushed = start
    with EdgeAgentClient(socket, timeout_s=60) as agent:
        try:
            while time.monotonic() - start < seconds:
                name = rng.choice(sorted(MODELS))
                k = rng.randrange(len(frames[name]))
                shm = segments[name] if rng.random() < 0.5 else None
                mask = mask_segment if MODELS[name][2] and rng.random() < 0.5 else None
                began = time.monotonic()
                try:
                    got = agent.detect(name, frames[name][k], shm=shm, mask_shm=mask)
                    outcome = check(got, expected[name][k])
                except grpc.RpcError as exc:
                    if exc.code() == grpc.StatusCode.FAILED_PRECONDITION and name == RESTARTED:
                        outcome = "stopped"
                    else:
                        outcome = f"error {exc.code().name}: {exc.details()}"
                now = time.monotonic()
                batch.append((now - start, (now - began) * 1000, outcome))
                if now - flushed > 2:
                    results.put((index, batch))
                    batch, flushed = [], now
        finally:
            results.put((index, batch))
            results.put((index, None))
            for segment in (*segments.values(), mask_segment):
                segment.close()


def check(got, want: tuple[bool, float, bytes | None]) -> str:
    anomalous, score, mask = want
    if got.is_anomalous != anomalous or abs(got.anomaly_score - score) > 1e-6:
        return f"wrong verdict/score {got.is_anomalous}/{got.anomaly_score} != {anomalous}/{score}"
    if mask is not None and (got.mask is None or got.mask.tobytes() != mask):
        return "wrong mask"
    return "ok"


def restarter(socket: str, every_s: float, stop: threading.Event, log: list[str]) -> None:
    with EdgeAgentClient(socket, timeout_s=120) as agent:
        while not stop.wait(every_s):
            agent.stop_model(RESTARTED)
            agent.start_model(RESTARTED, wait=True)
            log.append(f"{time.strftime('%H:%M:%S')} restarted {RESTARTED}")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--restart-s", type=float, default=10.0)
    parser.add_argument("--agent-arg", action="append", default=[], help="extra `serve` argument")
    args = parser.parse_args()
    seconds = args.minutes * 60

    work = Path(tempfile.mkdtemp(prefix="ea-soak-", dir="/tmp"))
    agent_proc = None
    try:
        expected = {}
        for name, (width, height, segmentation) in MODELS.items():
            package = bright_blob_package(work / "models" / name, width, height, segmentation).directory
            predictor = Predictor.open(package)
            expected[name] = [
                (d.is_anomalous, d.anomaly_score, None if d.mask is None else d.mask.tobytes())
                for d in map(predictor.predict, images(width, height))
            ]
        socket = f"unix://{work}/agent.sock"
        log_file = (work / "agent.log").open("wb")
        agent_proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "edge_agent", "serve", "--socket", socket),
                *("--models-dir", str(work / "models"), "--queue-depth", "64", *args.agent_arg),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        with EdgeAgentClient(socket, timeout_s=120) as control:
            control.wait_ready(60)
            for name in MODELS:
                control.start_model(name, wait=True)
            for name, (width, height, _) in MODELS.items():  # warm-up: one call per path
                control.detect(name, images(width, height)[0])
        before = agent_stats(agent_proc.pid)
        print(
            f"soak: {args.clients} clients, {args.minutes:g} min, {RESTARTED} restarted every "
            f"{args.restart_s:g} s; cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}",
            flush=True,
        )
        print(f"agent at start: {before}", flush=True)

        results: mp.Queue = mp.get_context("spawn").Queue()
        context = mp.get_context("spawn")
        clients = [
            context.Process(target=client, args=(i, socket, seconds, expected, results))
            for i in range(args.clients)
        ]
        for process in clients:
            process.start()
        stop = threading.Event()
        restarts: list[str] = []
        toggler = threading.Thread(target=restarter, args=(socket, args.restart_s, stop, restarts))
        toggler.start()

        per_minute: dict[int, list[float]] = defaultdict(list)
        outcomes: dict[str, int] = defaultdict(int)
        samples: dict[int, dict[str, float]] = {}
        began = time.monotonic()
        last_minute = max(0, int(-(-seconds // 60)) - 1)
        open_clients = args.clients
        while open_clients:
            minute = int((time.monotonic() - began) // 60)
            if minute not in samples and time.monotonic() - began < seconds:
                samples[minute] = agent_stats(agent_proc.pid)  # at the start of each minute of load
            try:
                _, batch = results.get(timeout=5)
            except queue.Empty:
                if time.monotonic() - began < seconds + 120:
                    continue
                print("soak: clients stopped reporting", flush=True)
                break
            if batch is None:
                open_clients -= 1
                continue
            for at, latency_ms, outcome in batch:
                outcomes[outcome if not outcome.startswith("wrong") else "wrong"] += 1
                if outcome.startswith(("wrong", "error")):
                    print(f"soak: {outcome}", flush=True)
                if outcome == "ok":
                    # the last calls end just after the deadline: they count in the last minute
                    per_minute[min(int(at // 60), last_minute)].append(latency_ms)
        for process in clients:
            process.join(60)
        stop.set()
        toggler.join(180)
        time.sleep(2 * 1.0)  # two poll intervals: the agent lets go of the clients' unlinked segments
        after = agent_stats(agent_proc.pid)

        print(
            "minute | answers/s (ok) | p50 ms | p99 ms | agent at the minute's start: RSS MiB, fds, threads, maps"
        )
        for minute in sorted(per_minute):
            values = per_minute[minute]
            span = min(60.0, seconds - minute * 60)
            at = samples.get(minute)
            state = (
                "-" if at is None else f"{at['rss_mib']:.0f}, {at['fds']}, {at['threads']}, {at['mappings']}"
            )
            print(
                f"{minute + 1} | {len(values) / span:.0f} | {percentile(values, 50):.1f} | "
                f"{percentile(values, 99):.1f} | {state}"
            )
        total = sum(outcomes.values())
        print(f"answers: {total} ({dict(sorted(outcomes.items()))}); restarts: {len(restarts)}")
        print(f"agent at start: {before}")
        print(f"agent at end:   {after}")
        bad = sum(n for key, n in outcomes.items() if key not in ("ok", "stopped"))
        agent_proc.terminate()
        code = agent_proc.wait(60)
        print(f"agent exit {code}; wrong or failed answers: {bad}")
        return 0 if bad == 0 and code == 0 and outcomes["ok"] > 0 else 1
    finally:
        if agent_proc is not None and agent_proc.poll() is None:
            agent_proc.kill()
            agent_proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
