"""Where one DetectAnomalies call's time goes, stage by stage, on a trained model.

Starts the real agent in a wrapper process (`--as-agent`) that stamps CLOCK_MONOTONIC (Python's
perf_counter, comparable across processes on Linux) as the request bytes are parsed, as the
coroutine and the detection thread start and end, and around the ONNX Runtime run, the mask write
and the response encoding; the client stamps before and after each call. Prints p50 and p90 of each
stage. Nothing in the agent is changed but the timers.

Run: .venv/bin/python bench/probes/agent_call_split.py MODEL_DIR ['shm>segment'|'shm>inline'] [serve args...]
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from wrapped_agent import timed_calls

STAGES = (
    ("request: client -> bytes parsed", "t0", "parsed"),
    ("parsed -> coroutine", "parsed", "co_in"),
    ("coroutine -> detection thread", "co_in", "thr_in"),
    ("decode, checks, frame mapping", "thr_in", "ort_in"),
    ("ONNX Runtime run", "ort_in", "ort_out"),
    ("leave slot and mapping, interpret", "ort_out", "pred_out"),
    ("mask into the segment", "pred_out", "mask_out"),
    ("encode the response", "mask_out", "thr_out"),
    ("detection thread -> coroutine end", "thr_out", "co_out"),
    ("response: coroutine end -> client", "co_out", "t3"),
    ("total", "t0", "t3"),
)


def as_agent(out: str, argv: list[str]) -> int:
    """The real agent with timers wrapped around its stages; the stamps are written at exit."""
    from edge_agent.cli import main
    from edge_agent.runtime import ort_session
    from edge_agent.server import intake, service

    stamps: list[dict[str, float]] = []
    now: dict[str, float] = {}

    def timed(owner, name: str, after: str, before: str | None = None) -> None:
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if before:
                now[before] = time.perf_counter()
            result = original(*args, **kwargs)
            now[after] = time.perf_counter()
            return result

        setattr(owner, name, wrapper)

    timed(ort_session.OrtRuntime, "run", "ort_out", "ort_in")
    timed(service.EdgeAgentService, "_detect", "thr_out", "thr_in")
    timed(service.EdgeAgentService, "_predict", "pred_out")
    timed(service.EdgeAgentService, "_write_mask", "mask_out")
    detect = service.EdgeAgentService.DetectAnomalies

    async def detect_anomalies(self, request, context):
        started = time.perf_counter()
        result = await detect(self, request, context)
        stamps.append(dict(now, co_in=started, co_out=time.perf_counter()))
        return result

    service.EdgeAgentService.DetectAnomalies = detect_anomalies
    deserializer = intake.deserializer

    def stamped_deserializer(*args, **kwargs):
        parse = deserializer(*args, **kwargs)

        def stamped(data: bytes):
            now["parsed"] = time.perf_counter()
            return parse(data)

        return stamped

    intake.deserializer = stamped_deserializer
    atexit.register(lambda: Path(out).write_text(json.dumps(stamps)))
    return main(argv)


def measure(model: Path, path: str, serve_args: list[str], calls: int = 150, skip: int = 20) -> None:
    ends, recorded = timed_calls(__file__, model, path, calls, serve_args)
    stamps = recorded[-calls:]
    rows = [dict(s, t0=t0, t3=t3) for (t0, t3), s in zip(ends, stamps, strict=True)][skip:]
    print(f"{model}, {path}, {len(rows)} calls; serve {' '.join(serve_args) or '(defaults)'}")
    print("| stage | p50 ms | p90 ms |\n|---|---|---|")
    for label, start, end in STAGES:
        values = [row[end] - row[start] for row in rows if start in row and end in row]
        if values:
            print(
                f"| {label} | {np.percentile(values, 50) * 1e3:.3f} | {np.percentile(values, 90) * 1e3:.3f} |"
            )


if __name__ == "__main__":
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    if sys.argv[1] == "--as-agent":
        sys.exit(as_agent(sys.argv[2], sys.argv[3:]))
    measure(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "shm>segment", sys.argv[3:])
