"""`edge-agent models health [NAME]`: the agent's grpc.health.v1 status, for scripts and recipes.

Exit code 0 when SERVING (the agent accepts calls; with NAME, that model is RUNNING), 1 when not
(NOT_SERVING, SERVICE_UNKNOWN, or a model the agent does not know), 3 when no agent answers on the
socket. `--wait` waits (Health.Watch) until SERVING or `--timeout`.
"""

from __future__ import annotations

import argparse

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge_agent.cli.output import emit_json, rpc_failure
from edge_agent.observability.health import AGENT_SERVICE, model_service

SERVING = health_pb2.HealthCheckResponse.SERVING


def status_name(status: int) -> str:
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


def check(socket: str, name: str | None, wait: bool, timeout_s: float) -> tuple[str, int]:
    """(status name, exit code) of the agent (name None) or of one model component."""
    service = model_service(name) if name else AGENT_SERVICE
    target = socket if socket.startswith("unix:") else f"unix://{socket}"
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=service)
        try:
            if not wait:
                status = stub.Check(request, timeout=timeout_s).status
            else:
                status = health_pb2.HealthCheckResponse.UNKNOWN
                try:
                    for reply in stub.Watch(request, timeout=timeout_s, wait_for_ready=True):
                        status = reply.status
                        if status == SERVING:
                            break
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                        raise
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return "NOT_FOUND", 1
            return exc.code().name, rpc_failure("models health", exc)
    return status_name(status), 0 if status == SERVING else 1


def run(args: argparse.Namespace) -> int:
    status, code = check(args.socket, args.name, args.wait, args.timeout)
    if args.json:
        emit_json({"service": model_service(args.name) if args.name else AGENT_SERVICE, "status": status})
    else:
        print(status)
    return code
