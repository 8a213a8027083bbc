"""A wall-clock deadline for a whole blocking HTTP exchange, however slowly the server answers.

A socket's read timeout restarts with every byte, so a server that drips one byte every 29 s never
trips a 30 s timeout: not while sending headers, not while sending a body. The sessions built here
remember, per thread, the connection each request uses; :func:`deadline` arms a timer that shuts
that connection's socket down when the time is up, so the blocked read returns at once and the
caller sees :attr:`Watch.expired`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


class Watch:
    """The connection a thread's exchange uses, and whether its deadline passed."""

    def __init__(self) -> None:
        self.connection: Any = None
        self.expired = False
        self._lock = threading.Lock()

    def use(self, connection: Any) -> None:
        with self._lock:
            self.connection = connection
            if self.expired:
                _shut(connection)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            _shut(self.connection)


def _shut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    """Pool mixin: note the connection handed to this thread's request."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)  # type: ignore[misc]
        watch = getattr(_current, "watch", None)
        if watch is not None:
            watch.use(connection)
        return connection


class _WatchedHTTPPool(_Watched, HTTPConnectionPool):
    pass


class _WatchedHTTPSPool(_Watched, HTTPSConnectionPool):
    pass


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _NoNetrc(requests.auth.AuthBase):
    """Session-level auth that adds nothing: it stops requests reading ``~/.netrc`` (whose credentials
    would go to any host, a download link's included), while a request's own auth still applies."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


def watched_session() -> requests.Session:
    """A session whose exchanges :func:`deadline` can cut short, and that never sends netrc credentials."""
    session = requests.Session()
    session.auth = _NoNetrc()
    adapter = _WatchedAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Watch]:
    """Within the block, this thread's exchanges on a :func:`watched_session` end at ``seconds``."""
    watch = Watch()
    previous = getattr(_current, "watch", None)
    _current.watch = watch
    timer = threading.Timer(max(seconds, 0.0), watch.expire)
    timer.daemon = True
    timer.start()
    try:
        yield watch
    finally:
        timer.cancel()
        _current.watch = previous
