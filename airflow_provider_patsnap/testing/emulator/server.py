"""HTTP plumbing shared by the API and CDN listeners: the threaded loopback server and the base handler."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import sys
import threading
import traceback
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from .protocol import E_INTERNAL, HOST, MAX_BODY, _error

if TYPE_CHECKING:
    from .state import PatsnapEmulator


class _Server(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server on loopback that can drop all of its open connections on stop."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler], emulator: PatsnapEmulator) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((HOST, port), handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # skip HTTPServer's reverse DNS lookup
        self.server_name, self.server_port = HOST, self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Keep stderr quiet: a vanished client is normal, anything else is recorded on the emulator."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            self.emulator._record_error(traceback.format_exc())

    def drop_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _BadRequestError(Exception):
    """The request could not be framed (bad Content-Length, oversize body, bad chunking)."""


class _Handler(BaseHTTPRequestHandler):
    # Headers and body go out in separate writes; with Nagle on, each answer on a kept-alive
    # connection would wait ~40 ms for the client's delayed ACK (a real server sends them together).
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "PatsnapEmulator/1.0"
    sys_version = ""
    timeout = 300
    server: _Server
    _headers_sent = False

    def log_message(self, *args: Any) -> None:
        """Silence the default stderr access log."""

    def version_string(self) -> str:
        return self.server_version

    def end_headers(self) -> None:
        self._headers_sent = True
        super().end_headers()

    @property
    def emu(self) -> PatsnapEmulator:
        return self.server.emulator

    def _handle(self) -> None:
        self._headers_sent = False
        try:
            body = self._read_body()
        except OSError:
            self.close_connection = True
            return
        except (_BadRequestError, ValueError):
            self.close_connection = True
            self._send(400, b"Bad Request", "text/plain; charset=utf-8", close=True)
            return
        try:
            self.dispatch(body)
        except OSError:  # the client went away or the emulator is stopping
            self.close_connection = True
        except Exception:
            self.close_connection = True
            self.emu._record_error(traceback.format_exc())
            if not self._headers_sent:
                with contextlib.suppress(OSError):
                    self._send_json(500, _error(*E_INTERNAL), close=True)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def dispatch(self, body: bytes) -> None:
        raise NotImplementedError

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"x", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                if len(data) + size > MAX_BODY:
                    raise _BadRequestError("body too large")
                data += self.rfile.read(size)
                self.rfile.readline(1024)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        size = int(length)
        if size < 0 or size > MAX_BODY:
            raise _BadRequestError("bad Content-Length")
        return self.rfile.read(size)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Iterable[tuple[str, str]] = (),
        close: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        if close:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(
        self, status: int, payload: Any, headers: Iterable[tuple[str, str]] = (), close: bool = False
    ) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8", headers, close)


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None
