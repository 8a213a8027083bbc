"""The two transports that perform the call core's steps: ``requests`` (tasks) and ``httpx`` (triggers).

Each driver only translates: a ``Request`` into its library's call, the library's answer into a
``Response``, and its exceptions into a ``TransportFailure`` that says whether a connection existed.
What the failure *means* is decided in ``errors.py``.

One ``httpx.AsyncClient`` per event loop is shared by every hook in the process, so a triggerer
running many PatSnap triggers keeps one small connection pool (and, through the module-level token
cache, one token per account) instead of one per trigger.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from contextlib import closing
from typing import Any

import httpx
import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from airflow_provider_patsnap.errors import PatsnapError
from airflow_provider_patsnap.hooks import _retry
from airflow_provider_patsnap.hooks._core import (
    Acquire,
    Lock,
    MaskSecret,
    Request,
    Response,
    Send,
    Sleep,
    Step,
    Steps,
    T,
    TransportFailure,
    advance,
)
from airflow_provider_patsnap.hooks._token_cache import TOKEN_CACHE
from airflow_provider_patsnap.version_compat import amask_secret, mask_secret

USER_AGENT = "airflow-provider-patsnap"

# ------------------------------------------------------------------------------------ requests


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session


def _requests_send(session: requests.Session, request: Request) -> Response | TransportFailure:
    try:
        answer = session.request(
            request.method,
            request.url,
            timeout=(request.connect_timeout, request.read_timeout),
            allow_redirects=False,
            **request.send_kwargs(),
        )
    except requests.RequestException as exc:
        # requests wraps urllib3's MaxRetryError; its reason says whether a connection was ever made
        # (NewConnectionError covers refused connections and, as NameResolutionError, DNS failures).
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        unconnected = isinstance(exc, requests.ConnectTimeout) or isinstance(
            reason, (NewConnectionError, ConnectTimeoutError)
        )
        return TransportFailure(name=type(exc).__name__, connected=not unconnected)
    return Response(answer.status_code, answer.headers, answer.content)


class Stopped(Exception):
    """Raised by ``run`` when its ``stop`` event is set: another thread asked the call to end."""


def run(steps: Steps[T], session: requests.Session, stop: threading.Event | None = None) -> T:
    """Perform ``steps`` with blocking I/O; return what the sequence returns (or raise what it raises).
    With ``stop``, the call ends (``Stopped``) before its next step once the event is set."""
    with closing(steps):  # on an interrupt, the sequence's own cleanup (the token lock) runs now
        done, value = advance(steps, None)
        while not done:
            if stop is not None and stop.is_set():
                raise Stopped("stopped by another batch's failure")
            done, value = advance(steps, _perform(value, session))
        return value  # type: ignore[no-any-return]


def _perform(step: Step, session: requests.Session) -> Any:
    if isinstance(step, Send):
        return _requests_send(session, step.request)
    if isinstance(step, Acquire):
        try:
            return step.limiter.acquire(step.priority)
        except PatsnapError as exc:  # handed back to the sequence, which decides (e.g. retries)
            return exc
    if isinstance(step, Sleep):
        return _retry.sleep(step.seconds)
    if isinstance(step, Lock):
        lock = TOKEN_CACHE.lock(step.key)
        lock.acquire()
        return lock.release
    if isinstance(step, MaskSecret):
        return mask_secret(step.value)
    raise TypeError(f"unknown step {step!r}")


# ------------------------------------------------------------------------------------ httpx

_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()
#: Equal limits on purpose: httpcore 1.0.x compares ``max_keepalive_connections`` with *all* pooled
#: connections, not the idle ones (encode/httpcore#1000), so a lower keep-alive limit closes every
#: connection that goes idle while more than that many exist: one TCP connect per request under load.
_MAX_CONNECTIONS = 16
_POOL = httpx.Limits(max_connections=_MAX_CONNECTIONS, max_keepalive_connections=_MAX_CONNECTIONS)
#: At most this many requests are handed to httpx at a time. httpcore rescans its whole request queue
#: and every connection whenever a request starts or ends (encode/httpcore#1035), so with hundreds of
#: polls due together each would cost O(queue) CPU; waiting on a semaphore instead costs O(1). Half
#: the pool keeps a free connection for each admitted request; 8 in flight at ~200 ms per status
#: call is ~40 polls/s, above the ~33/s that 1,000 jobs polled every 30 s need.
_IN_FLIGHT = 8
_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def shared_async_client() -> httpx.AsyncClient:
    """The event loop's shared client (created on first use)."""
    loop = asyncio.get_running_loop()
    client = _CLIENTS.get(loop)
    if client is None or client.is_closed:
        client = _CLIENTS[loop] = httpx.AsyncClient(
            limits=_POOL, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )
    return client


async def close_shared_async_client() -> None:
    """Close this loop's shared client (tests and benchmarks; the triggerer keeps it for life)."""
    client = _CLIENTS.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


async def _httpx_send(request: Request) -> Response | TransportFailure:
    loop = asyncio.get_running_loop()
    gate = _GATES.get(loop)
    if gate is None:
        gate = _GATES[loop] = asyncio.Semaphore(_IN_FLIGHT)
    timeout = httpx.Timeout(request.read_timeout, connect=request.connect_timeout)
    try:
        # Waiting for the gate replaces httpx's own pool wait, so it gets the same time limit.
        await asyncio.wait_for(gate.acquire(), timeout.pool)
    except asyncio.TimeoutError:
        return TransportFailure(name="PoolTimeout", connected=False)
    try:
        answer = await shared_async_client().request(
            request.method, request.url, timeout=timeout, **request.send_kwargs()
        )
    except httpx.HTTPError as exc:
        unconnected = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        return TransportFailure(name=type(exc).__name__, connected=not unconnected)
    finally:
        gate.release()
    return Response(answer.status_code, answer.headers, answer.content)


async def arun(steps: Steps[T]) -> T:
    """Perform ``steps`` on the running event loop (nothing blocks it)."""
    with closing(steps):  # a cancelled trigger releases the token lock at once
        done, value = advance(steps, None)
        while not done:
            done, value = advance(steps, await _aperform(value))
        return value  # type: ignore[no-any-return]


async def _aperform(step: Step) -> Any:
    if isinstance(step, Send):
        return await _httpx_send(step.request)
    if isinstance(step, Acquire):
        try:
            return await step.limiter.aacquire(step.priority)
        except PatsnapError as exc:
            return exc
    if isinstance(step, Sleep):
        return await _retry.asleep(step.seconds)
    if isinstance(step, Lock):
        lock = TOKEN_CACHE.async_lock(step.key)
        await lock.acquire()
        return lock.release
    if isinstance(step, MaskSecret):
        return await amask_secret(step.value)
    raise TypeError(f"unknown step {step!r}")
