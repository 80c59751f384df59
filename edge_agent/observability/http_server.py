"""A small threaded HTTP server on loopback TCP or a Unix socket, for the agent's local endpoints.

The standard library's server, because these endpoints are few, small and local: /metrics, the
dashboard and its JSON, and the cloud-style detection endpoint. Handlers are plain functions from
a `Request` to a `Reply`; a bounded number run at once (more get 503), and request bodies have a
size limit, so a local client cannot make the agent take memory or threads without bound.
"""

from __future__ import annotations

import grp
import logging
import os
import socket
import socketserver
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from edge_agent.observability.config import ListenAddress, TcpAddress, UnixAddress

log = logging.getLogger(__name__)


class EndpointError(Exception):
    """An endpoint cannot listen where it was told to (the agent does not start)."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class _TcpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class LocalHTTPServer:
    def __init__(
        self,
        name: str,
        address: ListenAddress,
        handler: Callable[[Request], Reply],
        max_body_bytes: int = 1 << 20,
        max_active: int = 8,
        group: str | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self._handler = handler
        self._max_body = max_body_bytes
        self._slots = threading.BoundedSemaphore(max_active)
        request_handler = self._request_handler_class()
        try:
            if isinstance(address, UnixAddress):
                _claim_unix_path(address.path)
                old = os.umask(0o117)  # 0660 from the first instant
                try:
                    self._server: socketserver.BaseServer = _UnixServer(str(address.path), request_handler)
                finally:
                    os.umask(old)
                if group is not None:
                    os.chown(address.path, -1, _gid(group))
                st = address.path.stat()
                self._inode = (st.st_dev, st.st_ino)
                self.url = f"unix://{address.path}"
            else:
                server_class = _TcpServer
                if ":" in address.host:
                    server_class = type("_Tcp6Server", (_TcpServer,), {"address_family": socket.AF_INET6})
                self._server = server_class((address.host, address.port), request_handler)
                port = self._server.server_address[1]
                self.bound = TcpAddress(address.host, port)
                self.url = f"http://{self.bound}/"
        except OSError as exc:
            raise EndpointError(f"{name}: cannot listen on {address}: {exc.strerror or exc}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"http-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("event=http_listening endpoint=%s url=%s", self.name, self.url)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        if isinstance(self.address, UnixAddress):
            try:
                st = self.address.path.stat()
                if (st.st_dev, st.st_ino) == self._inode:
                    self.address.path.unlink()
            except OSError:
                pass

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            server_version = "edge-agent"
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                if not outer._slots.acquire(blocking=False):
                    self._send(Reply(503, b'{"Message": "too many requests in progress; retry"}'))
                    return
                try:
                    self._send(self._handle(method))
                finally:
                    outer._slots.release()

            def _handle(self, method: str) -> Reply:
                length_text = self.headers.get("Content-Length", "0")
                try:
                    length = int(length_text)
                except ValueError:
                    return Reply(400, b'{"Message": "Content-Length is not a number"}')
                if length > outer._max_body:
                    self.close_connection = True
                    return Reply(
                        413, b'{"Message": "the body is larger than this endpoint accepts (8 MB for images)"}'
                    )
                body = self.rfile.read(length) if length > 0 else b""
                parts = urlsplit(self.path)
                request = Request(
                    method,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                try:
                    return outer._handler(request)
                except Exception:
                    log.exception("event=http_handler_error endpoint=%s path=%r", outer.name, parts.path)
                    return Reply(500, b'{"Message": "internal error in the agent; see its log"}')

            def _send(self, reply: Reply) -> None:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            def address_string(self) -> str:
                return self.client_address[0] if isinstance(self.client_address, tuple) else "unix"

            def log_message(self, format: str, *args: object) -> None:
                log.debug("event=http_request endpoint=%s %s", outer.name, format % args)

        return _Handler


def not_found(path: str) -> Reply:
    return Reply(HTTPStatus.NOT_FOUND, f'{{"Message": "no such endpoint: {path[:80]!r}"}}'.encode())


def _claim_unix_path(path: Path) -> None:
    """Refuse a live listener; replace a stale socket file; never remove anything else."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise EndpointError(f"{path} exists and is not a socket; remove it or choose another address")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise EndpointError(f"something is already listening on {path}; stop it or choose another address")


def _gid(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            return int(group)
        raise EndpointError(f"group {group!r} does not exist") from None
