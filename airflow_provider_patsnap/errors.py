"""PatSnap's error-code table, the one place that decides what a failed call means, and the exceptions.

Every failed call has one :class:`Outcome`, decided here and nowhere else:

* ``NOT_SENT``: the request never reached PatSnap (connection refused, DNS failure, connect timeout,
  or the token fetch that had to come first failed).
* ``REJECTED``: PatSnap, or its gateway, refused the call before doing any work (408, 429, 67200002,
  67200003/67200009, PatSnap's documented refusals such as 68300004 or 67200005, a gateway's
  envelope-less 401/403/404).
* ``MAY_HAVE_RUN``: the request was sent and the answer does not prove it did nothing (read timeout
  or reset after sending, 503, 502/504 or any other gateway page, a redirect, a non-JSON 200, an
  unknown error code, 68300008 "service error, try again later").

And one *transience*: a :class:`PatsnapRetryableError` may succeed if sent again; every other
:class:`PatsnapError` will not. Permanent means PatSnap's own code says so (parameters, quota,
balance, credentials); an answer that only *looks* wrong (a redirect, a gateway's bare 401/403/404,
an unknown code, an envelope saying ``status: false`` with ``error_code: 0``) is transient with a
bound. :func:`may_replay` combines the two: reads are replayed on any transient error, billable
calls only when the outcome proves PatSnap did not run them. What a billable call that may have
run means for the task is decided by the owner of billable state (``billing``); what Airflow does
with other errors, in ``operators/_common.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from airflow_provider_patsnap.redaction import clean_message, remote_text


class Outcome(str, Enum):
    """What a failed call tells us about PatSnap's side."""

    NOT_SENT = "not_sent"
    REJECTED = "rejected"
    MAY_HAVE_RUN = "may_have_run"


class ErrorClass(str, Enum):
    """How the hook treats an error code."""

    RETRY = "retry"  # transient: retried with backoff and jitter (Retry-After honoured)
    RETRY_LIMITED = "retry_limited"  # meaning unclear upstream: one more attempt at most
    TOKEN = "token"  # the OAuth token is stale: fetch a new one once and replay
    PERMANENT = "permanent"  # retrying cannot help (and may cost money): raised at once


@dataclass(frozen=True)
class ErrorCode:
    """One row of PatSnap's error table."""

    code: int
    meaning: str
    error_class: ErrorClass
    #: What the code says about PatSnap's side; documented codes are refusals, so REJECTED unless
    #: the meaning admits that work was done (an internal error part-way through a search).
    outcome: Outcome = Outcome.REJECTED

    @property
    def is_platform(self) -> bool:
        """Platform codes (672xxxxx: auth, quota, rate) as opposed to business codes (683xxxxx)."""
        return self.code // 100000 == 672


_R, _L, _T, _P = ErrorClass.RETRY, ErrorClass.RETRY_LIMITED, ErrorClass.TOKEN, ErrorClass.PERMANENT
_RAN = Outcome.MAY_HAVE_RUN

ERROR_CODES: dict[int, ErrorCode] = {
    row.code: row
    for row in (
        # Business errors
        ErrorCode(68300004, "Invalid parameter", _P),
        ErrorCode(68300005, "Search API failure", _L, _RAN),
        ErrorCode(68300006, "Analytic basic access error", _L, _RAN),
        ErrorCode(68300007, "Bad request", _P),
        # "Try again later" is transient, but nothing says the work was not done: a create is not replayed.
        ErrorCode(68300008, "Service error, please try again later", _R, _RAN),
        ErrorCode(68300010, "The file does not comply with upload specifications", _P),
        # Platform errors
        ErrorCode(67200000, "Platform limit reached or server internal error", _L, _RAN),
        ErrorCode(67200001, "API call exceeds the total limit set by the platform", _P),
        ErrorCode(67200002, "Call rate too fast: the account's QPS limit was exceeded", _R),
        ErrorCode(67200003, "Access token expired or authentication error", _T),
        ErrorCode(67200004, "No permission, or the API package quota is used up", _P),
        ErrorCode(67200005, "Insufficient balance", _P),
        ErrorCode(67200006, "This client has expired", _P),
        ErrorCode(67200007, "Exceeded the call limit (daily usage)", _P),
        ErrorCode(67200008, "Required apikey parameter not passed", _P),
        ErrorCode(67200009, "apikey and token do not match (token may have expired)", _T),
        ErrorCode(67200015, "Grant type error", _P),
        ErrorCode(67200101, "Path not found", _P),
        ErrorCode(67200202, "apikey authentication error", _P),
        ErrorCode(67200203, "Account balance or rate condition", _P),
    )
}

