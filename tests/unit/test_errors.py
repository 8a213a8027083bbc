"""The outcome of every failed call, decided in ``errors.py`` (the table users meet in the README)."""

from __future__ import annotations

import pytest

from airflow_provider_patsnap.errors import (
    ERROR_CODES,
    ErrorClass,
    Outcome,
    PatsnapAmbiguousCreateError,
    PatsnapAuthError,
    PatsnapConnectionError,
    PatsnapDownloadError,
    PatsnapDownloadRejectedError,
    PatsnapError,
    PatsnapPermanentError,
    PatsnapRateLimitError,
    PatsnapRetryableError,
    PatsnapTokenError,
    ambiguous_create,
    classify_code,
    error_from_download_status,
    error_from_envelope,
    error_from_http_status,
    error_from_transport,
    error_from_unreadable_answer,
    may_replay,
)

E = "GET /x"


def envelope_error(code: int, **kwargs: object) -> PatsnapError:
    return error_from_envelope(endpoint=E, code=code, message="from PatSnap", http_status=200, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "cls", "outcome"),
    [
        (67200002, PatsnapRateLimitError, Outcome.REJECTED),
        (68300008, PatsnapRetryableError, Outcome.MAY_HAVE_RUN),  # "try again later": not proof it did nothing
        (67200003, PatsnapTokenError, Outcome.REJECTED),
        (67200009, PatsnapTokenError, Outcome.REJECTED),
        (68300004, PatsnapPermanentError, Outcome.REJECTED),
        (67200005, PatsnapPermanentError, Outcome.REJECTED),
        (67200008, PatsnapAuthError, Outcome.REJECTED),
        (68300005, PatsnapRetryableError, Outcome.MAY_HAVE_RUN),
        (67200000, PatsnapRetryableError, Outcome.MAY_HAVE_RUN),
        (68300009, PatsnapRetryableError, Outcome.MAY_HAVE_RUN),  # undocumented: one more try for a read
        (12345678, PatsnapRetryableError, Outcome.MAY_HAVE_RUN),
    ],
)
def test_envelope_codes(code: int, cls: type[PatsnapError], outcome: Outcome) -> None:
    exc = envelope_error(code)
    assert type(exc) is cls
    assert exc.outcome is outcome
    assert exc.code == code and "from PatSnap" in str(exc) and E in str(exc)


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_documented_code_has_a_consistent_row(code: int) -> None:
    row = ERROR_CODES[code]
    exc = envelope_error(code)
    assert exc.transient is (row.error_class in (ErrorClass.RETRY, ErrorClass.RETRY_LIMITED))
    assert exc.outcome is row.outcome
    if row.error_class is ErrorClass.RETRY_LIMITED:
        assert isinstance(exc, PatsnapRetryableError) and exc.max_attempts == 2


@pytest.mark.parametrize(
    ("status", "cls", "outcome"),
    [
        (429, PatsnapRateLimitError, Outcome.REJECTED),
        (503, PatsnapRetryableError, Outcome.MAY_HAVE_RUN),  # a gateway may answer it after the backend took it
        (408, PatsnapRetryableError, Outcome.REJECTED),
        (500, PatsnapRetryableError, Outcome.MAY_HAVE_RUN),
        (502, PatsnapRetryableError, Outcome.MAY_HAVE_RUN),
        (504, PatsnapRetryableError, Outcome.MAY_HAVE_RUN),
        (520, PatsnapRetryableError, Outcome.MAY_HAVE_RUN),
        # A gateway's page in front of PatSnap (not PatSnap's envelope) looks transient: bounded.
        (401, PatsnapRetryableError, Outcome.REJECTED),
        (403, PatsnapRetryableError, Outcome.REJECTED),
        (404, PatsnapRetryableError, Outcome.REJECTED),
        (302, PatsnapRetryableError, Outcome.MAY_HAVE_RUN),  # a maintenance redirect
        (400, PatsnapPermanentError, Outcome.REJECTED),
    ],
)
def test_http_statuses_without_a_code(status: int, cls: type[PatsnapError], outcome: Outcome) -> None:
    exc = error_from_http_status(endpoint=E, http_status=status, retry_after=3.0, body_hint="an HTML page")
    assert type(exc) is cls and exc.outcome is outcome
    assert f"HTTP {status}" in str(exc) and "an HTML page" in str(exc)
    if isinstance(exc, PatsnapRetryableError):
        assert exc.retry_after == 3.0


@pytest.mark.parametrize(
    ("status", "cls"), [(401, PatsnapAuthError), (403, PatsnapAuthError), (404, PatsnapPermanentError)]
)
def test_an_error_status_with_a_codeless_envelope_is_still_permanent(status: int, cls: type[PatsnapError]) -> None:
    """An envelope is PatSnap speaking (not a gateway page): its 401/403/404 stands."""
    assert type(error_from_http_status(endpoint=E, http_status=status)) is cls


