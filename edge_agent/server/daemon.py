"""The daemon: Unix socket (mode 0660, group, stale file), asyncio gRPC server, models-dir poller, signals.

Start-up order: claim the socket path (refuse a live agent, replace a stale file), bind under a
umask that yields the socket mode from the first instant, set the group, start the poller, log
`event=ready`. Shutdown (SIGTERM/SIGINT): stop accepting calls, let calls in flight finish (grace),
stop every model, remove our socket file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import grp
import logging
import os
import signal
import socket
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from edge_agent.client import DEFAULT_SOCKET  # the one default socket constant (re-exported here)
from edge_agent.errors import AgentError
from edge_agent.imaging import inplace
from edge_agent.imaging.shm import SegmentCache
from edge_agent.observability.attach import Observability
from edge_agent.observability.config import ObservabilityConfig
from edge_agent.observability.http_server import EndpointError
from edge_agent.registry import ModelRegistry, RegistryConfig
from edge_agent.server.service import EdgeAgentService, add_to_server

log = logging.getLogger(__name__)

SUN_PATH_MAX = 107  # bytes usable in sockaddr_un.sun_path
MAX_STREAMS_PER_CONNECTION = 128


class DaemonError(AgentError):
    """The daemon cannot start (exit code 3)."""


@dataclass(frozen=True)
class ServeConfig:
    socket: str = DEFAULT_SOCKET
    models: dict[str, Path] = field(default_factory=dict)
    models_dir: Path | None = None
    socket_group: str | None = None
    socket_mode: int = 0o660
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    detect_threads: int = 32  # DetectAnomalies calls in progress at once; more get RESOURCE_EXHAUSTED
    max_message_mb: int = 64  # a 4096x4096 RGB image inline is 48 MiB
    poll_interval_s: float = 1.0
    shutdown_grace_s: float = 5.0
    frames_in_place: bool | None = None  # None: read shared-memory frames in place where the guard is built
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)  # metrics, dashboard


def socket_path(address: str) -> Path:
    """`unix:///abs/path.sock`, `unix:/abs/path.sock`, `unix:rel.sock` or a plain path."""
    if address.startswith("unix://"):
        path = address[len("unix://") :]
    elif address.startswith("unix:"):
        path = address[len("unix:") :]
    elif "://" in address:
        raise DaemonError(f"socket {address!r} is not a Unix socket address; use unix:///path/to/agent.sock")
    else:
        path = address
    if not path:
        raise DaemonError("socket path is empty")
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise DaemonError(f"socket path {path!r} is longer than {SUN_PATH_MAX} bytes; choose a shorter path")
    return Path(path)


def claim_socket_path(path: Path) -> None:
    """Refuse a live agent on `path`; remove a stale socket left by a dead one."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise DaemonError(f"{path} exists and is not a socket; remove it or choose another --socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise DaemonError(
                f"cannot check whether an agent is listening on {path}: {exc.strerror}"
            ) from None
        path.unlink(missing_ok=True)
        log.info("event=stale_socket_removed socket=%s", path)
        return
    finally:
        probe.close()
    raise DaemonError(
        f"another agent is already listening on {path}: stop it first or start this one with another --socket"
    )