#: Permanent codes that mean the credentials themselves are wrong.
_AUTH_CODES = frozenset({67200006, 67200008, 67200015, 67200202})
#: HTTP statuses that prove the call was refused before any work (rate limit, request timeout). A 503 does
#: not: a gateway may answer it after the backend took the request.
_REFUSING_STATUSES = frozenset({408, 429})
#: Envelope-less answers that look like a gateway's, not PatSnap's: transient, with a bound.
_GATEWAY_REFUSALS = frozenset({401, 403, 404})
#: Codes that are permanent for what they would buy but only a pause for a read (a daily call limit).
_TRANSIENT_FOR_READS = frozenset({67200007})
#: Attempts (within the hook's budget) for an answer that only looks transient.
LOOKS_TRANSIENT_ATTEMPTS = 2
#: CDN answers a fresh signed link can cure (expired or not yet propagated) besides 5xx and 429.
_DOWNLOAD_RETRY_STATUSES = frozenset({403, 404, 408, 410, 429})


def classify_code(code: int) -> ErrorCode:
    """Row for ``code``; an unknown code may have run (never replayed when billable) and gets one more
    attempt otherwise (it is not PatSnap saying "permanent")."""
    return ERROR_CODES.get(code) or ErrorCode(code, "Unknown PatSnap error code", ErrorClass.RETRY_LIMITED, _RAN)


# ------------------------------------------------------------------------------------ exceptions


class PatsnapError(Exception):
    """Base class: a PatSnap call failed. ``str()`` names endpoint, code, HTTP status and message."""

    #: Whether sending the call again may succeed (see :class:`PatsnapRetryableError`).
    transient = False

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        code: int | None = None,
        http_status: int | None = None,
        outcome: Outcome = Outcome.MAY_HAVE_RUN,
    ) -> None:
        # Messages quote remote text and links: the one redactor bounds them and masks credentials.
        self.message = clean_message(message)
        self.endpoint = clean_message(endpoint) if endpoint else endpoint
        self.code = code
        self.http_status = http_status
        self.outcome = outcome
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
        return clean_message(f"{head}: {self.message}")


class PatsnapRetryableError(PatsnapError):
    """Transient failure: the hook retries it (reads always, creates only if PatSnap did not run them).

    When the hook's own budget is spent it propagates as an ordinary exception, so the task's
    Airflow ``retries`` apply.
    """

    transient = True

    def __init__(
        self, message: str, *, retry_after: float | None = None, max_attempts: int | None = None, **kwargs: object
    ) -> None:
        self.retry_after = retry_after
        #: Upper bound on attempts for this error, below the connection's ``max_retries``.
        self.max_attempts = max_attempts
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class PatsnapRateLimitError(PatsnapRetryableError):
    """PatSnap rejected the call for rate (67200002 or HTTP 429); it did not run it."""


class PatsnapConnectionError(PatsnapRetryableError):
    """The HTTP exchange failed (connection refused or reset, DNS, timeout)."""


class PatsnapDownloadError(PatsnapRetryableError):
    """A report download failed in a way a new attempt may fix (cut short, expired link, CDN error)."""


class PatsnapTokenError(PatsnapError):
    """The OAuth token was refused (67200003/67200009); the hook refreshes it once and replays."""


class PatsnapPermanentError(PatsnapError):
    """A failure retrying cannot fix (parameters, quota, balance, permission, credentials)."""


class PatsnapAuthError(PatsnapPermanentError):
    """Credentials are wrong, disabled or expired (also after a token refresh)."""


class PatsnapResponseError(PatsnapPermanentError):
    """PatSnap answered with JSON the provider cannot interpret (missing or unknown fields)."""


class PatsnapAmbiguousCreateError(PatsnapPermanentError):
    """A billable create failed after the request was sent: the job may exist on PatSnap's side."""


class PatsnapJobFailedError(PatsnapPermanentError):
    """The report job ended in PatSnap's failed state (job_status 3)."""

    def __init__(self, message: str, *, job_id: str, abnormal_cause: str | None, **kwargs: object) -> None:
        self.job_id = job_id
        self.abnormal_cause = abnormal_cause
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class PatsnapDownloadRejectedError(PatsnapPermanentError):
    """The downloaded content is not the report (wrong type, HTML page) or cannot be stored."""


