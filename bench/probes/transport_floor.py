"""The floor under any agent: the trained model behind a bare grpc.aio server and behind a bare socket.

Servers, each its own process with the agent's session options on the same graph: a grpc.aio
server whose empty unary call runs the model on a worker thread (as the agent does, `aio_thread`),
the same on the event loop (`aio_loop`), a synchronous `grpc.server` running it in its handler
thread (`sync`), and a Unix socket that answers one byte per model run (`socket`, the least any IPC
costs). `KIND:SPIN` gives that server another `--runtime-spin` mode (`aio_thread:always`).
The client alternates blocks of calls between them and ONNX Runtime's default session in this
process, with a pause before each block (bench/trained_overhead.py `time_block` says why), and
prints each p50 against the raw p50, pooled and per round (`trained_overhead.round_ratios`).
`NAME@VAR=VALUE;...` adds a server with that environment
(for example `aio_thread@GRPC_EXPERIMENTS=-event_engine_callback_cq`).

Run: .venv/bin/python bench/probes/transport_floor.py MODEL_DIR [--rounds 12] [--servers aio_thread,aio_loop,socket,aio_thread:always]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
import grpc
import numpy as np
import onnxruntime as ort

from edge_agent.runtime import RuntimeOptions, open_runtime

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trained_overhead import round_ratios


def feeds_for(session: ort.InferenceSession) -> dict[str, np.ndarray]:
    first = session.get_inputs()[0]
    return {first.name: np.random.default_rng(0).integers(0, 255, first.shape, dtype=np.uint8)}


def listen(server: grpc.Server | grpc.aio.Server, handler: object, path: str) -> None:
    """The floor's one method, /Floor/Run, on the Unix socket `path` (sync and aio servers alike)."""
    method = grpc.unary_unary_rpc_method_handler(handler)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("Floor", {"Run": method}),))
    server.add_insecure_port(f"unix://{path}")


def serve(entry: str, model: Path, path: str) -> None:
    kind, _, spin = entry.partition(":")
    options = RuntimeOptions(spin=spin) if spin else RuntimeOptions()  # the agent's options
    session = open_runtime("cpu", model / "model.onnx", options)._session
    feeds = feeds_for(session)

    def run(*_: object) -> bytes:
        session.run(None, feeds)
        return b""

    if kind == "sync":
        server = grpc.server(ThreadPoolExecutor(2))
        listen(server, run, path)
        server.start()
        server.wait_for_termination()
        return

    if kind == "socket":
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        listener.listen(1)
        connection, _ = listener.accept()
        while connection.recv(16):
            run()
            connection.sendall(b"x")
        return

    async def main() -> None:
        pool, loop = ThreadPoolExecutor(1), asyncio.get_running_loop()

        async def on_loop(request: bytes, context: object) -> bytes:
            return run()

        async def on_thread(request: bytes, context: object) -> bytes:
            return await loop.run_in_executor(pool, run)

        server = grpc.aio.server()
        listen(server, on_loop if kind == "aio_loop" else on_thread, path)
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--servers", default="aio_thread,aio_loop,socket")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ea-floor-"))
    servers = {}
    for index, entry in enumerate(args.servers.split(",")):
        kind, _, variables = entry.partition("@")
        env = dict(os.environ, **dict(v.split("=", 1) for v in variables.split(";") if v))
        path = str(work / f"s{index}")
        process = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, str(args.model), path], env=env
        )
        servers[entry] = (kind.partition(":")[0], path, process)
    raw_session = ort.InferenceSession(str(args.model / "model.onnx"), providers=["CPUExecutionProvider"])
    raw_feeds = feeds_for(raw_session)
    calls = {"raw": lambda: raw_session.run(None, raw_feeds)}
    try:
        for entry, (kind, path, _) in servers.items():
            deadline = time.monotonic() + 60
            while not os.path.exists(path):
                assert time.monotonic() < deadline, f"{entry} did not start"
                time.sleep(0.1)
            if kind == "socket":
                client = socket.socket(socket.AF_UNIX)
                client.connect(path)
                calls[entry] = lambda c=client: (c.sendall(b"x"), c.recv(16))
            else:
                stub = grpc.insecure_channel(f"unix://{path}").unary_unary("/Floor/Run")
                calls[entry] = lambda s=stub: s(b"", timeout=60)
        blocks: dict[str, list[list[float]]] = {name: [] for name in calls}
        for _ in range(args.rounds):
            for name, call in calls.items():
                time.sleep(0.2)
                call()
                block = []
                for _ in range(args.calls):
                    started = time.perf_counter()
                    call()
                    block.append(time.perf_counter() - started)
                blocks[name].append(block)
    finally:
        for _, _, process in servers.values():
            process.kill()
    times = {name: [t for block in runs for t in block] for name, runs in blocks.items()}
    raw = float(np.percentile(times["raw"], 50))
    print(
        f"{args.model}; onnxruntime {ort.__version__}, grpcio {grpc.__version__}; {args.rounds} x {args.calls} calls"
    )
    print(
        "| path | p50 ms | p50 / raw p50 | median of round ratios [95% interval] | p50 - raw p50 ms |\n"
        "|---|---|---|---|---|"
    )
    for name, values in times.items():
        p50 = float(np.percentile(values, 50))
        middle, low, high = round_ratios(blocks[name], blocks["raw"])
        print(
            f"| {name} | {p50 * 1e3:.2f} | {p50 / raw:.3f} | {middle:.3f} [{low:.3f}, {high:.3f}] "
            f"| {(p50 - raw) * 1e3:+.2f} |"
        )


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve(sys.argv[2], Path(sys.argv[3]), sys.argv[4])
    else:
        main()
