"""`serve` flags of the observability endpoints (kept here so serve.py stays about serving)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_agent.errors import InvalidInputError
from edge_agent.observability.config import ObservabilityConfig, parse_address


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("observability (all off by default)")
    group.add_argument(
        "--metrics-address",
        metavar="ADDR",
        help="serve /metrics (Prometheus), /healthz and the dashboard on 127.0.0.1:PORT, [::1]:PORT "
        "or unix:///PATH.sock; loopback only",
    )
    group.add_argument(
        "--stats-db",
        type=Path,
        metavar="FILE",
        help="SQLite file keeping the dashboard's hourly counts across restarts (default: memory only)",
    )
    group.add_argument(
        "--dashboard-frames",
        type=int,
        default=0,
        metavar="N",
        help="keep thumbnails of the last N anomalous frames (masks overlaid) in memory for the "
        "dashboard; frames can be sensitive, so 0 (none) by default",
    )
    group.add_argument(
        "--http-detect-address",
        metavar="ADDR",
        help="cloud-style DetectAnomalies over HTTP (POST image/png or image/jpeg) on loopback or a "
        "Unix socket",
    )


def config_from_args(args: argparse.Namespace) -> ObservabilityConfig:
    metrics = (
        None if args.metrics_address is None else parse_address("--metrics-address", args.metrics_address)
    )
    detect = (
        None
        if args.http_detect_address is None
        else parse_address("--http-detect-address", args.http_detect_address)
    )
    if args.dashboard_frames < 0:
        raise InvalidInputError(f"--dashboard-frames is {args.dashboard_frames}; it must be at least 0")
    if metrics is None and (args.stats_db is not None or args.dashboard_frames):
        raise InvalidInputError(
            "--stats-db and --dashboard-frames need --metrics-address (the dashboard's home)"
        )
    if metrics is not None and metrics == detect:
        raise InvalidInputError("--metrics-address and --http-detect-address must differ")
    return ObservabilityConfig(
        metrics_address=metrics,
        stats_db=args.stats_db,
        anomalous_frames=args.dashboard_frames,
        http_detect_address=detect,
        endpoint_group=args.socket_group,
    )