class PatsnapBudgetExceededError(PatsnapPermanentError):
    """A budget (daily, monthly, or the task's ``max_billable_units``) would be passed: nothing was sent."""

    def __init__(self, message: str, *, period: str, spent: int, cap: int, **kwargs: object) -> None:
        self.period, self.spent, self.cap = period, spent, cap
        kwargs.setdefault("outcome", Outcome.NOT_SENT)
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class PatsnapDestinationError(PatsnapPermanentError):
    """The destination cannot be written (missing bucket or folder, no permission)."""


class PatsnapInputError(ValueError):
    """Bad input, found before any call to PatSnap. ``parameter`` names the offending argument."""

    def __init__(self, parameter: str, message: str) -> None:
        self.parameter = parameter
        super().__init__(f"{parameter}: {message}")


# ------------------------------------------------------------------------------------ decisions


def may_replay(exc: BaseException, *, billable: bool) -> bool:
    """Whether the hook may send a call again after ``exc``: reads after any transient error,
    billable calls only when PatSnap surely did not run them."""
    if not isinstance(exc, PatsnapRetryableError):
        return False
    return not billable or exc.outcome is not Outcome.MAY_HAVE_RUN


def _outcome(natural: Outcome, call_sent: bool) -> Outcome:
    # A failure of the step that prepares a call (the token fetch) leaves the call itself unsent.
    return natural if call_sent else Outcome.NOT_SENT


def error_from_envelope(
    *,
    endpoint: str,
    code: int,
    message: str | None,
    http_status: int | None,
    retry_after: float | None = None,
    call_sent: bool = True,
    read: bool = False,
) -> PatsnapError:
    """Exception for a PatSnap envelope carrying ``error_code`` (mapped by code first; ``read``: the call
    buys nothing, so a daily limit is a pause, not a failure)."""
    row = classify_code(code)
    if read and code in _TRANSIENT_FOR_READS:
        row = ErrorCode(row.code, row.meaning, ErrorClass.RETRY_LIMITED, row.outcome)
    # PatSnap's own words, but remote: bounded, and any credential it echoes is masked.
    message = remote_text(message) if message else None
    text = message or row.meaning
    if message and row.meaning not in message:
        text = f"{message} ({row.meaning})"
    outcome = _outcome(row.outcome, call_sent)
    if row.error_class is ErrorClass.TOKEN:
        return PatsnapTokenError(text, endpoint=endpoint, code=code, http_status=http_status, outcome=outcome)
    if row.error_class is ErrorClass.PERMANENT:
        cls = PatsnapAuthError if code in _AUTH_CODES else PatsnapPermanentError
        return cls(text, endpoint=endpoint, code=code, http_status=http_status, outcome=outcome)
    retry_cls = PatsnapRateLimitError if code == 67200002 else PatsnapRetryableError
    return retry_cls(
        text,
        retry_after=retry_after,
        max_attempts=2 if row.error_class is ErrorClass.RETRY_LIMITED else None,
        endpoint=endpoint,
        code=code,
        http_status=http_status,
        outcome=outcome,
    )


def error_from_http_status(
    *, endpoint: str, http_status: int, retry_after: float | None = None, body_hint: str = "", call_sent: bool = True
) -> PatsnapError:
    """Exception for a non-2xx answer without a PatSnap error code (mapped by HTTP status)."""
    hint = f": {body_hint}" if body_hint else ""
    refused = http_status in _REFUSING_STATUSES or 400 <= http_status < 500
    outcome = _outcome(Outcome.REJECTED if refused else Outcome.MAY_HAVE_RUN, call_sent)
    if http_status == 429:
        return PatsnapRateLimitError(
            f"rate limited{hint}", retry_after=retry_after, endpoint=endpoint, http_status=http_status, outcome=outcome
        )
    if http_status in _REFUSING_STATUSES or http_status >= 500:
        # 502/503/504 and other gateway pages arrive after the request went in: PatSnap may have run it.
        return PatsnapRetryableError(
            f"server error{hint}", retry_after=retry_after, endpoint=endpoint, http_status=http_status, outcome=outcome
        )
    if 300 <= http_status < 400 or (body_hint and http_status in _GATEWAY_REFUSALS):
        # A maintenance redirect, or a gateway's own page in front of PatSnap: it looks transient.
        what = "redirected (a maintenance page?)" if http_status < 400 else "refused by a gateway page"
        return PatsnapRetryableError(
            f"{what}{hint}",
            retry_after=retry_after,
            max_attempts=LOOKS_TRANSIENT_ATTEMPTS,
            endpoint=endpoint,
            http_status=http_status,
            outcome=_outcome(Outcome.MAY_HAVE_RUN if http_status < 400 else Outcome.REJECTED, call_sent),
        )
    cls = PatsnapAuthError if http_status in (401, 403) else PatsnapPermanentError
    what = "not authorised" if http_status in (401, 403) else "request rejected"
    return cls(f"{what}{hint}", endpoint=endpoint, http_status=http_status, outcome=outcome)