class Daemon:
    """A running agent: `await start()`, then `await wait()` until `request_stop()`, then `await shutdown()`."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.path = socket_path(config.socket)
        self.registry = ModelRegistry(config.registry, config.models, config.models_dir)
        self.segments = SegmentCache(in_place=config.frames_in_place)
        self._poller_stop = threading.Event()
        self._stop_requested = asyncio.Event()
        self._server: grpc.aio.Server | None = None
        self._service: EdgeAgentService | None = None
        self._socket_inode: tuple[int, int] | None = None
        self.observability = Observability(
            config.observability,
            self.registry,
            self.segments,
            lambda: getattr(self._service, "_detect_calls", 0),
        )

    async def start(self) -> None:
        config = self.config
        if config.models_dir is not None and not config.models_dir.is_dir():
            raise DaemonError(f"--models-dir {config.models_dir} is not a directory")
        gid = _group_id(config.socket_group)
        claim_socket_path(self.path)
        message_bytes = config.max_message_mb * (1 << 20)
        server = grpc.aio.server(
            interceptors=self.observability.interceptors(),
            options=[
                ("grpc.max_receive_message_length", message_bytes),
                ("grpc.max_send_message_length", message_bytes),
                ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
            ],
        )
        self._service = EdgeAgentService(self.registry, self.segments, config.detect_threads)
        add_to_server(self._service, server)
        self.observability.add_to_server(server)  # grpc.health.v1.Health
        # The socket is bound inside add_insecure_port: the umask must already give the final mode.
        old_umask = os.umask(0o777 & ~config.socket_mode)
        try:
            bound = server.add_insecure_port(f"unix://{self.path.absolute()}")
            if not bound:
                raise DaemonError(f"cannot listen on {self.path}")
            await server.start()
        except RuntimeError as exc:
            raise DaemonError(f"cannot listen on {self.path}: {exc}") from None
        finally:
            os.umask(old_umask)
        try:
            if gid is not None:
                os.chown(self.path, -1, gid)
            os.chmod(self.path, config.socket_mode)
            st = self.path.stat()
        except OSError as exc:
            await server.stop(None)
            raise DaemonError(f"cannot set permissions on {self.path}: {exc.strerror}") from None
        self._socket_inode = (st.st_dev, st.st_ino)
        self._server = server
        try:
            await self.observability.start(f"unix://{self.path.absolute()}")
        except EndpointError as exc:
            await self.shutdown()
            raise DaemonError(str(exc)) from None
        threading.Thread(target=self._housekeeping, name="housekeeping", daemon=True).start()
        log.info(
            "event=ready socket=%s mode=%o group=%s models=%d frames=%s",
            self.path,
            config.socket_mode,
            config.socket_group or "-",
            len(self.registry.list()),
            "in_place" if self.segments.in_place else f"copied guard={inplace.UNAVAILABLE_REASON or 'off'!r}",
        )

    def _housekeeping(self) -> None:
        """Every poll interval: pick up models-dir changes, release segments their owners unlinked."""
        while not self._poller_stop.wait(self.config.poll_interval_s):
            try:
                self.registry.sync()
            except Exception:
                log.exception("event=models_dir_sync_error")
            try:
                self.segments.drop_unlinked()
            except Exception:
                log.exception("event=segment_sweep_error")

    def request_stop(self) -> None:
        self._stop_requested.set()

    async def wait(self) -> None:
        await self._stop_requested.wait()

    async def shutdown(self) -> None:
        """Stop serving, stop models, remove our socket file. Idempotent."""
        self._poller_stop.set()
        server, self._server = self._server, None
        if server is None:
            return
        log.info("event=shutting_down socket=%s", self.path)
        await self.observability.stop()  # health NOT_SERVING before the socket closes
        await server.stop(self.config.shutdown_grace_s)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.registry.close)
        if self._service is not None:
            await loop.run_in_executor(None, self._service.close)
        await loop.run_in_executor(None, self.observability.close)
        self.segments.close()
        with contextlib.suppress(OSError):
            st = self.path.stat()
            if (st.st_dev, st.st_ino) == self._socket_inode:
                self.path.unlink()
        log.info("event=stopped socket=%s", self.path)


def serve(config: ServeConfig) -> None:
    """Run the agent until SIGTERM or SIGINT."""
    asyncio.run(_serve(config))


async def _serve(config: ServeConfig) -> None:
    daemon = Daemon(config)
    loop = asyncio.get_running_loop()
    # Before start(): a SIGTERM that lands while the socket is being set up stops the agent cleanly.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, daemon, signum)
    await daemon.start()
    try:
        await daemon.wait()
    finally:
        await daemon.shutdown()


def _on_signal(daemon: Daemon, signum: int) -> None:
    log.info("event=signal signal=%s", signal.Signals(signum).name)
    daemon.request_stop()


def _group_id(group: str | None) -> int | None:
    if group is None:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            return int(group)
        raise DaemonError(f"socket group {group!r} does not exist (create it, e.g. ggc_group)") from None
