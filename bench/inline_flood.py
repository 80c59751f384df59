"""Memory of the agent under rounds of large inline DetectAnomalies calls to a STOPPED model.

Each call is refused (FAILED_PRECONDITION: the model is stopped, or RESOURCE_EXHAUSTED beyond
--max-inflight-mb), so nothing but the request bytes is ever allocated for it. What the agent holds
afterwards is what it failed to release. The script starts the real agent, runs `--rounds` rounds of
`--concurrency` concurrent 4096x4096 inline calls (48 MiB each, one channel per caller thread), and
prints per round: every call's status code, the agent's peak RSS during the round (VmHWM is reset
per round through /proc/PID/clear_refs) and its RSS after `--idle` seconds.

    .venv/bin/python bench/inline_flood.py --rounds 4 --concurrency 12
    .venv/bin/python bench/inline_flood.py --rounds 1 --concurrency 32
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_agent.client import MAX_MESSAGE_BYTES  # noqa: E402
from edge_agent.protocol import edge_agent_pb2 as pb  # noqa: E402
from edge_agent.protocol import edge_agent_pb2_grpc as pb_grpc  # noqa: E402
from edge_agent.testing.onnx_models import bright_blob_package  # noqa: E402

SIDE = 4096


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    with open(f"/proc/{pid}/clear_refs", "w") as handle:
        handle.write("5")


def call_once(socket: str, request: pb.DetectAnomaliesRequest, codes: collections.Counter, lock) -> None:
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    with grpc.insecure_channel(socket, options=options) as channel:
        stub = pb_grpc.EdgeAgentStub(channel)
        try:
            stub.DetectAnomalies(request, timeout=120)
            code = "OK"
        except grpc.RpcError as exc:
            code = exc.code().name
    with lock:
        codes[code] += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds idle before RSS is read")
    parser.add_argument("--agent-arg", action="append", default=[], help="extra `serve` argument")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ea-flood-", dir="/tmp"))
    try:
        models = work / "models"
        bright_blob_package(models / "stopped")
        socket = f"unix://{work}/agent.sock"
        log = (work / "agent.log").open("wb")
        agent = subprocess.Popen(
            [
                *(sys.executable, "-m", "edge_agent", "serve", "--socket", socket),
                *("--models-dir", str(models), *args.agent_arg),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        with grpc.insecure_channel(socket) as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
        pid = agent.pid
        request = pb.DetectAnomaliesRequest(
            model_component="stopped",
            bitmap=pb.Bitmap(width=SIDE, height=SIDE, byte_data=bytes(SIDE * SIDE * 3)),
        )
        print(f"agent pid {pid}, RSS at start {status_kib(pid, 'VmRSS') / 1024:.0f} MiB")
        print("round | calls | codes | peak RSS MiB | RSS after idle MiB")
        ok = True
        for round_index in range(1, args.rounds + 1):
            reset_peak(pid)
            codes: collections.Counter = collections.Counter()
            lock = threading.Lock()
            threads = [
                threading.Thread(target=call_once, args=(socket, request, codes, lock))
                for _ in range(args.concurrency)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            peak = status_kib(pid, "VmHWM") / 1024
            time.sleep(args.idle)
            idle = status_kib(pid, "VmRSS") / 1024
            answered = sum(codes.values())
            ok &= answered == args.concurrency
            print(
                f"{round_index} | {answered}/{args.concurrency} | {dict(sorted(codes.items()))} | "
                f"{peak:.0f} | {idle:.0f}",
                flush=True,
            )
        agent.terminate()
        print(f"agent exit {agent.wait(60)}")
        log.close()
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
