"""A hostile PatSnap the tests run themselves: raw HTTP on 127.0.0.1 that answers whatever a test scripts.

Unlike the emulator (a faithful model of PatSnap), this server makes no promise at all: a route is a
function that writes raw bytes to the socket, so a test can send a gzip bomb, a body that never
ends, a header PatSnap would never send, or a connection cut mid-body. Tests of the trust boundary
use it so they do not depend on the provider's own assumptions about the remote side.

``ConnectAudit`` records every outgoing ``socket.connect`` of the process (a ``sys.addaudithook``),
so a test of a refused address can prove that nothing was dialled, rather than relying on the
address being unreachable.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

TOKEN = "tok-hostile-0123456789abcdef"


@dataclass
class Exchange:
    """One request as the server saw it, and the socket to answer on."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    wfile: Any

    def send(
        self,
        status: int = 200,
        body: bytes | str = b"",
        headers: dict[str, str] | None = None,
        *,
        content_length: bool = True,
    ) -> None:
        """A whole answer (``content_length=False``: no length, the body ends when the connection does)."""
        data = body.encode() if isinstance(body, str) else body
        head = [f"HTTP/1.1 {status} X"]
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}")
        if content_length:
            head.append(f"Content-Length: {len(data)}")
        head.append("Connection: close")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)

    def json(self, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(payload), {"Content-Type": "application/json", **(headers or {})})

    def envelope(self, data: Any = None, code: int = 0, msg: str | None = None) -> None:
        body: dict[str, Any] = {"data": data, "status": code == 0, "error_code": code}
        if msg is not None:
            body["error_msg"] = msg
        self.json(body)

    def stream(self, chunks: Iterator[bytes], headers: dict[str, str] | None = None, status: int = 200) -> None:
        """A chunked answer fed from ``chunks`` until it ends or the client goes away."""
        head = [f"HTTP/1.1 {status} X", "Transfer-Encoding: chunked", "Connection: close"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        with contextlib.suppress(OSError):
            for chunk in chunks:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")


Route = Callable[[Exchange], None]


@dataclass
class HostileServer:
    """Routes by path (the part before ``?``); an unknown path answers 404. ``token_route`` is built in."""

    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[Exchange] = field(default_factory=list)
    #: Answers any path no route names (instead of a 404).
    fallback: Route | None = None

    def __post_init__(self) -> None:
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(65537).decode("latin-1").strip()
                if not line:
                    return
                method, target, _ = [*line.split(" ", 2), "", ""][:3]
                headers: dict[str, str] = {}
                while (raw := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
                    name, _, value = raw.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = self.rfile.read(int(headers.get("content-length", "0") or 0))
                exchange = Exchange(method, target, headers, body, self.wfile)
                server.seen.append(exchange)
                route = server.routes.get(target.split("?", 1)[0], server.fallback)
                with contextlib.suppress(OSError):
                    if route is None:
                        exchange.send(404, b"not here")
                    else:
                        route(exchange)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.routes.setdefault("/oauth/token", token_route)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def calls(self, path: str) -> list[Exchange]:
        return [e for e in self.seen if e.path.split("?", 1)[0] == path]


def token_route(exchange: Exchange) -> None:
    exchange.json({"token": TOKEN, "token_type": "BearerToken", "expires_in": 1799, "status": "approved"})


def gzip_bomb(size: int) -> bytes:
    """``size`` bytes of zeros, gzip-compressed (about 1,000 to 1)."""
    out = gzip.compress(b"\0" * min(size, 64 * 1024 * 1024), compresslevel=9)
    return out


def endless(block: bytes = b"x" * 65536, pause: float = 0.0) -> Iterator[bytes]:
    while True:
        yield block
        if pause:
            time.sleep(pause)


class ConnectAudit:
    """Every ``socket.connect`` the process makes while active (its ``(host, port)``)."""

    _installed = False
    _active: ConnectAudit | None = None

    def __init__(self) -> None:
        self.addresses: list[tuple[str, int]] = []

    @classmethod
    def _hook(cls, event: str, args: tuple[Any, ...]) -> None:
        audit = cls._active
        if audit is not None and event == "socket.connect":
            sock, address = args
            if isinstance(address, tuple) and sock.family in (socket.AF_INET, socket.AF_INET6):
                audit.addresses.append((str(address[0]), int(address[1])))

    def __enter__(self) -> ConnectAudit:
        if not ConnectAudit._installed:  # an audit hook cannot be removed: install one, switch it
            sys.addaudithook(ConnectAudit._hook)
            ConnectAudit._installed = True
        ConnectAudit._active = self
        return self

    def __exit__(self, *exc: object) -> None:
        ConnectAudit._active = None

    def hosts(self) -> set[str]:
        return {host for host, _ in self.addresses}
