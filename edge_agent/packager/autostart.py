"""Start a model on the agent if it is not running: the guide's start_model_if_needed loop.

Waits for the agent's socket and for the agent to see the model (it picks up the models folder
on its own), then StartModel and poll DescribeModel until RUNNING. Uses the committed stubs only.
"""

from __future__ import annotations

import logging
import os
import time

import grpc

from edge_agent.errors import AgentError
from edge_agent.protocol import edge_agent_pb2 as pb2
from edge_agent.protocol import edge_agent_pb2_grpc as pb2_grpc

log = logging.getLogger(__name__)
POLL_S = 0.5
DEFAULT_SOCKET = "unix:///tmp/aws.iot.lookoutvision.EdgeAgent.sock"


def socket_path(target: str) -> str:
    return target[len("unix://") :] if target.startswith("unix://") else target


def start_model_if_needed(target: str, component: str, timeout_s: float = 300.0) -> str:
    """Return the final status name (RUNNING); raise AgentError on FAILED or timeout."""
    target = target or DEFAULT_SOCKET
    if not target.startswith("unix:"):
        target = f"unix://{target}"
    deadline = time.monotonic() + timeout_s
    path = socket_path(target)
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise AgentError(
                f"the agent socket {path} did not appear within {timeout_s:.0f} s; is the agent running?"
            )
        time.sleep(POLL_S)
    started = False
    with grpc.insecure_channel(target) as channel:
        stub = pb2_grpc.EdgeAgentStub(channel)
        while True:
            if time.monotonic() > deadline:
                raise AgentError(f"model {component} did not reach RUNNING within {timeout_s:.0f} s")
            try:
                status = stub.DescribeModel(
                    pb2.DescribeModelRequest(model_component=component)
                ).model_description
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                    time.sleep(POLL_S)  # agent still starting or not yet scanned the models folder
                    continue
                raise AgentError(f"DescribeModel {component}: {exc.code().name} {exc.details()}") from None
            name = pb2.ModelStatus.Name(status.status)
            if name == "RUNNING":
                return name
            if name == "FAILED" and started:
                raise AgentError(f"model {component} failed to start: {status.status_message}")
            if name in ("STOPPED", "FAILED"):
                try:
                    stub.StartModel(pb2.StartModelRequest(model_component=component))
                    started = True
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:  # raced with another starter
                        raise AgentError(
                            f"StartModel {component}: {exc.code().name} {exc.details()}"
                        ) from None
            log.info("op=autostart model=%s status=%s waiting", component, name)
            time.sleep(POLL_S)
