"""What the daemon calls: build what `ObservabilityConfig` asks for, hook it in, start and stop it.

The daemon's part is four calls: `interceptors()` when it creates the gRPC server,
`add_to_server(server)` before binding, `await start(socket)` once it accepts calls and
`await stop()` / `close()` around its shutdown. Health is always on; metrics (and with them the
store, the dashboard and the frame ring) only with `--metrics-address`; HTTP detection only with
`--http-detect-address`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from edge_agent.errors import AgentError
from edge_agent.imaging.shm import SegmentCache
from edge_agent.observability.config import ObservabilityConfig
from edge_agent.observability.dashboard import DashboardRoutes
from edge_agent.observability.frames import FrameRing
from edge_agent.observability.health import HealthReporter
from edge_agent.observability.http_detect import MAX_IMAGE_BYTES, DetectRoutes
from edge_agent.observability.http_server import LocalHTTPServer
from edge_agent.observability.interceptor import MetricsInterceptor
from edge_agent.observability.labels import ModelLabels, read_labels
from edge_agent.observability.metrics import AgentMetrics
from edge_agent.observability.store import StatsStore
from edge_agent.registry import ModelRegistry

log = logging.getLogger(__name__)


class Observability:
    def __init__(
        self,
        config: ObservabilityConfig,
        registry: ModelRegistry,
        segments: SegmentCache,
        detect_calls: Callable[[], int] = lambda: 0,
    ) -> None:
        self.config = config
        self.registry = registry
        self.health = HealthReporter()
        registry.add_listener(self.health.model_changed)
        self.metrics: AgentMetrics | None = None
        self.store: StatsStore | None = None
        self.frames: FrameRing | None = None
        self._interceptors: list[grpc.aio.ServerInterceptor] = []
        self._servers: list[LocalHTTPServer] = []
        self._detect_routes: DetectRoutes | None = None
        if config.metrics_enabled:
            self.metrics = AgentMetrics(
                model_directory=registry.model_directory,
                model_states=registry.list,
                in_flight=registry.in_flight,
                frames_in_place=lambda: segments.in_place,
                fallback_copies=lambda: segments.fallback_copies,
                detect_calls=detect_calls,
            )
            registry.add_listener(self.metrics.model_changed)
            self.store = StatsStore(config.stats_db)
            self.metrics.add_sink(self.store.add)
            if config.anomalous_frames > 0:
                self.frames = FrameRing(config.anomalous_frames, segments)
            transport = "shared_memory_in_place" if segments.in_place else "shared_memory_copied"
            self._interceptors.append(
                MetricsInterceptor(
                    self.metrics,
                    shared_memory_transport=lambda: transport,
                    on_anomaly=None if self.frames is None else self.frames.offer,
                )
            )

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return list(self._interceptors)

    def add_to_server(self, server: grpc.aio.Server) -> None:
        self.health.add_to_server(server)

    def model_labels(self) -> list[ModelLabels]:
        out = []
        for info in self.registry.list():
            try:
                out.append(read_labels(info.name, self.registry.model_directory(info.name)))
            except AgentError:
                continue  # removed meanwhile
        return out

    async def start(self, agent_socket: str) -> None:
        """The agent accepts calls: health SERVING, endpoints listening (each refuses to start if it
        cannot bind where it was told, and the agent with it)."""
        config = self.config
        loop = asyncio.get_running_loop()
        try:
            if self.metrics is not None and self.store is not None and config.metrics_address is not None:
                routes = DashboardRoutes(
                    self.metrics, self.store, self.frames, self.registry.list, lambda: self.health.serving
                )
                self._servers.append(
                    LocalHTTPServer("metrics", config.metrics_address, routes, group=config.endpoint_group)
                )
            if config.http_detect_address is not None:
                self._detect_routes = DetectRoutes(agent_socket, self.model_labels)
                self._servers.append(
                    LocalHTTPServer(
                        "http-detect",
                        config.http_detect_address,
                        self._detect_routes,
                        max_body_bytes=MAX_IMAGE_BYTES,
                        group=config.endpoint_group,
                    )
                )
        except BaseException:
            await loop.run_in_executor(None, self.close)
            raise
        for server in self._servers:
            server.start()
        await self.health.start([(info.name, info.status) for info in self.registry.list()])

    async def stop(self) -> None:
        """Shutdown begins: health NOT_SERVING first, so supervisors stop sending work."""
        await self.health.stop()

    def close(self) -> None:
        """After the gRPC server stopped: close the endpoints, write the store's last counts."""
        for server in self._servers:
            server.close()
        self._servers.clear()
        if self._detect_routes is not None:
            self._detect_routes.close()
        if self.store is not None:
            self.store.close()
            self.store = None
