"""`edge-agent models list|describe|start|stop|health`: manage models on a running agent."""

from __future__ import annotations

import argparse

import grpc

from edge_agent.cli.output import emit_json, rpc_failure
from edge_agent.client import DEFAULT_SOCKET, EdgeAgentClient, ModelState
from edge_agent.errors import InvalidInputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "describe", "start", "stop", "health"])
    parser.add_argument(
        "name", nargs="?", help="model component name (describe, start, stop; health: that model's)"
    )
    parser.add_argument("--socket", default=DEFAULT_SOCKET, help="agent socket (default: %(default)s)")
    parser.add_argument(
        "--wait",
        action="store_true",
        help="start: wait until RUNNING (fails if FAILED); health: wait until SERVING",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait with --wait")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: argparse.Namespace) -> int:
    if args.action == "health":  # grpc.health.v1: exit code 0 when SERVING
        from edge_agent.cli import health

        return health.run(args)
    if args.action != "list" and not args.name:
        raise InvalidInputError(f"models {args.action} needs a model component name")
    with EdgeAgentClient(args.socket) as agent:
        try:
            if args.action == "list":
                _print_states(agent.list_models(), args.json)
            elif args.action == "describe":
                _print_states([agent.describe_model(args.name)], args.json)
            elif args.action == "start":
                state = agent.start_model(args.name, wait=args.wait, timeout_s=args.timeout)
                _print_states([state], args.json)
            else:
                emit_json({"model_component": args.name, "status": agent.stop_model(args.name)})
        except grpc.RpcError as exc:
            return rpc_failure(f"models {args.action}", exc)
    return 0


def _print_states(states: list[ModelState], as_json: bool) -> None:
    if as_json:
        for state in states:
            emit_json(state.to_json())
        return
    rows = [("MODEL_COMPONENT", "STATUS", "ARN", "MESSAGE")] + [
        (s.name, s.status, s.arn, s.status_message) for s in states
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3])
