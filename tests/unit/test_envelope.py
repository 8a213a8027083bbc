"""hooks/_envelope.py: reading PatSnap's answers (envelope first, HTTP status second) and Retry-After."""

from __future__ import annotations

import email.utils
import json
import time
from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_patsnap.errors import (
    Outcome,
    PatsnapAuthError,
    PatsnapError,
    PatsnapPermanentError,
    PatsnapRateLimitError,
    PatsnapResponseError,
    PatsnapRetryableError,
    PatsnapTokenError,
)
from airflow_provider_patsnap.hooks._envelope import (
    MAX_RETRY_AFTER,
    loads_exact,
    parse_envelope,
    parse_retry_after,
    parse_token_response,
)
from tests.support import envelope

E = "GET /innovation/company-report/job_id/status"
TOKEN = "POST /oauth/token"
JSON = {"Content-Type": "application/json"}
HTML = {"Content-Type": "text/html; charset=utf-8"}


def parse(content: str | bytes, status: int = 200, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
    raw = content.encode() if isinstance(content, str) else content
    headers = JSON if headers is None else headers
    return parse_envelope(endpoint=E, http_status=status, headers=headers, content=raw, **kwargs)


def fails(
    content: str | bytes, status: int = 200, headers: dict[str, str] | None = None, **kwargs: Any
) -> PatsnapError:
    with pytest.raises(PatsnapError) as info:
        parse(content, status, headers, **kwargs)
    return info.value


def token_answer(content: str, status: int = 200) -> tuple[str, float]:
    return parse_token_response(endpoint=TOKEN, http_status=status, headers=JSON, content=content.encode())


# --------------------------------------------------------------------------- success


@pytest.mark.parametrize("data", [{"job_id": "1", "job_status": 0}, [1, 2], None, "text", 0])
def test_a_successful_envelope_returns_its_data(data: Any) -> None:
    assert parse(envelope(data)) == data


def test_success_needs_no_error_code_field() -> None:
    assert parse('{"status": true, "data": {"a": 1}}') == {"a": 1}


def test_integers_stay_exact_and_decimals_never_pass_through_a_float() -> None:
    data = parse('{"status": true, "error_code": 0, "data": {"job_id": 1579434053399035905, "ratio": 0.1}}')
    assert data["job_id"] == 1579434053399035905 and type(data["job_id"]) is int
    assert data["ratio"] == Decimal("0.1") and type(data["ratio"]) is Decimal


def test_loads_exact() -> None:
    assert loads_exact(b"[12345678901234567890, 1.10]") == [12345678901234567890, Decimal("1.10")]


# --------------------------------------------------------------------------- the code first


def test_an_error_code_maps_the_error_whatever_the_http_status() -> None:
    rate = fails(envelope(code=67200002, msg="too fast"), status=200)
    assert type(rate) is PatsnapRateLimitError and rate.code == 67200002 and rate.http_status == 200
    assert "too fast" in str(rate) and E in str(rate)

    # A 500 that carries a documented business code is that code (permanent), not a server error.
    bad = fails(envelope(code=68300004, msg="Invalid parameter"), status=500)
    assert type(bad) is PatsnapPermanentError and bad.code == 68300004 and bad.http_status == 500
    assert not bad.transient


def test_a_token_code_is_a_token_error() -> None:
    assert type(fails(envelope(code=67200003), status=401)) is PatsnapTokenError


def test_error_code_as_a_string_is_read_as_the_code() -> None:
    exc = fails('{"status": false, "error_code": "67200005", "error_msg": "Insufficient balance"}')
    assert type(exc) is PatsnapPermanentError and exc.code == 67200005


@pytest.mark.parametrize(
    "body",
    [
        '{"status": false, "error_code": 0, "data": null}',
        '{"status": false}',
        '{"status": "true", "error_code": 0}',
        '{"status": false, "error_code": "oops"}',
        '{"status": false, "error_code": null}',
    ],
)
def test_a_failure_without_a_usable_code_on_2xx_looks_transient_and_may_have_run(body: str) -> None:
    exc = fails(body)
    assert type(exc) is PatsnapRetryableError and "without a usable error_code" in str(exc)
    assert exc.outcome is Outcome.MAY_HAVE_RUN and exc.max_attempts == 2


# --------------------------------------------------------------------------- the HTTP status second


@pytest.mark.parametrize(
    ("status", "cls", "outcome"),
    [
        (503, PatsnapRetryableError, Outcome.MAY_HAVE_RUN),
        (429, PatsnapRateLimitError, Outcome.REJECTED),
        (502, PatsnapRetryableError, Outcome.MAY_HAVE_RUN),
        (401, PatsnapAuthError, Outcome.REJECTED),
    ],
)
def test_an_envelope_without_a_code_on_an_error_status_maps_by_status(
    status: int, cls: type[PatsnapError], outcome: Outcome
) -> None:
    for body in (envelope(code=0), '{"status": false, "error_code": "oops"}'):
        exc = fails(body, status=status)
        assert type(exc) is cls and exc.outcome is outcome and exc.http_status == status


def test_a_gateway_page_names_the_status_and_the_page() -> None:
    exc = fails("<html>down</html>", status=503, headers=HTML)
    assert isinstance(exc, PatsnapRetryableError)
    assert "HTTP 503" in str(exc) and "HTML page" in str(exc) and "(17 bytes)" in str(exc)


# --------------------------------------------------------------------------- not the envelope


@pytest.mark.parametrize(
    ("content", "headers", "kind"),
    [
        ("<html>maintenance</html>", HTML, "an HTML page"),
        ("Service Unavailable", {"Content-Type": "text/plain"}, "a body of type text/plain"),
        ("Service Unavailable", {}, "an untyped body"),
        (b"", JSON, "a body of type application/json"),
        (b"\xff\xfe\x00garbage", JSON, "a body of type application/json"),
    ],
)
def test_a_non_json_2xx_is_transient_and_may_have_run(content: str | bytes, headers: dict[str, str], kind: str) -> None:
    exc = fails(content, headers=headers)
    assert type(exc) is PatsnapRetryableError  # a WAF or maintenance page passes: reads retry it
    assert exc.outcome is Outcome.MAY_HAVE_RUN  # ... but a create behind it may have run
    assert kind in str(exc) and "instead of its JSON envelope" in str(exc)


@pytest.mark.parametrize("body", ["[1, 2]", '{"job_id": "1"}', '"ok"', "42", "null"])
def test_json_that_is_not_the_envelope_is_a_response_error(body: str) -> None:
    exc = fails(body)
    assert type(exc) is PatsnapResponseError and not exc.transient
    assert "JSON that is not its envelope" in str(exc)


# --------------------------------------------------------------------------- call_sent=False


@pytest.mark.parametrize(
    ("content", "status", "headers"),
    [
        ("<html>gateway timeout</html>", 504, HTML),
        ("<html>WAF</html>", 200, HTML),
        (envelope(code=68300005), 200, JSON),
        ("", 500, {}),
    ],
)
def test_a_step_that_prepares_the_call_leaves_it_not_sent(content: str, status: int, headers: dict[str, str]) -> None:
    assert fails(content, status, headers).outcome is Outcome.MAY_HAVE_RUN
    assert fails(content, status, headers, call_sent=False).outcome is Outcome.NOT_SENT


# --------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-3", 0.0),
        ("100000", MAX_RETRY_AFTER),
        ("soon", None),
        ("Mon, 99 Foo 2020", None),
    ],
)
def test_parse_retry_after_seconds(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_http_dates() -> None:
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert parse_retry_after(soon) == pytest.approx(30, abs=2)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: go now
    assert parse_retry_after(email.utils.formatdate(time.time() + 86400, usegmt=True)) == MAX_RETRY_AFTER


def test_the_cap_is_five_minutes() -> None:
    assert MAX_RETRY_AFTER == 300.0


def test_retry_after_reaches_the_error() -> None:
    exc = fails(envelope(code=67200002), status=429, headers={**JSON, "Retry-After": "7"})
    assert isinstance(exc, PatsnapRateLimitError) and exc.retry_after == 7.0
    exc = fails("<html>busy</html>", status=503, headers={**HTML, "Retry-After": "86400"})
    assert isinstance(exc, PatsnapRetryableError) and exc.retry_after == MAX_RETRY_AFTER


# --------------------------------------------------------------------------- the token endpoint


@pytest.mark.parametrize(
    ("body", "token", "expires_in"),
    [
        ({"token": "t-1", "token_type": "BearerToken", "expires_in": 1799, "status": "approved"}, "t-1", 1799.0),
        ({"access_token": "t-2", "expires_in": "600"}, "t-2", 600.0),
        ({"status": True, "error_code": 0, "data": {"token": "t-3"}, "expires_in": 60}, "t-3", 60.0),
        ({"token": "t-4"}, "t-4", 1800.0),  # no lifetime given: PatSnap's documented 30 minutes
        ({"token": "t-5", "expires_in": "soon"}, "t-5", 1800.0),
        ({"token": "t-6", "expires_in": None}, "t-6", 1800.0),
        ({"token": "t-7", "expires_in": 0}, "t-7", 1800.0),
    ],
)
def test_parse_token_response(body: dict[str, Any], token: str, expires_in: float) -> None:
    assert token_answer(json.dumps(body)) == (token, expires_in)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (envelope(code=67200003, msg="The key and secret are wrong"), 401),
        (envelope(code=67200009), 200),  # a token code from the token endpoint: the client is refused
        ("<html>Forbidden</html>", 403),
        ('{"error": "invalid_client"}', 401),
    ],
)
def test_refused_client_credentials_are_an_auth_error(body: str, status: int) -> None:
    with pytest.raises(PatsnapAuthError, match="client id and client secret") as info:
        token_answer(body, status)
    assert info.value.outcome is Outcome.REJECTED and info.value.endpoint == TOKEN


