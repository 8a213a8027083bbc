"""PatSnap error model: the error-code table and the exceptions the hook raises.

Every PatSnap error falls in one class, which decides what the hook does with it:

* ``RETRY``: transient; retried with exponential backoff and jitter (``Retry-After`` honoured).
* ``RETRY_LIMITED``: meaning unclear upstream; retried at most once more, then raised.
* ``TOKEN``: the OAuth token is stale; the hook fetches a new token once and replays the call.
* ``PERMANENT``: raised at once; operators turn these into ``AirflowFailException`` so Airflow
  does not spend retries (and money) on a call that cannot succeed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ErrorClass(str, Enum):
    """How the hook treats an error code."""

    RETRY = "retry"
    RETRY_LIMITED = "retry_limited"
    TOKEN = "token"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class ErrorCode:
    """One row of PatSnap's error table."""

    code: int
    meaning: str
    error_class: ErrorClass
    #: True when PatSnap rejected the call before doing its work, so a create may be replayed.
    rejected_before_work: bool = False


_R, _L, _T, _P = ErrorClass.RETRY, ErrorClass.RETRY_LIMITED, ErrorClass.TOKEN, ErrorClass.PERMANENT

ERROR_CODES: dict[int, ErrorCode] = {
    row.code: row
    for row in (
        # Business errors
        ErrorCode(68300004, "Invalid parameter", _P),
        ErrorCode(68300005, "Search API failure", _L),
        ErrorCode(68300006, "Analytic basic access error", _L),
        ErrorCode(68300007, "Bad request", _P),
        ErrorCode(68300008, "Service error, please try again later", _R, rejected_before_work=True),
        ErrorCode(68300010, "The file does not comply with upload specifications", _P),
        # Platform errors
        ErrorCode(67200000, "Platform limit reached or server internal error", _L),
        ErrorCode(67200001, "API call exceeds the total limit set by the platform", _P),
        ErrorCode(67200002, "Call rate too fast: the account's QPS limit was exceeded", _R, rejected_before_work=True),
        ErrorCode(67200003, "Access token expired or authentication error", _T, rejected_before_work=True),
        ErrorCode(67200004, "No permission, or the API package quota is used up", _P),
        ErrorCode(67200005, "Insufficient balance", _P),
        ErrorCode(67200006, "This client has expired", _P),
        ErrorCode(67200007, "Exceeded the call limit (daily usage)", _P),
        ErrorCode(67200008, "Required apikey parameter not passed", _P),
        ErrorCode(67200009, "apikey and token do not match (token may have expired)", _T, rejected_before_work=True),
        ErrorCode(67200015, "Grant type error", _P),
        ErrorCode(67200101, "Path not found", _P),
        ErrorCode(67200202, "apikey authentication error", _P),
        ErrorCode(67200203, "Account balance or rate condition", _P),
    )
}

#: HTTP statuses PatSnap's gateway returns before the service ran the call.
GATEWAY_RETRY_STATUSES = frozenset({502, 503, 504})


def classify_code(code: int) -> ErrorCode:
    """Row for ``code``; unknown codes are permanent (the safe choice for a paid API)."""
    return ERROR_CODES.get(code) or ErrorCode(code, "Unknown PatSnap error code", ErrorClass.PERMANENT)


class PatsnapError(Exception):
    """Base class: a PatSnap call failed. ``str()`` names endpoint, code, HTTP status and message."""

    #: True when the call may be replayed without risk of running twice on PatSnap's side.
    replay_safe: bool = False
    #: True when a billable call may have run although it failed (a create must not be retried blindly).
    may_have_executed: bool = False

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        self.message = message
        self.endpoint = endpoint
        self.code = code
        self.http_status = http_status
        super().__init__(self._render())

    def _render(self) -> str:
        parts = []
        if self.endpoint:
            parts.append(f"PatSnap {self.endpoint}")
        if self.code is not None:
            parts.append(f"error_code {self.code}")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        head = ", ".join(parts) or "PatSnap"
        return f"{head}: {self.message}"


class PatsnapRetryableError(PatsnapError):
    """Transient failure; the hook retries it with backoff."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        replay_safe: bool = True,
        max_attempts: int | None = None,
        **kwargs: object,
    ) -> None:
        self.retry_after = retry_after
        self.replay_safe = replay_safe
        self.may_have_executed = not replay_safe
        #: Upper bound on attempts for this error, below the connection's ``max_retries``.
        self.max_attempts = max_attempts
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class PatsnapRateLimitError(PatsnapRetryableError):
    """PatSnap rejected the call for rate (67200002 or HTTP 429); it did not run it."""


class PatsnapConnectionError(PatsnapRetryableError):
    """The HTTP exchange failed (connection refused/reset, timeout)."""


class PatsnapTokenError(PatsnapError):
    """The OAuth token was refused (67200003/67200009); the hook refreshes it once and replays."""

    replay_safe = True


class PatsnapPermanentError(PatsnapError):
    """A failure retrying cannot fix (parameters, quota, balance, permission, credentials)."""


class PatsnapAuthError(PatsnapPermanentError):
    """Credentials are wrong, disabled or expired (also after a token refresh)."""


class PatsnapResponseError(PatsnapPermanentError):
    """PatSnap answered with something the provider cannot interpret (not JSON, missing fields)."""


class PatsnapAmbiguousCreateError(PatsnapPermanentError):
    """A billable create failed after the request was sent: the job may exist on PatSnap's side."""

    may_have_executed = True


