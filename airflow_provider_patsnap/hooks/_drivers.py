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
import time
import weakref
from contextlib import closing
from typing import Any

import httpx
import requests
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError

from airflow_provider_patsnap import metrics
from airflow_provider_patsnap.errors import PatsnapError
from airflow_provider_patsnap.hooks import _retry
from airflow_provider_patsnap.hooks._core import (
    Acquire,
    Lock,
    Mark,
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
from airflow_provider_patsnap.hooks._deadline import deadline, watched_session
from airflow_provider_patsnap.hooks._token_cache import TOKEN_CACHE
from airflow_provider_patsnap.version_compat import amask_secret, mask_secret

USER_AGENT = "airflow-provider-patsnap"

# ------------------------------------------------------------------------------------ requests


#: Only what ``_body`` can undo under its cap (requests and httpx would offer brotli and zstd too).
ACCEPT_ENCODING = "gzip, deflate"
_READ_CHUNK = 64 * 1024


def new_session() -> requests.Session:
    """A session whose exchanges a deadline can end, that never sends ``~/.netrc`` credentials."""
    session = watched_session()
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept-Encoding"] = ACCEPT_ENCODING
    return session


class _Deadline(Exception):
    pass


def _read_capped(chunks: Any, limit: int, deadline: float) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of ``chunks``, and whether there were more; ``_Deadline`` past ``deadline``."""
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            return bytes(body[:limit]), True
        if time.monotonic() > deadline:
            raise _Deadline
    return bytes(body), False


def _requests_send(session: requests.Session, request: Request) -> Response | TransportFailure:
    # A read timeout restarts with every byte: the watch ends a dripped answer, headers or body, on time.
    with deadline(request.deadline) as watch:
        reply = _requests_exchange(session, request, time.monotonic() + request.deadline)
    if watch.expired:  # whatever was read by then may be a cut answer (even headers that look whole)
        return TransportFailure(name="AnswerDeadlineExceeded", connected=True)
    return reply


def _requests_exchange(session: requests.Session, request: Request, deadline_at: float) -> Response | TransportFailure:
    try:
        answer = session.request(
            request.method,
            request.url,
            timeout=(request.connect_timeout, request.read_timeout),
            allow_redirects=False,
            stream=True,  # the body is read below: raw, capped and within the deadline
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
    with answer:
        try:
            # Undecoded: a compressed answer is inflated by the body gate, under the same cap.
            content, oversize = _read_capped(
                answer.raw.stream(_READ_CHUNK, decode_content=False), request.max_body, deadline_at
            )
        except _Deadline:
            return TransportFailure(name="AnswerDeadlineExceeded", connected=True)
        except (HTTPError, OSError, requests.RequestException) as exc:
            return TransportFailure(name=type(exc).__name__, connected=True)
    return Response(answer.status_code, answer.headers, content, oversize)


class Stopped(Exception):
    """Raised by ``run`` when its ``stop`` event is set: another thread asked the call to end."""


def run(steps: Steps[T], session: requests.Session, stop: threading.Event | None = None) -> T:
    """Perform ``steps`` with blocking I/O; return what the sequence returns (or raise what it raises).
    With ``stop``, the call ends (``Stopped``) before its next step once the event is set, except a
    send: it follows the mark that recorded it as sent, and a request recorded as sent goes out."""
    with closing(steps):  # on an interrupt, the sequence's own cleanup (the token lock) runs now
        done, value = advance(steps, None)
        while not done:
            if stop is not None and stop.is_set() and not isinstance(value, Send):
                raise Stopped("stopped by another batch's failure")
            done, value = advance(steps, _perform(value, session))
        return value  # type: ignore[no-any-return]


def _perform(step: Step, session: requests.Session) -> Any:
    if isinstance(step, Send):
        return _requests_send(session, step.request)
    if isinstance(step, Acquire):
        started = time.monotonic()
        try:
            return step.limiter.acquire(step.priority)
        except PatsnapError as exc:  # handed back to the sequence, which decides (e.g. retries)
            return exc
        finally:
            metrics.timing("ratelimit.wait", time.monotonic() - started, priority=step.priority.name.lower())
    if isinstance(step, Sleep):
        return _retry.sleep(step.seconds)
    if isinstance(step, Lock):
        lock = TOKEN_CACHE.lock(step.key)
        lock.acquire()
        return lock.release
    if isinstance(step, MaskSecret):
        return mask_secret(step.value)
    if isinstance(step, Mark):
        return step.note()
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
            limits=_POOL, follow_redirects=False, headers={"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING}
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
        return await asyncio.wait_for(_httpx_exchange(request, timeout), request.deadline)
    except asyncio.TimeoutError:
        return TransportFailure(name="AnswerDeadlineExceeded", connected=True)
    except httpx.HTTPError as exc:
        unconnected = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        return TransportFailure(name=type(exc).__name__, connected=not unconnected)
    finally:
        gate.release()


async def _httpx_exchange(request: Request, timeout: httpx.Timeout) -> Response:
    client = shared_async_client()
    async with client.stream(request.method, request.url, timeout=timeout, **request.send_kwargs()) as answer:
        if answer.is_stream_consumed:  # an in-memory answer (a mock transport): httpx already decoded it
            headers = answer.headers.copy()
            headers.pop("Content-Encoding", None)
            content = answer.content
            return Response(answer.status_code, headers, content[: request.max_body], len(content) > request.max_body)
        body = bytearray()
        async for chunk in answer.aiter_raw():  # undecoded, as in the blocking driver
            body += chunk
            if len(body) > request.max_body:
                return Response(answer.status_code, answer.headers, bytes(body[: request.max_body]), True)
    return Response(answer.status_code, answer.headers, bytes(body))


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
        started = time.monotonic()
        try:
            return await step.limiter.aacquire(step.priority)
        except PatsnapError as exc:
            return exc
        finally:
            metrics.timing("ratelimit.wait", time.monotonic() - started, priority=step.priority.name.lower())
    if isinstance(step, Sleep):
        return await _retry.asleep(step.seconds)
    if isinstance(step, Lock):
        lock = TOKEN_CACHE.async_lock(step.key)
        await lock.acquire()
        return lock.release
    if isinstance(step, MaskSecret):
        return await amask_secret(step.value)
    if isinstance(step, Mark):
        return step.note()
    raise TypeError(f"unknown step {step!r}")
