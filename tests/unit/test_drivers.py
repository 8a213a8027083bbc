"""hooks/_drivers.py: the requests and httpx transports. What each failure says about whether a
connection existed (so whether PatSnap may have seen the request), and how the steps are performed."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import requests
import responses
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from airflow_provider_patsnap.hooks import _drivers
from airflow_provider_patsnap.hooks._core import Lock, MaskSecret, Request, Response, Send, Sleep, TransportFailure
from airflow_provider_patsnap.hooks._token_cache import TOKEN_CACHE

URL = "https://patsnap.test/innovation/company-report/job_id/status"


def _wrapped(reason: Exception) -> requests.ConnectionError:
    """What requests raises when urllib3 gives up: a ConnectionError around MaxRetryError(reason)."""
    return requests.ConnectionError(MaxRetryError(None, URL, reason=reason))  # type: ignore[arg-type]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- requests: classification


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(requests.ConnectTimeout("connect timed out"), id="connect-timeout"),
        pytest.param(_wrapped(NewConnectionError(None, "Connection refused")), id="refused"),  # type: ignore[arg-type]
        pytest.param(
            _wrapped(NameResolutionError("patsnap.test", None, OSError("Name or service not known"))),  # type: ignore[arg-type]
            id="dns",
        ),
        pytest.param(_wrapped(ConnectTimeoutError(None, "connect timed out")), id="connect-timeout-reason"),
    ],
)
def test_requests_failures_before_a_connection_are_not_connected(error: Exception) -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(URL, body=error)
        failure = _drivers._requests_send(_drivers.new_session(), Request("GET", URL))
    assert failure == TransportFailure(name=type(error).__name__, connected=False)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(requests.ReadTimeout("read timed out"), id="read-timeout"),
        pytest.param(requests.ConnectionError("Connection reset by peer"), id="reset"),
        pytest.param(_wrapped(ProtocolError("Connection aborted.")), id="aborted"),
        pytest.param(_wrapped(ReadTimeoutError(None, URL, "read timed out")), id="read-timeout-reason"),  # type: ignore[arg-type]
        pytest.param(requests.exceptions.ChunkedEncodingError("incomplete"), id="chunked"),
        pytest.param(requests.exceptions.SSLError("bad handshake"), id="ssl"),
        pytest.param(requests.exceptions.TooManyRedirects("loop"), id="redirects"),
    ],
)
def test_requests_failures_after_connecting_may_have_reached_patsnap(error: Exception) -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(URL, body=error)
        failure = _drivers._requests_send(_drivers.new_session(), Request("GET", URL))
    assert failure == TransportFailure(name=type(error).__name__, connected=True)


def test_requests_a_refused_loopback_connection_is_not_connected(closed_port: int) -> None:
    request = Request("GET", f"http://127.0.0.1:{closed_port}/x", connect_timeout=2, read_timeout=2)
    assert _drivers._requests_send(_drivers.new_session(), request) == TransportFailure("ConnectionError", False)


def test_requests_the_failure_carries_no_library_message() -> None:
    secret = "sk-never-in-a-failure"
    with responses.RequestsMock() as rsps:
        rsps.get(URL, body=requests.ConnectionError(f"failed for {URL}?apikey={secret}"))
        failure = _drivers._requests_send(_drivers.new_session(), Request("GET", URL))
    assert secret not in repr(failure)


# --------------------------------------------------------------------------- requests: what is sent


def test_requests_sends_the_request_as_described() -> None:
    with responses.RequestsMock() as rsps:
        rsps.post(URL, status=201, body=b'{"ok": true}', headers={"X-Trace": "t-1"})
        answer = _drivers._requests_send(
            _drivers.new_session(),
            Request("POST", URL, params={"apikey": "cid"}, json={"report_type": "pdf"}, headers={"A": "b"}),
        )
        (call,) = rsps.calls
    assert answer == Response(201, answer.headers, b'{"ok": true}')  # type: ignore[union-attr]
    assert answer.headers["X-Trace"] == "t-1"  # type: ignore[union-attr]
    assert call.request.url == f"{URL}?apikey=cid"
    assert json.loads(call.request.body) == {"report_type": "pdf"}
    assert call.request.headers["A"] == "b" and call.request.headers["User-Agent"] == _drivers.USER_AGENT


def test_requests_sends_forms_with_basic_auth() -> None:
    with responses.RequestsMock() as rsps:
        rsps.post(URL, body=b"{}")
        _drivers._requests_send(
            _drivers.new_session(),
            Request("POST", URL, form={"grant_type": "client_credentials"}, basic_auth=("cid", "secret")),
        )
        (call,) = rsps.calls
    assert call.request.body == "grant_type=client_credentials"
    assert call.request.headers["Authorization"] == "Basic Y2lkOnNlY3JldA=="


def test_requests_does_not_follow_redirects() -> None:
    # A redirect could carry credentials to another host, or a billable POST a second time.
    with responses.RequestsMock() as rsps:
        rsps.get(URL, status=302, headers={"Location": "https://elsewhere.test/x"})
        answer = _drivers._requests_send(_drivers.new_session(), Request("GET", URL))
        assert len(rsps.calls) == 1
    assert isinstance(answer, Response) and answer.status == 302


# --------------------------------------------------------------------------- requests: performing steps


def _sequence(*steps: Any, result: Any = "result") -> Iterator[Any]:
    replies = []
    for step in steps:
        replies.append((yield step))
    return result, replies


def test_run_performs_steps_and_returns_the_sequences_value(sleeps: list[float]) -> None:
    key = ("https://patsnap.test", "cid")
    steps = _sequence(Sleep(1.5), Lock(key), MaskSecret("tok-to-mask"))
    result, replies = _drivers.run(steps, _drivers.new_session())  # type: ignore[arg-type]
    assert result == "result" and sleeps == [1.5]
    release = replies[1]
    assert TOKEN_CACHE.lock(key).locked()
    release()
    assert not TOKEN_CACHE.lock(key).locked()


def test_run_closes_the_sequence_when_a_step_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    key = ("https://patsnap.test", "run-close")
    closed: list[bool] = []

    def steps() -> Iterator[Any]:
        release = yield Lock(key)
        try:
            yield Sleep(1.0)
        finally:
            release()
            closed.append(True)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_drivers._retry, "sleep", interrupted)
    sequence = steps()  # held here, so only the driver (not garbage collection) can close it
    with pytest.raises(KeyboardInterrupt):
        _drivers.run(sequence, _drivers.new_session())  # type: ignore[arg-type]
    assert closed == [True] and not TOKEN_CACHE.lock(key).locked()  # the token lock is not leaked


def test_run_refuses_unknown_steps() -> None:
    with pytest.raises(TypeError, match="unknown step"):
        _drivers.run(_sequence("not a step"), _drivers.new_session())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- httpx


def _arun(coro_factory: Callable[[], Any], handler: Callable[[httpx.Request], httpx.Response] | None = None) -> Any:
    """Run on a fresh loop; with ``handler``, the loop's shared client answers through MockTransport."""

    async def main() -> Any:
        if handler is not None:
            loop = asyncio.get_running_loop()
            _drivers._CLIENTS[loop] = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        try:
            return await coro_factory()
        finally:
            await _drivers.close_shared_async_client()

    return asyncio.run(main())


