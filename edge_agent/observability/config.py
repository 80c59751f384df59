"""What `serve` was asked to expose, and where: loopback TCP or a Unix socket, nowhere else."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from edge_agent.errors import InvalidInputError

SUN_PATH_MAX = 107


@dataclass(frozen=True)
class TcpAddress:
    host: str  # a loopback IP literal
    port: int  # 0: any free port (the agent logs the one it got)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class UnixAddress:
    path: Path

    def __str__(self) -> str:
        return f"unix://{self.path}"


ListenAddress = Union[TcpAddress, UnixAddress]  # evaluated at run time: no `X | Y` on Python 3.8


def parse_address(option: str, value: str) -> ListenAddress:
    """`127.0.0.1:9464`, `localhost:9464`, `[::1]:9464` or `unix:///run/agent-metrics.sock`.

    Only loopback and Unix sockets: these endpoints have no authentication, so they never listen on
    an interface other machines can reach (a scraper on the device forwards them; see the docs).
    """
    if value.startswith("unix:"):
        path = value[len("unix://") :] if value.startswith("unix://") else value[len("unix:") :]
        if not path:
            raise InvalidInputError(f"{option} {value!r}: the socket path is empty")
        if len(os.fsencode(path)) > SUN_PATH_MAX:
            raise InvalidInputError(
                f"{option} {value!r}: the socket path is longer than {SUN_PATH_MAX} bytes"
            )
        return UnixAddress(Path(path))
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise InvalidInputError(
            f"{option} {value!r}: expected HOST:PORT on loopback (127.0.0.1:9464) or unix:///path.sock"
        )
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host == "localhost":
        host = "127.0.0.1"
    try:
        port = int(port_text)
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise InvalidInputError(
            f"{option} {value!r}: expected a loopback IP address and a port, e.g. 127.0.0.1:9464"
        ) from None
    if not 0 <= port <= 65535:
        raise InvalidInputError(f"{option} {value!r}: port {port} is outside 0..65535")
    if not ip.is_loopback:
        raise InvalidInputError(
            f"{option} {value!r}: {host} is not a loopback address; the endpoint has no authentication, "
            "so it listens only on loopback (127.0.0.1, ::1) or a Unix socket"
        )
    return TcpAddress(str(ip), port)


@dataclass(frozen=True)
class ObservabilityConfig:
    metrics_address: ListenAddress | None = None  # /metrics, /healthz and the dashboard; None: off
    stats_db: Path | None = None  # SQLite history for the dashboard; None: kept in memory only
    anomalous_frames: int = 0  # thumbnails of the last N anomalous frames on the dashboard; 0: none
    http_detect_address: ListenAddress | None = None  # cloud-style DetectAnomalies over HTTP; None: off
    endpoint_group: str | None = None  # group of the Unix sockets of these endpoints (as --socket-group)

    @property
    def metrics_enabled(self) -> bool:
        return self.metrics_address is not None