def error_from_unreadable_answer(
    *, endpoint: str, http_status: int, description: str, call_sent: bool = True
) -> PatsnapError:
    """A 2xx that is not PatSnap's envelope (a WAF or maintenance page): transient, and it may have run."""
    return PatsnapRetryableError(
        description, endpoint=endpoint, http_status=http_status, outcome=_outcome(Outcome.MAY_HAVE_RUN, call_sent)
    )


def error_from_codeless_failure(
    *, endpoint: str, http_status: int, description: str, call_sent: bool = True
) -> PatsnapError:
    """An envelope that says it failed but gives no code (``status: false``, ``error_code: 0``): it looks
    transient (bounded), and it may have run."""
    return PatsnapRetryableError(
        description,
        max_attempts=LOOKS_TRANSIENT_ATTEMPTS,
        endpoint=endpoint,
        http_status=http_status,
        outcome=_outcome(Outcome.MAY_HAVE_RUN, call_sent),
    )


def error_from_transport(*, endpoint: str, name: str, connected: bool, call_sent: bool = True) -> PatsnapError:
    """The exchange failed without an answer; ``connected`` says whether the request could have gone out.

    The library's own message is left out on purpose: it may echo a URL that carries a key.
    """
    natural = Outcome.MAY_HAVE_RUN if connected else Outcome.NOT_SENT
    detail = "no answer after the request was sent" if connected else "could not connect"
    return PatsnapConnectionError(
        f"{name} talking to PatSnap ({detail})", endpoint=endpoint, outcome=_outcome(natural, call_sent)
    )


def error_from_download_status(*, endpoint: str, http_status: int) -> PatsnapError:
    """A signed link's non-200 answer: expired or missing links and CDN hiccups are cured by a fresh link."""
    if http_status in _DOWNLOAD_RETRY_STATUSES or http_status >= 500:
        return PatsnapDownloadError(
            f"download link answered HTTP {http_status}", endpoint=endpoint, http_status=http_status
        )
    return PatsnapDownloadRejectedError(
        f"download link answered HTTP {http_status}", endpoint=endpoint, http_status=http_status
    )


def ambiguous_create(
    cause: PatsnapError | str, *, endpoint: str | None = None, what: str = "the report job may have been created"
) -> PatsnapAmbiguousCreateError:
    """The error for a billable call PatSnap may have run: say so, and how to check before re-running."""
    message = cause if isinstance(cause, str) else f"{cause.message}; {what}"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return PatsnapAmbiguousCreateError(
        f"{message}. {CHECK_BEFORE_RERUN} (look for a call to this endpoint around {when})",
        endpoint=endpoint if isinstance(cause, str) else cause.endpoint,
        code=None if isinstance(cause, str) else cause.code,
        http_status=None if isinstance(cause, str) else cause.http_status,
    )


CHECK_BEFORE_RERUN = (
    "Before re-running, check PatSnap's record of calls (the Personal Center's call log, or the usage "
    "statement POST /open-user/statement/v2) so it is not run, and billed, twice"
)
API_KEY_REFUSED = "check the connection's API key"
TOKEN_REFUSED_AGAIN = (
    "freshly fetched tokens were refused {n} times in a row: another process is most likely fetching tokens "
    "for the same client at the same time (PatSnap keeps one active token per client); share one budget "
    "(rate_limit_url) or fewer processes per client. Retried later"
)
CLIENT_REFUSED = "check the connection's client id and client secret"


def token_refused_again(exc: PatsnapError, refusals: int) -> PatsnapRetryableError:
    """The transient error that ends a run of refused fresh tokens (nothing was run: rejected)."""
    return _refused(PatsnapRetryableError, exc, TOKEN_REFUSED_AGAIN.format(n=refusals))


def credentials_refused(exc: PatsnapError, hint: str) -> PatsnapAuthError:
    """The authentication error that ends a token/key refusal, keeping PatSnap's code and message."""
    return _refused(PatsnapAuthError, exc, hint)


_E = TypeVar("_E", bound=PatsnapError)


def _refused(cls: type[_E], exc: PatsnapError, hint: str) -> _E:
    return cls(
        f"{exc.message}; {hint}",
        endpoint=exc.endpoint,
        code=exc.code,
        http_status=exc.http_status,
        outcome=Outcome.REJECTED,
    )