def _raises(error: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    return handler


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("connect timed out"), httpx.PoolTimeout("pool full")],
    ids=lambda e: type(e).__name__,
)
def test_httpx_failures_before_a_connection_are_not_connected(error: Exception) -> None:
    failure = _arun(lambda: _drivers._httpx_send(Request("GET", URL)), _raises(error))
    assert failure == TransportFailure(name=type(error).__name__, connected=False)


@pytest.mark.parametrize(
    "error",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.WriteTimeout("write timed out"),
        httpx.ReadError("reset"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_httpx_failures_after_connecting_may_have_reached_patsnap(error: Exception) -> None:
    failure = _arun(lambda: _drivers._httpx_send(Request("GET", URL)), _raises(error))
    assert failure == TransportFailure(name=type(error).__name__, connected=True)


def test_httpx_a_refused_loopback_connection_is_not_connected(closed_port: int) -> None:
    request = Request("GET", f"http://127.0.0.1:{closed_port}/x", connect_timeout=2, read_timeout=2)
    assert _arun(lambda: _drivers._httpx_send(request)) == TransportFailure("ConnectError", False)


def test_httpx_sends_the_request_as_described() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"Content-Type": "application/json"}, content=b'{"status": true}')

    answer = _arun(
        lambda: _drivers._httpx_send(
            Request(
                "POST", URL, params={"apikey": "cid"}, form={"grant_type": "client_credentials"}, basic_auth=("a", "b")
            )
        ),
        handler,
    )
    assert isinstance(answer, Response) and answer.status == 200 and answer.content == b'{"status": true}'
    assert answer.headers["Content-Type"] == "application/json"
    (request,) = seen
    assert str(request.url) == f"{URL}?apikey=cid" and request.content == b"grant_type=client_credentials"
    assert request.headers["Authorization"] == "Basic YTpi"


