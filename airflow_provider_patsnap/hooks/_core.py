"""The request sequence of a PatSnap call, written once and free of I/O (in the spirit of h11).

A call is a generator of *steps*. It yields what it needs done — take a rate-limit slot, hold the
token lock, send a request, wait before a retry, register a secret with the masker — and receives
the result. A blocking driver (``requests``) and an asyncio driver (``httpx``) perform the steps;
the sequence itself (slot, auth, token fetch, send, envelope, token refresh-and-replay, retries)
exists only here, so the two transports cannot drift apart, and it is unit-tested without HTTP.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from airflow_provider_patsnap.errors import (
    API_KEY_REFUSED,
    PatsnapError,
    PatsnapRateLimitError,
    PatsnapTokenError,
    credentials_refused,
    error_from_transport,
    token_refused_again,
)
from airflow_provider_patsnap.hooks._body import BodyError, decode_content, refuse
from airflow_provider_patsnap.hooks._config import PatsnapConfig
from airflow_provider_patsnap.hooks._envelope import parse_envelope, parse_token_response
from airflow_provider_patsnap.hooks._ratelimit import Priority, RateLimiter, limiter_for
from airflow_provider_patsnap.hooks._retry import retry_policy
from airflow_provider_patsnap.hooks._token_cache import TOKEN_CACHE, Token, TokenCache
from airflow_provider_patsnap.hooks._urls import safe_link, url_refusal
from airflow_provider_patsnap.redaction import register_secret

TOKEN_PATH = "/oauth/token"
#: Freshly fetched tokens refused in a row before the call gives up (retryably: it is a fleet race).
MAX_FRESH_TOKEN_REFUSALS = 3
T = TypeVar("T")


# ------------------------------------------------------------------------------------ messages


@dataclass(frozen=True)
class Request:
    """One HTTP request, transport-neutral. Refuses any URL outside the provider's URL policy."""

    method: str
    url: str
    params: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    form: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    #: The driver reads at most this many bytes of the (undecoded) body; more is reported as ``oversize``.
    max_body: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        # The API host is the administrator's choice (it may be an internal gateway): private addresses pass.
        refusal = url_refusal(self.url, allow_private=True)
        if refusal:
            raise ValueError(f"refusing to request {safe_link(self.url)}: {refusal}")

    @property
    def deadline(self) -> float:
        """Longest the whole exchange may take, however slowly an answer trickles in."""
        return self.connect_timeout + 3 * self.read_timeout

    def send_kwargs(self) -> dict[str, Any]:
        """What both HTTP libraries take alike (each adds its own timeout)."""
        return {
            "params": dict(self.params),
            "json": self.json,
            "data": dict(self.form) if self.form is not None else None,
            "headers": dict(self.headers),
            "auth": self.basic_auth,
        }


@dataclass(frozen=True)
class Response:
    """An answer as received: ``content`` is the raw body (no ``Content-Encoding`` undone), at most the
    request's ``max_body`` bytes; ``oversize`` says there was more."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    oversize: bool = False

    def body(self, endpoint: str, limit: int, *, call_sent: bool = True) -> bytes:
        """The decoded body, through the body gate (at most ``limit`` bytes, decoded or not). An error
        answer's unusable body is dropped (its status still speaks); a success's raises the
        provider's error naming the endpoint."""
        try:
            if self.oversize:
                raise BodyError(f"the answer is larger than {limit} bytes (connection extra max_response_bytes)")
            return decode_content(self.content, self.headers.get("Content-Encoding"), limit)
        except BodyError as exc:
            if 200 <= self.status < 300:
                raise refuse(endpoint, self.status, str(exc), call_sent=call_sent) from None
            return b""


@dataclass(frozen=True)
class TransportFailure:
    """No answer. ``connected``: a connection existed, so the request may have reached PatSnap."""

    name: str
    connected: bool


# ------------------------------------------------------------------------------------ steps


@dataclass(frozen=True)
class Send:
    request: Request  # reply: Response | TransportFailure


@dataclass(frozen=True)
class Acquire:
    limiter: RateLimiter  # reply: None once the slot is ours, or the PatsnapError that kept it from us
    priority: Priority = Priority.READ


@dataclass(frozen=True)
class Sleep:
    seconds: float  # reply: None


@dataclass(frozen=True)
class Lock:
    key: tuple[str, str]  # reply: a function that releases the token lock of ``key``


@dataclass(frozen=True)
class MaskSecret:
    value: str = field(repr=False)  # reply: None


@dataclass(frozen=True)
class Mark:
    """Call ``note`` now: the next step hands a billable request to the transport (its owner records
    "sent" here, so a call stopped before this point is known never to have left)."""

    note: Callable[[], None]  # reply: None


Step = Send | Acquire | Sleep | Lock | MaskSecret | Mark
Steps = Generator[Step, Any, T]


def advance(steps: Steps[Any], reply: Any) -> tuple[bool, Any]:
    """Send ``reply`` into ``steps``: ``(False, next step)``, or ``(True, result)`` once it returns."""
    try:
        return False, steps.send(reply)
    except StopIteration as done:
        return True, done.value


def with_retries(policy: Any, attempt: Callable[[], Steps[T]]) -> Steps[T]:
    """Run ``attempt`` under a tenacity policy, yielding its waits as ``Sleep`` steps."""
    waits: list[float] = []
    result: Any = None
    for try_ in policy.copy(sleep=waits.append):
        if waits:
            yield Sleep(waits.pop())
        try:
            result = yield from attempt()
        except PatsnapError:
            try_.retry_state.set_exception(sys.exc_info())
        else:
            try_.retry_state.set_result(result)
    return result


# ------------------------------------------------------------------------------------ the sequence