def test_other_credential_codes_from_the_token_endpoint_stay_auth_errors() -> None:
    with pytest.raises(PatsnapAuthError, match="67200202"):
        token_answer(envelope(code=67200202))


@pytest.mark.parametrize(
    ("body", "status"),
    [("<html>bad gateway</html>", 502), (envelope(code=68300008), 200), ("<html>WAF</html>", 200)],
)
def test_a_transient_token_failure_leaves_the_call_unsent(body: str, status: int) -> None:
    with pytest.raises(PatsnapRetryableError) as info:
        token_answer(body, status)
    assert info.value.outcome is Outcome.NOT_SENT


@pytest.mark.parametrize("body", [envelope({"token_type": "BearerToken"}), '{"token": ""}', '{"token": 123}'])
def test_a_token_answer_without_a_token_is_a_response_error(body: str) -> None:
    with pytest.raises(PatsnapResponseError):
        token_answer(body)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_non_finite_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after(value) is None


@pytest.mark.parametrize("expires_in", [-5, 0, "inf", "nan", 10**9])
def test_an_absurd_token_lifetime_is_bounded(expires_in: object) -> None:
    body = json.dumps({"token": "tok", "expires_in": expires_in}).encode()
    _, lifetime = parse_token_response(endpoint="POST /oauth/token", http_status=200, headers={}, content=body)
    assert 0 < lifetime <= 24 * 3600


def test_an_auth_code_from_the_token_endpoint_points_at_the_client_credentials() -> None:
    body = json.dumps({"status": False, "error_code": 67200202, "error_msg": "apikey auth error"}).encode()
    with pytest.raises(PatsnapAuthError, match="client id and client secret"):
        parse_token_response(endpoint="POST /oauth/token", http_status=200, headers={}, content=body)
