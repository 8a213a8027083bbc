"""Async twins of the hook's read calls, for triggers (httpx, which Airflow already ships).

One ``httpx.AsyncClient`` per event loop is shared by every hook in the process, so a triggerer
running many PatSnap triggers keeps one small connection pool (and, through the module-level
token cache, one token per account) instead of one per trigger.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import TYPE_CHECKING, Any

import httpx

from airflow_provider_patsnap.errors import (
    API_KEY_REFUSED,
    TOKEN_REFUSED_TWICE,
    PatsnapAmbiguousCreateError,
    PatsnapConnectionError,
    PatsnapError,
    PatsnapTokenError,
    credentials_refused,
)
from airflow_provider_patsnap.hooks._envelope import parse_answer, token_or_error
from airflow_provider_patsnap.hooks._retry import async_retrying, policy_args
from airflow_provider_patsnap.hooks._token_cache import TOKEN_CACHE, Token
from airflow_provider_patsnap.models import ReportJob, ReportKind, normalize_job_id
from airflow_provider_patsnap.version_compat import aget_connection, amask_secret

if TYPE_CHECKING:
    from airflow_provider_patsnap.hooks._config import PatsnapConfig

_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()
#: Equal limits on purpose: httpcore 1.0.x compares ``max_keepalive_connections`` with *all* pooled
#: connections, not the idle ones (encode/httpcore#1000), so a lower keep-alive limit closes every
#: connection that goes idle while more than that many exist: one TCP connect per request under load.
_MAX_CONNECTIONS = 16
_POOL = httpx.Limits(max_connections=_MAX_CONNECTIONS, max_keepalive_connections=_MAX_CONNECTIONS)
#: At most this many requests are handed to httpx at a time. httpcore rescans its whole request queue
#: and every connection whenever a request starts or ends (encode/httpcore#1035), so with hundreds of
#: polls due together each would cost O(queue) CPU; waiting on a semaphore instead costs O(1). Half
#: the pool keeps a free connection for each admitted request (fewer failed assignments and retries
#: inside httpcore); 8 in flight at ~200 ms per status call is ~40 polls/s, above the ~33/s that
#: 1,000 jobs polled every 30 s need.
_IN_FLIGHT = 8
_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def shared_async_client() -> httpx.AsyncClient:
    """The event loop's shared client (created on first use)."""
    loop = asyncio.get_running_loop()
    client = _CLIENTS.get(loop)
    if client is None or client.is_closed:
        client = _CLIENTS[loop] = httpx.AsyncClient(
            limits=_POOL, follow_redirects=False, headers={"User-Agent": "airflow-provider-patsnap"}
        )
    return client


async def gated_request(method: str, url: str, *, timeout: httpx.Timeout, **kwargs: Any) -> httpx.Response:
    """A request through the loop's shared client, admitted by the loop's request gate."""
    loop = asyncio.get_running_loop()
    gate = _GATES.get(loop)
    if gate is None:
        gate = _GATES[loop] = asyncio.Semaphore(_IN_FLIGHT)
    try:
        # Waiting for the gate replaces httpx's own pool wait, so it gets the same time limit.
        await asyncio.wait_for(gate.acquire(), timeout.pool)
    except asyncio.TimeoutError:
        raise httpx.PoolTimeout("no free connection in time") from None
    try:
        return await shared_async_client().request(method, url, timeout=timeout, **kwargs)
    finally:
        gate.release()


async def close_shared_async_client() -> None:
    """Close this loop's shared client (tests and benchmarks; the triggerer keeps it for life)."""
    client = _CLIENTS.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


def _async_transport_error(exc: httpx.HTTPError, endpoint: str, *, billable: bool) -> PatsnapError:
    name = type(exc).__name__
    not_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
    if billable and not not_sent:
        return PatsnapAmbiguousCreateError(
            f"the request was sent but no answer arrived ({name}); the report job may have been created",
            endpoint=endpoint,
        )
    return PatsnapConnectionError(f"{name} talking to PatSnap", endpoint=endpoint, replay_safe=True)