def test_httpx_a_full_gate_is_a_pool_timeout_not_a_hang() -> None:
    async def gate_full() -> Any:
        _drivers._GATES[asyncio.get_running_loop()] = asyncio.Semaphore(0)
        return await _drivers._httpx_send(Request("GET", URL, connect_timeout=0.05, read_timeout=0.05))

    assert _arun(gate_full) == TransportFailure("PoolTimeout", connected=False)


def test_httpx_the_gate_slot_is_given_back_after_a_failure() -> None:
    async def twice() -> Any:
        gate = _drivers._GATES[asyncio.get_running_loop()] = asyncio.Semaphore(1)
        await _drivers._httpx_send(Request("GET", URL))
        await _drivers._httpx_send(Request("GET", URL, connect_timeout=0.05, read_timeout=0.05))
        return gate.locked()

    assert _arun(twice, _raises(httpx.ReadError("reset"))) is False


def test_one_shared_client_per_event_loop() -> None:
    async def clients() -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        return _drivers.shared_async_client(), _drivers.shared_async_client()

    first, same = _arun(clients)
    assert first is same and first.is_closed  # closed by close_shared_async_client at the end
    assert first.headers["User-Agent"] == _drivers.USER_AGENT
    assert _arun(clients)[0] is not first


def test_arun_performs_steps_and_closes_the_sequence_on_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    key = ("https://patsnap.test", "arun")
    closed: list[bool] = []
    waited: list[float] = []

    async def fake_asleep(seconds: float) -> None:
        waited.append(seconds)
        if len(waited) == 2:
            raise asyncio.CancelledError

    def steps() -> Iterator[Any]:
        release = yield Lock(key)
        try:
            yield Sleep(0.5)
            yield Sleep(9.0)  # cancelled here, as a trigger is
        finally:
            release()
            closed.append(True)

    monkeypatch.setattr(_drivers._retry, "asleep", fake_asleep)
    sequence = steps()  # held here, so only the driver (not garbage collection) can close it
    with pytest.raises(asyncio.CancelledError):
        _arun(lambda: _drivers.arun(sequence))  # type: ignore[arg-type]
    assert waited == [0.5, 9.0] and closed == [True]


def test_arun_sends_through_httpx() -> None:
    def steps() -> Iterator[Any]:
        reply = yield Send(Request("GET", URL))
        return reply.status

    assert _arun(lambda: _drivers.arun(steps()), lambda r: httpx.Response(204)) == 204  # type: ignore[arg-type]


@responses.activate
def test_a_stop_never_falls_between_the_sent_mark_and_the_send() -> None:
    import threading

    from airflow_provider_patsnap.hooks._core import Mark

    responses.add(responses.GET, URL, json={"status": True, "error_code": 0, "data": {}})
    stop = threading.Event()
    seen: list[Any] = []

    def steps() -> Iterator[Any]:
        yield Mark(note=stop.set)  # another batch fails just as this one is recorded as sent
        seen.append((yield Send(Request("GET", URL))))
        yield Sleep(0)  # the next step: here the stop applies
        return "never"

    with pytest.raises(_drivers.Stopped):
        _drivers.run(steps(), _drivers.new_session(), stop)
    assert len(responses.calls) == 1 and isinstance(seen[0], Response) and seen[0].status == 200
