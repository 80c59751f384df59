"""`edge-agent serve`: run the daemon."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

# Before anything imports ONNX Runtime: it would start telemetry (files under $HOME) on import.
# See edge_agent/runtime/ort_session.py.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from edge_agent.cli import observability_args
from edge_agent.errors import InvalidInputError
from edge_agent.registry import RegistryConfig
from edge_agent.runtime import BACKENDS, RuntimeOptions
from edge_agent.runtime.base import SPIN_MODES
from edge_agent.server.daemon import DEFAULT_SOCKET, DaemonError, ServeConfig, serve

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", default=DEFAULT_SOCKET, help="unix:///PATH.sock (default: %(default)s)")
    parser.add_argument(
        "--model", action="append", default=[], metavar="NAME=DIR", help="serve the model package DIR as NAME"
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        help="one sub-directory per model component; watched for additions and removals",
    )
    parser.add_argument("--socket-group", help="group that may use the socket, e.g. ggc_group")
    parser.add_argument(
        "--socket-mode", default="0660", help="socket file mode, octal (default: %(default)s)"
    )
    parser.add_argument("--backend", default="cpu", choices=sorted(BACKENDS), help="inference runtime")
    parser.add_argument("--threads", type=int, default=0, help="runtime threads per model (0: all cores)")
    parser.add_argument(
        "--runtime-spin",
        default="run",
        choices=sorted(SPIN_MODES),
        help="how ONNX Runtime's workers wait: 'run' spin between a run's operators and stop when it "
        "returns (default), 'off' never spin, 'always' keep spinning after runs (docs/agent.md)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        help="runs of one model at the same time (default: 2 on the cpu backend, where a lone call still "
        "takes every core and overlapping calls share them, side by side; 1 on GPU backends)",
    )
    parser.add_argument("--queue-depth", type=int, default=8, help="requests per model that may wait")
    parser.add_argument(
        "--detect-threads",
        type=int,
        default=32,
        help="DetectAnomalies calls in progress at once; more are refused",
    )
    parser.add_argument("--memory-limit-mb", type=int, help="memory budget for all loaded models")
    parser.add_argument("--max-message-mb", type=int, default=64, help="largest gRPC message (inline images)")
    parser.add_argument(
        "--max-inflight-mb",
        type=int,
        default=256,
        help="request bytes all calls in progress may hold; a call beyond it gets RESOURCE_EXHAUSTED "
        "(default: %(default)s, five 4096x4096 inline frames)",
    )
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between models-dir scans")
    parser.add_argument("--engine-cache", type=Path, help="where GPU backends cache compiled engines")
    parser.add_argument(
        "--device-id", type=int, default=0, help="CUDA device the GPU backends use (default 0)"
    )
    parser.add_argument(
        "--copy-frames",
        action="store_true",
        help="copy shared-memory frames instead of reading them in place (the default where the "
        "SIGBUS guard is built)",
    )
    observability_args.add_arguments(parser)


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    models: dict[str, Path] = {}
    for spec in args.model:
        name, sep, directory = spec.partition("=")
        if not sep or not name or not directory:
            raise InvalidInputError(f"--model {spec!r}: expected NAME=DIR")
        if name in models:
            raise InvalidInputError(f"--model {name!r} is given twice")
        models[name] = Path(directory)
    try:
        mode = int(args.socket_mode, 8)
    except ValueError:
        raise InvalidInputError(
            f"--socket-mode {args.socket_mode!r} is not an octal mode like 0660"
        ) from None
    concurrency = args.concurrency if args.concurrency is not None else 2 if args.backend == "cpu" else 1
    for option, value, low in (
        ("--concurrency", concurrency, 1),
        ("--queue-depth", args.queue_depth, 0),
        ("--threads", args.threads, 0),
        ("--device-id", args.device_id, 0),
        ("--detect-threads", args.detect_threads, 1),
        ("--max-message-mb", args.max_message_mb, 1),
        ("--max-inflight-mb", args.max_inflight_mb, 1),
    ):
        if value < low:
            raise InvalidInputError(f"{option} is {value}; it must be at least {low}")
    if not args.poll_interval > 0:
        raise InvalidInputError(f"--poll-interval is {args.poll_interval}; it must be more than 0 seconds")
    registry = RegistryConfig(
        backend=args.backend,
        runtime=RuntimeOptions(
            intra_op_threads=args.threads,
            spin=args.runtime_spin,
            device_id=args.device_id,
            cache_dir=args.engine_cache,
        ),
        concurrency=concurrency,
        queue_depth=args.queue_depth,
        memory_limit_bytes=None if args.memory_limit_mb is None else args.memory_limit_mb << 20,
    )
    return ServeConfig(
        socket=args.socket,
        models=models,
        models_dir=args.models_dir,
        socket_group=args.socket_group,
        socket_mode=mode,
        registry=registry,
        detect_threads=args.detect_threads,
        max_message_mb=args.max_message_mb,
        max_inflight_mb=args.max_inflight_mb,
        poll_interval_s=args.poll_interval,
        frames_in_place=False if args.copy_frames else None,
        observability=observability_args.config_from_args(args),
    )


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        serve(config)
    except DaemonError as exc:
        log.error("event=start_failed reason=%r", str(exc))
        return 3
    return 0