@pytest.mark.parametrize("status", [302, 401, 403, 404])
def test_gateway_answers_that_look_transient_are_bounded(status: int) -> None:
    exc = error_from_http_status(endpoint=E, http_status=status, body_hint="an HTML page")
    assert isinstance(exc, PatsnapRetryableError) and exc.max_attempts == 2


def test_a_daily_limit_on_a_read_is_a_pause_but_permanent_for_what_it_would_buy() -> None:
    read = error_from_envelope(endpoint=E, code=67200007, message=None, http_status=200, read=True)
    assert isinstance(read, PatsnapRetryableError) and read.max_attempts == 2
    assert type(envelope_error(67200007)) is PatsnapPermanentError


def test_unreadable_answer_is_transient_and_may_have_run() -> None:
    exc = error_from_unreadable_answer(endpoint=E, http_status=200, description="an HTML page")
    assert isinstance(exc, PatsnapRetryableError) and exc.outcome is Outcome.MAY_HAVE_RUN


@pytest.mark.parametrize(("connected", "outcome"), [(False, Outcome.NOT_SENT), (True, Outcome.MAY_HAVE_RUN)])
def test_transport_failures(connected: bool, outcome: Outcome) -> None:
    exc = error_from_transport(endpoint=E, name="ReadTimeout", connected=connected)
    assert isinstance(exc, PatsnapConnectionError) and exc.outcome is outcome
    assert "ReadTimeout" in str(exc)


def test_a_failed_preparing_step_leaves_the_call_unsent() -> None:
    # The token fetch comes first: whatever happened to it, the call it was for never left.
    for exc in (
        error_from_transport(endpoint=E, name="ReadTimeout", connected=True, call_sent=False),
        error_from_http_status(endpoint=E, http_status=504, call_sent=False),
        error_from_unreadable_answer(endpoint=E, http_status=200, description="x", call_sent=False),
        envelope_error(68300005, call_sent=False),
    ):
        assert exc.outcome is Outcome.NOT_SENT, exc


@pytest.mark.parametrize(
    ("exc", "read", "billable"),
    [
        (error_from_transport(endpoint=E, name="ConnectError", connected=False), True, True),
        (error_from_http_status(endpoint=E, http_status=429), True, True),
        (error_from_http_status(endpoint=E, http_status=408), True, True),
        (error_from_http_status(endpoint=E, http_status=503), True, False),
        (envelope_error(68300008), True, False),
        (envelope_error(12345678), True, False),
        (error_from_transport(endpoint=E, name="ReadTimeout", connected=True), True, False),
        (error_from_http_status(endpoint=E, http_status=502), True, False),
        (error_from_http_status(endpoint=E, http_status=504), True, False),
        (error_from_unreadable_answer(endpoint=E, http_status=200, description="x"), True, False),
        (envelope_error(67200005), False, False),  # permanent: never
        (envelope_error(67200003), False, False),  # token: handled by refresh-and-replay, not by retries
        (ValueError("a bug"), False, False),
    ],
)
def test_may_replay(exc: BaseException, read: bool, billable: bool) -> None:
    assert may_replay(exc, billable=False) is read
    assert may_replay(exc, billable=True) is billable


def test_unknown_codes_get_one_more_try_and_may_have_run() -> None:
    row = classify_code(68399999)
    assert row.error_class is ErrorClass.RETRY_LIMITED and row.outcome is Outcome.MAY_HAVE_RUN


def test_platform_and_business_codes() -> None:
    assert classify_code(67200003).is_platform and not classify_code(68300004).is_platform


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (403, PatsnapDownloadError),  # expired signature: a fresh link cures it
        (404, PatsnapDownloadError),
        (410, PatsnapDownloadError),
        (429, PatsnapDownloadError),
        (500, PatsnapDownloadError),
        (400, PatsnapDownloadRejectedError),
        (405, PatsnapDownloadRejectedError),
    ],
)
def test_download_statuses(status: int, cls: type[PatsnapError]) -> None:
    assert type(error_from_download_status(endpoint="GET https://cdn/x.pdf", http_status=status)) is cls


def test_ambiguous_create_says_the_job_may_exist_and_how_to_check() -> None:
    cause = error_from_http_status(endpoint="POST /c", http_status=504, body_hint="an HTML page")
    exc = ambiguous_create(cause)
    assert isinstance(exc, PatsnapAmbiguousCreateError) and not exc.transient
    text = str(exc)
    assert "POST /c" in text and "HTTP 504" in text and "may have been created" in text
    assert "/open-user/statement/v2" in text and "UTC" in text
    assert ambiguous_create("no job_id", endpoint="POST /c").endpoint == "POST /c"