class PatsnapJobFailedError(PatsnapPermanentError):
    """The report job ended in PatSnap's failed state (job_status 3)."""

    def __init__(self, message: str, *, job_id: str, abnormal_cause: str | None, **kwargs: object) -> None:
        self.job_id = job_id
        self.abnormal_cause = abnormal_cause
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class PatsnapDownloadError(PatsnapRetryableError):
    """A report download failed in a way a new attempt may fix (cut short, expired link, CDN error)."""


class PatsnapDownloadRejectedError(PatsnapPermanentError):
    """The downloaded content is not the report (wrong type, HTML page) or cannot be stored."""


class PatsnapDestinationError(PatsnapPermanentError):
    """The destination cannot be written (missing bucket or folder, no permission)."""


class PatsnapInputError(ValueError):
    """Bad input, found before any call to PatSnap. ``parameter`` names the offending argument."""

    def __init__(self, parameter: str, message: str) -> None:
        self.parameter = parameter
        super().__init__(f"{parameter}: {message}")


CHECK_BEFORE_RERUN = "Check the PatSnap console before re-running, so it is not created (and billed) twice"
API_KEY_REFUSED = "check the connection's API key"
TOKEN_REFUSED_TWICE = "a freshly fetched token was refused too: check the client id and secret"
CLIENT_REFUSED = "check the connection's client id and client secret"


def credentials_refused(exc: PatsnapError, hint: str) -> PatsnapAuthError:
    """The authentication error that ends a token/key refusal, keeping PatSnap's code and message."""
    return PatsnapAuthError(f"{exc.message}; {hint}", endpoint=exc.endpoint, code=exc.code, http_status=exc.http_status)


def error_from_envelope(
    *,
    endpoint: str,
    code: int,
    message: str | None,
    http_status: int | None,
    retry_after: float | None = None,
) -> PatsnapError:
    """Exception for a PatSnap envelope carrying ``error_code`` (mapped by code first)."""
    row = classify_code(code)
    text = message or row.meaning
    if message and row.meaning not in message:
        text = f"{message} ({row.meaning})"
    common = {"endpoint": endpoint, "code": code, "http_status": http_status}
    if row.error_class is ErrorClass.TOKEN:
        return PatsnapTokenError(text, **common)  # type: ignore[arg-type]
    if row.error_class is ErrorClass.PERMANENT:
        if code in (67200006, 67200008, 67200015, 67200202):
            return PatsnapAuthError(text, **common)  # type: ignore[arg-type]
        return PatsnapPermanentError(text, **common)  # type: ignore[arg-type]
    cls = PatsnapRateLimitError if code == 67200002 else PatsnapRetryableError
    return cls(
        text,
        retry_after=retry_after,
        replay_safe=row.rejected_before_work,
        max_attempts=2 if row.error_class is ErrorClass.RETRY_LIMITED else None,
        **common,  # type: ignore[arg-type]
    )


def error_from_http_status(
    *, endpoint: str, http_status: int, is_json: bool, retry_after: float | None = None, body_hint: str = ""
) -> PatsnapError:
    """Exception for a non-2xx answer without a PatSnap error code (mapped by HTTP status)."""
    hint = f": {body_hint}" if body_hint else ""
    common = {"endpoint": endpoint, "http_status": http_status}
    if http_status == 429:
        return PatsnapRateLimitError(
            f"rate limited{hint}",
            retry_after=retry_after,
            replay_safe=True,
            **common,  # type: ignore[arg-type]
        )
    if http_status in GATEWAY_RETRY_STATUSES or http_status >= 500:
        # A gateway page (not PatSnap's JSON) means the call never reached the service.
        replay_safe = http_status in GATEWAY_RETRY_STATUSES and not is_json
        return PatsnapRetryableError(
            f"server error{hint}",
            retry_after=retry_after,
            replay_safe=replay_safe,
            **common,  # type: ignore[arg-type]
        )
    if http_status in (401, 403):
        return PatsnapAuthError(f"not authorised{hint}", **common)  # type: ignore[arg-type]
    return PatsnapPermanentError(f"request rejected{hint}", **common)  # type: ignore[arg-type]
