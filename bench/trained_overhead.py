"""The agent against the raw runtime on the model users serve: a model trained on the cookies set.

One run: train (or reuse) a cookies model, start one real agent per `--spin` mode on it, then
alternate blocks of calls (not single calls) between the raw baseline, ONNX Runtime's default
session in this process as a user would call it, and every frame and mask path through each agent:
inline or shared memory in, mask inline or into a client segment. Ratios are to the raw p50 of the
same run, pooled and as the median of per-round ratios with a 95% interval (`round_ratios`).
`--clients 8` then measures 8 client processes calling one agent at once against one
client calling the raw runtime back to back (throughput). `--synthetic` runs the conv graph of
bench/agent_overhead.py at the same size instead, the second case.

Each `--spin` entry is one agent: a `--runtime-spin` mode, optionally followed by more `serve`
arguments for that agent ("run --concurrency 1,run" compares one run at a time with the default).

Run: .venv/bin/python bench/trained_overhead.py [--model runs/cookies-model] [--spin run,off]
     [--rounds 5] [--calls 10] [--clients 8] [--synthetic] [--settle-s 0.2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.synchronize
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_overhead import percentile, time_calls

from edge_agent.client import EdgeAgentClient, SharedMemoryBuffer
from edge_agent.model_package import INPUT_IMAGE
from edge_agent.model_package import load as load_package
from edge_agent.protocol import edge_agent_pb2 as pb
from edge_agent.testing.onnx_models import heavy_package

REPO = Path(__file__).resolve().parents[1]
COOKIES = REPO.parent / "shared" / "datasets" / "cookies" / "train.manifest"
MODEL = "cookies"
PATHS = ("inline>inline", "inline>segment", "shm>inline", "shm>segment")


def trained_model(directory: Path) -> Path:
    if not (directory / "manifest.json").is_file():
        print(f"training {directory} on {COOKIES} ...", file=sys.stderr, flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "edge_agent",
                "train",
                str(COOKIES),
                "--output",
                str(directory),
                "--project",
                "cookies",
                "--no-progress",
                "--overwrite",
            ],
            check=True,
        )
    return directory


def frame(width: int, height: int) -> np.ndarray:
    """A real cookie photo when the dataset is there, else noise (the graph's cost does not depend on it)."""
    images = sorted((COOKIES.parent / "training-images").glob("*.jpg"))
    if images:
        from PIL import Image

        with Image.open(images[0]) as im:
            return np.asarray(im.convert("RGB").resize((width, height)), dtype=np.uint8)
    return np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)


class Agent:
    def __init__(self, workdir: Path, package: Path, spin: str, threads: int, extra: list[str]) -> None:
        tag = f"{spin}-{len(list(workdir.glob('models-*')))}"
        self.socket = f"unix://{workdir}/agent-{tag}.sock"
        models = workdir / f"models-{tag}"
        models.mkdir()
        (models / MODEL).symlink_to(package.resolve())
        self.log = (workdir / f"agent-{tag}.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge_agent",
                "--log-level",
                "WARNING",
                "serve",
                "--socket",
                self.socket,
                "--models-dir",
                str(models),
                "--threads",
                str(threads),
                "--runtime-spin",
                spin,
                *extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = EdgeAgentClient(self.socket, timeout_s=120)
        self.client.wait_ready(60)
        self.client.start_model(MODEL, wait=True, timeout_s=300)

    def rss_mib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) >> 10

    def stop(self) -> None:
        self.client.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.log.close()


def requests(
    image: np.ndarray, shm: SharedMemoryBuffer, mask: SharedMemoryBuffer
) -> dict[str, pb.DetectAnomaliesRequest]:
    height, width = image.shape[:2]
    size = width * height * 3
    inline = pb.Bitmap(width=width, height=height, byte_data=image.tobytes())
    shared = pb.Bitmap(width=width, height=height, shared_memory_handle=shm.handle(size))
    out = {}
    for path in PATHS:
        source, target = path.split(">")
        request = pb.DetectAnomaliesRequest(
            model_component=MODEL, bitmap=inline if source == "inline" else shared
        )
        if target == "segment":
            request.anomaly_mask_params.shared_memory_handle.CopyFrom(mask.handle(size))
        out[path] = request
    return out


def _client_loop(
    socket: str,
    path: str,
    seconds: float,
    start: multiprocessing.synchronize.Barrier,
    results: multiprocessing.Queue,
) -> None:
    image = frame(*_size)
    with (
        EdgeAgentClient(socket, timeout_s=120) as client,
        SharedMemoryBuffer.create(image.size) as shm,
        SharedMemoryBuffer.create(image.size) as mask,
    ):
        shm.write(image)
        request = requests(image, shm, mask)[path]
        client.stub.DetectAnomalies(request, timeout=120)
        start.wait(120)  # all clients start together, after every process has imported and connected
        done, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            client.stub.DetectAnomalies(request, timeout=120)
            done += 1
        results.put(done)


_size = (768, 576)


def throughput(agent: Agent, path: str, clients: int, seconds: float) -> float:
    results: multiprocessing.Queue = multiprocessing.Queue()
    start = multiprocessing.Barrier(clients)
    procs = [
        multiprocessing.Process(target=_client_loop, args=(agent.socket, path, seconds, start, results))
        for _ in range(clients)
    ]
    for proc in procs:
        proc.start()
    total = sum(results.get(timeout=seconds + 120) for _ in procs)
    for proc in procs:
        proc.join()
    return total / seconds


