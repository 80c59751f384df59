"""The standard grpc.health.v1.Health service on the agent's own socket (grpcio-health-checking).

Service names:
- `""` and `AWS.LookoutVision.EdgeAgent`: SERVING while the agent accepts calls; NOT_SERVING from
  the moment shutdown starts.
- `AWS.LookoutVision.EdgeAgent/<model component>`: SERVING while that model is RUNNING; NOT_SERVING
  while it is STOPPED, STARTING, STOPPING or FAILED; SERVICE_UNKNOWN once it is removed. A name the
  agent never knew answers Check with NOT_FOUND (the standard's behaviour).

State changes arrive from registry threads; they are queued onto the event loop and applied in
order by one task, so a Watch stream sees them in the order they happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from edge_agent.protocol.edge_agent_pb2 import RUNNING

log = logging.getLogger(__name__)

AGENT_SERVICE = "AWS.LookoutVision.EdgeAgent"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


def model_service(model_component: str) -> str:
    """The health service name of one model component."""
    return f"{AGENT_SERVICE}/{model_component}"


class HealthReporter:
    """Owns the Health servicer; `model_changed` is the registry listener (any thread)."""

    def __init__(self) -> None:
        self.servicer = health_aio.HealthServicer()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._updates: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self.serving = False

    def add_to_server(self, server: grpc.aio.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, server)

    async def start(self, models: list[tuple[str, int]]) -> None:
        """Call on the event loop once the agent accepts calls, with each model's current status."""
        self._loop = asyncio.get_running_loop()
        self._updates = asyncio.Queue()
        for name, status in models:
            await self.servicer.set(model_service(name), SERVING if status == RUNNING else NOT_SERVING)
        await self.servicer.set("", SERVING)
        await self.servicer.set(AGENT_SERVICE, SERVING)
        self.serving = True
        self._task = asyncio.ensure_future(self._apply())

    def model_changed(self, name: str, status: int | None) -> None:
        loop, updates = self._loop, self._updates
        if loop is None or updates is None:
            return  # not serving yet: start() reads the states
        value = SERVICE_UNKNOWN if status is None else SERVING if status == RUNNING else NOT_SERVING
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(updates.put_nowait, (model_service(name), value))

    async def _apply(self) -> None:
        assert self._updates is not None
        while True:
            service, value = await self._updates.get()
            await self.servicer.set(service, value)

    async def stop(self) -> None:
        """Shutdown begins: every service NOT_SERVING (Watch streams are told), later sets ignored."""
        self.serving = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.servicer.enter_graceful_shutdown()
