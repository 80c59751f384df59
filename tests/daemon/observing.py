"""Helpers for observability tests: HTTP over a Unix socket, parsed /metrics, a process's listeners."""

from __future__ import annotations

import http.client
import os
import re
import socket
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import AgentProcess


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def http_request(
    target: str, method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """`target` is unix:///path.sock or http://host:port."""
    if target.startswith("unix://"):
        connection: http.client.HTTPConnection = UnixHTTPConnection(Path(target[len("unix://") :]))
    else:
        host, port = target[len("http://") :].rstrip("/").rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, url, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def scrape(target: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    status, headers, body = http_request(target, "GET", "/metrics")
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels` (0 when there are none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def listening_url(agent: AgentProcess, endpoint: str, timeout_s: float = 30.0) -> str:
    """The URL an endpoint logged (`event=http_listening endpoint=... url=...`)."""
    pattern = re.compile(rf"event=http_listening endpoint={re.escape(endpoint)} url=(\S+)")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = pattern.search(agent.log())
        if match:
            return match.group(1)
        time.sleep(0.05)
    raise AssertionError(f"endpoint {endpoint} did not log its address; log:\n{agent.log()}")


def listeners(pid: int) -> dict[str, set[str]]:
    """Sockets the process listens on: {"tcp": {"127.0.0.1:PORT", ...}, "unix": {paths}}."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    out: dict[str, set[str]] = {"tcp": set(), "unix": set()}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                out["tcp"].add(_address(fields[1]))
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and int(fields[3], 16) & 0x10000 and fields[6] in inodes:  # __SO_ACCEPTCON
            out["unix"].add(os.path.normpath(fields[7]))
    return out


def _address(hex_address: str) -> str:
    host, port = hex_address.split(":")
    if len(host) == 8:
        ip = ".".join(str(int(host[i : i + 2], 16)) for i in (6, 4, 2, 0))
    else:
        import ipaddress

        words = [bytes.fromhex(host[i : i + 8])[::-1] for i in range(0, 32, 8)]
        ip = f"[{ipaddress.IPv6Address(b''.join(words))}]"
    return f"{ip}:{int(port, 16)}"