class CallCore:
    """Every PatSnap call of one connection, as steps: auth, rate limit, retries, token refresh."""

    def __init__(self, config: PatsnapConfig, log: logging.Logger | Any, tokens: TokenCache = TOKEN_CACHE) -> None:
        self.config = config
        self.log = log
        self.tokens = tokens
        self.limiter = limiter_for(config.base_url, config.principal, config.qps, config.rate_limit_url)
        self.token_key = (config.base_url, config.client_id or "")

    def _request(self, method: str, path: str, **kwargs: Any) -> Request:
        timeout = self.config.timeout
        return Request(
            method,
            self.config.base_url + path,
            connect_timeout=min(10.0, timeout),
            read_timeout=timeout,
            max_body=self.config.max_response_bytes,
            **kwargs,
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        billable: bool = False,
        on_send: Callable[[], None] | None = None,
    ) -> Steps[Any]:
        """The envelope's ``data`` of one call, retried within the connection's budget.

        ``billable`` calls are replayed only when PatSnap surely did not run them. ``on_send`` is called
        each time, just before the request is handed to the transport.
        """
        policy = retry_policy(self.config, self.log, f"PatSnap {method} {path}", billable=billable)
        return with_retries(
            policy, lambda: self._attempt(method, path, dict(params or {}), json, billable=billable, on_send=on_send)
        )

    def _attempt(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        json: Any,
        *,
        billable: bool,
        on_send: Callable[[], None] | None,
    ) -> Steps[Any]:
        endpoint = f"{method} {path}"
        priority = Priority.CREATE if billable else Priority.READ
        refusals = 0
        while True:
            # A missing token is fetched before queueing (a fetch between the slot and the send would
            # let the call arrive after its slot), but the credentials are read only after the wait in
            # the limiter's queue: a token taken before a long wait could expire in hand.
            if self.config.uses_oauth and self.tokens.get(self.token_key) is None:
                yield from self._credentials()
            refusal = yield Acquire(self.limiter, priority)
            if isinstance(refusal, PatsnapError):  # the shared budget is unreachable: nothing was sent
                raise refusal
            headers, auth_params, token = yield from self._credentials()
            if on_send is not None:
                yield Mark(on_send)
            reply = yield Send(
                self._request(method, path, params={**params, **auth_params}, json=json, headers=headers)
            )
            if isinstance(reply, TransportFailure):
                raise error_from_transport(endpoint=endpoint, name=reply.name, connected=reply.connected)
            try:
                data = parse_envelope(
                    endpoint=endpoint,
                    http_status=reply.status,
                    headers=reply.headers,
                    content=reply.body(endpoint, self.config.max_response_bytes),
                    read=not billable,
                )
            except PatsnapRateLimitError:
                self.limiter.on_rejected()  # the whole process slows down, not just this call
                raise
            except PatsnapTokenError as exc:
                if token is None:
                    raise credentials_refused(exc, API_KEY_REFUSED) from None
                refusals += 1
                # Drop only the token that was refused: another thread may have fetched a new one.
                self.tokens.invalidate(self.token_key, token)
                if refusals > MAX_FRESH_TOKEN_REFUSALS:
                    raise token_refused_again(exc, refusals) from None
                if refusals > 1:
                    # A token fetched a moment ago was refused too: in a fleet, another process most likely
                    # fetched a newer one for the same client (one active token per client). Back off, with
                    # jitter so the processes stop taking turns invalidating each other's tokens.
                    base = self.config.retry_wait_min * 2 ** (refusals - 2)
                    yield Sleep(min(base, self.config.retry_wait_max) + random.uniform(0, self.config.retry_wait_min))
                self.log.info("PatSnap refused the token (%s); fetching a new one and replaying.", exc.code)
            else:
                self.limiter.on_accepted()
                return data

    def _credentials(self) -> Steps[tuple[dict[str, str], dict[str, str], str | None]]:
        """Headers, query parameters and the OAuth token used (None in API-key mode)."""
        config = self.config
        if config.api_key:
            params = {"apikey": config.api_key} if config.api_key_in_query else {}
            return {"Authorization": f"Bearer {config.api_key}"}, params, None
        token = self.tokens.get(self.token_key)
        if token is None:
            release = yield Lock(self.token_key)
            try:
                token = self.tokens.get(self.token_key)  # another caller may have fetched it meanwhile
                if token is None:
                    token = yield from self.fetch_token()
                    self.tokens.put(self.token_key, token)
            finally:
                release()
        return {"Authorization": f"Bearer {token.value}"}, {"apikey": config.client_id or ""}, token.value

    def fetch_token(self) -> Steps[Token]:
        """A new OAuth token from ``/oauth/token`` (client id and secret in HTTP Basic auth)."""
        config = self.config
        endpoint = f"POST {TOKEN_PATH}"
        reply = yield Send(
            self._request(
                "POST",
                TOKEN_PATH,
                form={"grant_type": "client_credentials"},
                basic_auth=(config.client_id or "", config.client_secret or ""),
            )
        )
        if isinstance(reply, TransportFailure):
            raise error_from_transport(endpoint=endpoint, name=reply.name, connected=reply.connected, call_sent=False)
        value, expires_in = parse_token_response(
            endpoint=endpoint,
            http_status=reply.status,
            headers=reply.headers,
            content=reply.body(endpoint, self.config.max_response_bytes, call_sent=False),
        )
        register_secret(value)  # from now on, a server echoing it in an error message is masked
        yield MaskSecret(value)
        self.log.info("Fetched a PatSnap access token for client %s (valid %.0f s).", config.client_id, expires_in)
        return Token(value=value, expires_at=time.monotonic() + expires_in, lifetime=expires_in)
