"""Read the agent's /metrics from outside the agent (the CloudWatch publisher, scripts): stdlib only."""

from __future__ import annotations

import http.client
import socket


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def fetch(address: str, path: str = "/metrics", timeout_s: float = 10.0) -> str:
    """GET `path` from `unix:///x.sock`, `http://127.0.0.1:9464` or `127.0.0.1:9464`; the body as text."""
    if address.startswith("unix:"):
        socket_path = address[len("unix://") :] if address.startswith("unix://") else address[len("unix:") :]
        connection: http.client.HTTPConnection = _UnixConnection(socket_path, timeout_s)
    else:
        hostport = address.split("://", 1)[-1].rstrip("/")
        host, _, port = hostport.rpartition(":")
        connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout_s)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise OSError(f"GET {path} from {address}: HTTP {response.status}")
        return body.decode("utf-8")
    finally:
        connection.close()