class AsyncPatsnapMixin:
    """``a``-prefixed coroutine versions of the hook calls a trigger needs."""

    if TYPE_CHECKING:
        patsnap_conn_id: str
        log: Any

        @property
        def config(self) -> PatsnapConfig: ...

        def config_from(self, conn: Any, *, mask: bool = True) -> PatsnapConfig: ...

    async def aconfig(self) -> PatsnapConfig:
        """Connection settings, fetched without blocking the event loop."""
        if "config" not in self.__dict__:
            conn = await aget_connection(self.patsnap_conn_id)
            config = self.config_from(conn, mask=False)
            for secret in (config.client_secret, config.api_key):
                if secret:
                    await amask_secret(secret)
            self.__dict__["config"] = config
        return self.config

    def _timeouts(self, config: PatsnapConfig) -> httpx.Timeout:
        return httpx.Timeout(config.timeout, connect=min(10.0, config.timeout))

    async def _afetch_token(self, config: PatsnapConfig) -> Token:
        endpoint = "POST /oauth/token"
        try:
            response = await gated_request(
                "POST",
                config.base_url + "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(config.client_id or "", config.client_secret or ""),
                timeout=self._timeouts(config),
            )
        except httpx.HTTPError as exc:
            raise _async_transport_error(exc, endpoint, billable=False) from None
        token, expires_in = token_or_error(endpoint, response.status_code, response.headers, response.content)
        await amask_secret(token)
        return Token(value=token, expires_at=time.monotonic() + expires_in, lifetime=expires_in)

    async def _aauth(self, config: PatsnapConfig) -> tuple[dict[str, str], dict[str, str], str | None]:
        if config.api_key:
            params = {"apikey": config.api_key} if config.api_key_in_query else {}
            return {"Authorization": f"Bearer {config.api_key}"}, params, None
        key = (config.base_url, config.client_id or "")
        token = TOKEN_CACHE.get(key)
        if token is None:
            async with TOKEN_CACHE.async_lock(key):
                token = TOKEN_CACHE.get(key)
                if token is None:
                    token = await self._afetch_token(config)
                    TOKEN_CACHE.put(key, token)
        return {"Authorization": f"Bearer {token.value}"}, {"apikey": config.client_id or ""}, token.value

    async def _asend_once(self, method: str, path: str, params: dict[str, Any] | None) -> Any:
        from airflow_provider_patsnap.hooks._ratelimit import limiter_for

        config = await self.aconfig()
        endpoint = f"{method} {path}"
        headers, auth_params, token_value = await self._aauth(config)
        await limiter_for(config.base_url, config.principal, config.qps).aacquire()
        try:
            response = await gated_request(
                method,
                config.base_url + path,
                params={**(params or {}), **auth_params},
                headers=headers,
                timeout=self._timeouts(config),
            )
        except httpx.HTTPError as exc:
            raise _async_transport_error(exc, endpoint, billable=False) from None
        return parse_answer(endpoint, response.status_code, response.headers, response.content, token_value)

    async def _acall_with_token_replay(self, method: str, path: str, params: dict[str, Any] | None) -> Any:
        config = await self.aconfig()
        try:
            return await self._asend_once(method, path, params)
        except PatsnapTokenError as first:
            if not config.uses_oauth:
                raise credentials_refused(first, API_KEY_REFUSED) from None
            TOKEN_CACHE.invalidate((config.base_url, config.client_id or ""), getattr(first, "token_value", "") or "")
        try:
            return await self._asend_once(method, path, params)
        except PatsnapTokenError as second:
            raise credentials_refused(second, TOKEN_REFUSED_TWICE) from None

    async def _acall(self, method: str, path: str, *, params: dict[str, Any] | None = None) -> Any:
        config = await self.aconfig()
        policy = async_retrying(**policy_args(config, self.log, f"PatSnap {method} {path}"))
        return await policy(self._acall_with_token_replay, method, path, params)

    async def aget_report_job(self, report_kind: ReportKind | str, job_id: str | int) -> ReportJob:
        """Async twin of ``get_report_job``."""
        kind = ReportKind.parse(report_kind)
        job_id = normalize_job_id(job_id)
        data = await self._acall("GET", kind.status_path, params={"job_id": job_id})
        return ReportJob.from_api(data, kind, job_id, f"GET {kind.status_path}")
