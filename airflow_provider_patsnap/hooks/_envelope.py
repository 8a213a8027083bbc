"""Reading PatSnap responses: the JSON envelope first, the HTTP status second."""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from airflow_provider_patsnap.errors import (
    CLIENT_REFUSED,
    PatsnapAuthError,
    PatsnapError,
    PatsnapResponseError,
    PatsnapTokenError,
    credentials_refused,
    error_from_codeless_failure,
    error_from_envelope,
    error_from_http_status,
    error_from_unreadable_answer,
)
from airflow_provider_patsnap.hooks._body import BodyError, loads_exact, refuse
from airflow_provider_patsnap.redaction import remote_text

__all__ = ["loads_exact", "parse_envelope", "parse_retry_after", "parse_token_response"]

_NOT_JSON = object()
#: PatSnap documents 30-minute tokens; used when the token answer's lifetime is missing or absurd.
DEFAULT_TOKEN_LIFETIME = 1800.0
MAX_TOKEN_LIFETIME = 24 * 3600.0
MAX_TOKEN_LENGTH = 4096
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
#: Longest Retry-After the hook will honour; beyond it, the normal backoff cap applies.
MAX_RETRY_AFTER = 300.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _describe_body(content_type: str, size: int) -> str:
    if "html" in content_type.lower():
        kind = "an HTML page"
    else:
        kind = f"a body of type {remote_text(content_type, 80)}" if content_type else "an untyped body"
    return f"PatSnap answered with {kind} ({size} bytes) instead of its JSON envelope"


def parse_envelope(
    *,
    endpoint: str,
    http_status: int,
    headers: Mapping[str, str],
    content: bytes,
    call_sent: bool = True,
    read: bool = False,
) -> Any:
    """Return ``data`` of a successful envelope; raise the mapped ``PatsnapError`` otherwise.

    ``call_sent=False`` parses the answer of a step that prepares the call (the token fetch);
    ``read``: the call buys nothing (see ``errors.error_from_envelope``).
    """
    retry_after = parse_retry_after(headers.get("Retry-After"))
    content_type = headers.get("Content-Type", "")
    ok = 200 <= http_status < 300
    try:
        payload = loads_exact(content) if content else _NOT_JSON
    except BodyError as exc:
        if ok:
            raise refuse(endpoint, http_status, str(exc), call_sent=call_sent) from None
        payload = _NOT_JSON
    except ValueError:
        payload = _NOT_JSON
    if isinstance(payload, dict) and ("error_code" in payload or "status" in payload):
        raw_code = payload.get("error_code")
        try:
            code = int(raw_code) if raw_code is not None else 0
        except (TypeError, ValueError, OverflowError, ArithmeticError):
            code = -1
        if ok and payload.get("status") is True and code == 0:
            return payload.get("data")
        if code not in (0, -1):
            message = payload.get("error_msg")
            raise error_from_envelope(
                endpoint=endpoint,
                code=code,
                message=str(message) if message else None,
                http_status=http_status,
                retry_after=retry_after,
                call_sent=call_sent,
                read=read,
            )
        if not ok:
            raise error_from_http_status(
                endpoint=endpoint, http_status=http_status, retry_after=retry_after, call_sent=call_sent
            )
        raise error_from_codeless_failure(
            endpoint=endpoint,
            http_status=http_status,
            description=f"envelope reports failure without a usable error_code (status="
            f"{remote_text(payload.get('status'), 40)}, error_code={remote_text(raw_code, 40)})",
            call_sent=call_sent,
        )
    description = _describe_body(content_type, len(content))
    if not ok:
        raise error_from_http_status(
            endpoint=endpoint,
            http_status=http_status,
            retry_after=retry_after,
            body_hint=description,
            call_sent=call_sent,
        )
    if payload is _NOT_JSON:
        raise error_from_unreadable_answer(
            endpoint=endpoint, http_status=http_status, description=description, call_sent=call_sent
        )
    raise PatsnapResponseError(
        f"PatSnap answered with JSON that is not its envelope ({type(payload).__name__})",
        endpoint=endpoint,
        http_status=http_status,
    )


def parse_token_response(
    *, endpoint: str, http_status: int, headers: Mapping[str, str], content: bytes
) -> tuple[str, float]:
    """``(token, expires_in)`` from ``/oauth/token`` (top-level JSON, no envelope on success).

    A failure here happened before the call the token was for, so it counts as not sent.
    """
    try:
        payload = loads_exact(content) if content else None
    except BodyError as exc:
        raise refuse(endpoint, http_status, str(exc), call_sent=False) from None
    except ValueError:
        payload = None
    if 200 <= http_status < 300 and isinstance(payload, dict):
        token = payload.get("token") or payload.get("access_token")
        if not token and isinstance(payload.get("data"), dict):
            token = payload["data"].get("token")
        if isinstance(token, str) and token:
            if len(token) > MAX_TOKEN_LENGTH or not _TOKEN_CHARS.fullmatch(token):
                # It goes into a header: no line breaks, no megabytes.
                raise refuse(
                    endpoint,
                    http_status,
                    f"the token is not a printable string of at most {MAX_TOKEN_LENGTH} characters",
                    call_sent=False,
                )
            try:
                expires_in = float(payload.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
            except (TypeError, ValueError, OverflowError, ArithmeticError):
                expires_in = DEFAULT_TOKEN_LIFETIME
            if not math.isfinite(expires_in) or expires_in <= 0:
                expires_in = DEFAULT_TOKEN_LIFETIME  # nonsense would mean a fetch per call, or a token kept for ever
            return token, min(expires_in, MAX_TOKEN_LIFETIME)
    try:
        parse_envelope(endpoint=endpoint, http_status=http_status, headers=headers, content=content, call_sent=False)
    except PatsnapError as exc:
        # A token error from the token endpoint itself means the client credentials are refused.
        if isinstance(exc, (PatsnapTokenError, PatsnapAuthError)) or exc.http_status in (401, 403):
            raise credentials_refused(exc, CLIENT_REFUSED) from None
        raise
    raise PatsnapResponseError("token response has no token", endpoint=endpoint, http_status=http_status)