def time_block(fn, calls: int, settle_s: float) -> list[float]:
    """One block of one path, after the previous block's threads have gone quiet.

    The raw baseline is ONNX Runtime's default session, whose workers keep spinning after a run
    returns: measured here, the first two agent calls after a raw block ran 3 ms (25%) slower inside
    the agent, on cores those spinners held, and were flat once the bench paused 0.2 s between
    blocks. No deployed client has a spinning session beside it, so every block starts after
    `settle_s` of quiet and one untimed call.
    """
    time.sleep(settle_s)
    fn()
    return time_calls(fn, calls)


def round_ratios(
    blocks: list[list[float]], raw_blocks: list[list[float]], resamples: int = 2000
) -> tuple[float, float, float]:
    """The median over rounds of (this path's block p50 / the raw block p50 of the same round), and
    its 95% bootstrap interval (rounds resampled).

    A round's blocks run within about a second of each other, so each round's ratio is measured at
    one speed of the machine; how far the ratios scatter from round to round is how precisely one
    run can state the ratio at all.
    """
    ratios = np.array([np.median(a) / np.median(r) for a, r in zip(blocks, raw_blocks, strict=True)])
    picks = np.random.default_rng(0).integers(0, len(ratios), (resamples, len(ratios)))
    low, high = np.percentile(np.median(ratios[picks], axis=1), [2.5, 97.5])
    return float(np.median(ratios)), float(low), float(high)


def raw_calls_per_second(run, seconds: float) -> float:
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        run()
        done += 1
    return done / seconds


def main() -> None:
    global _size
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "runs" / "cookies-model")
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument(
        "--spin",
        default="run,off",
        help='agents, comma-separated: a --runtime-spin mode, then optional serve arguments ("run --concurrency 2")',
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--clients", type=int, default=0, help="also measure N concurrent clients")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--settle-s", type=float, default=0.2, help="quiet before each block (time_block says why)"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ea-trained-", dir="/tmp"))
    if args.synthetic:
        package = heavy_package(workdir / "synthetic", 768, 576, side=224, layers=8, channels=32).directory
    else:
        package = trained_model(args.model)
    manifest = load_package(package).manifest
    _size = (manifest.width, manifest.height)
    image = frame(manifest.width, manifest.height)
    raw_session = ort.InferenceSession(
        str(load_package(package).graph_path), providers=["CPUExecutionProvider"]
    )
    # Each --spin entry is a mode, optionally followed by more `serve` arguments for that agent alone.
    agents = {
        entry: Agent(workdir, package, entry.split()[0], args.threads, entry.split()[1:])
        for entry in args.spin.split(",")
    }
    rows = []
    try:
        with SharedMemoryBuffer.create(image.size) as shm, SharedMemoryBuffer.create(image.size) as mask:
            shm.write(image)
            reqs = requests(image, shm, mask)
            calls = {"raw": lambda: raw_session.run(None, {INPUT_IMAGE: image})}
            for spin, agent in agents.items():
                for path, request in reqs.items():
                    calls[f"{spin} {path}"] = lambda a=agent, r=request: a.client.stub.DetectAnomalies(
                        r, timeout=120
                    )
            blocks: dict[str, list[list[float]]] = {name: [] for name in calls}
            for fn in calls.values():
                time_calls(fn, 3)
            for _ in range(args.rounds):
                for name, fn in calls.items():
                    blocks[name].append(time_block(fn, args.calls, args.settle_s))
        samples = {name: [t for block in runs for t in block] for name, runs in blocks.items()}
        raw, raw_p99 = percentile(samples["raw"], 50), percentile(samples["raw"], 99)
        for name, values in samples.items():
            p50, p99 = percentile(values, 50), percentile(values, 99)
            paired = round_ratios(blocks[name], blocks["raw"])
            rows.append((name, p50, p99, p50 / raw, paired, p99 / raw, p99 / raw_p99))
        tput = []
        if args.clients:
            # Alternating halves, as the latency blocks do: the machine's speed drifts within a run.
            rates: dict[str, list[float]] = {"raw": [], **{spin: [] for spin in agents}}
            for _ in range(2):
                time.sleep(args.settle_s)
                rates["raw"].append(raw_calls_per_second(calls["raw"], args.seconds / 2))
                for spin, agent in agents.items():
                    time.sleep(args.settle_s)
                    rates[spin].append(throughput(agent, "shm>segment", args.clients, args.seconds / 2))
            raw_rate = sum(rates["raw"]) / 2
            tput = [(spin, sum(rates[spin]) / 2, raw_rate) for spin in agents]
            for spin, agent in agents.items():
                print(f"agent {spin}: RSS {agent.rss_mib()} MiB after the clients", file=sys.stderr)
    finally:
        for agent in agents.values():
            agent.stop()
    what = "synthetic conv graph" if args.synthetic else f"trained cookies model {package}"
    print(
        f"\n{what}, {manifest.width}x{manifest.height}; cpu cores {os.cpu_count()}; onnxruntime "
        f"{ort.__version__}; rounds {args.rounds} x {args.calls} calls per path; raw = default session in the client\n"
    )
    print(
        "| path (agent spin, frame > mask) | p50 ms | p99 ms | p50 / raw p50 | median of round ratios [95% interval] | p99 / raw p50 | p99 / raw p99 |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, p50, p99, r50, (middle, low, high), r99, tail in rows:
        print(
            f"| {name} | {p50:.1f} | {p99:.1f} | {r50:.3f} | {middle:.3f} [{low:.3f}, {high:.3f}] | {r99:.3f} | {tail:.3f} |"
        )
    for spin, rate, raw_rate in tput:
        print(
            f"\n{args.clients} clients, shm in, mask into a segment, agent spin={spin}: {rate:.1f} frames/s; "
            f"one client calling the raw runtime back to back: {raw_rate:.1f} frames/s; ratio {rate / raw_rate:.2f}"
        )


if __name__ == "__main__":
    main()
