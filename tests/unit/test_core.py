"""The call core as a sequence of steps, driven by hand: no HTTP, no sockets, no sleeping."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_patsnap.errors import (
    Outcome,
    PatsnapAuthError,
    PatsnapConnectionError,
    PatsnapRateLimitError,
    PatsnapRetryableError,
)
from airflow_provider_patsnap.hooks._config import PatsnapConfig
from airflow_provider_patsnap.hooks._core import (
    Acquire,
    CallCore,
    Lock,
    MaskSecret,
    Request,
    Response,
    Send,
    Sleep,
    Step,
    Steps,
    TransportFailure,
)
from airflow_provider_patsnap.hooks._token_cache import Token, TokenCache

BASE = "https://patsnap.test"
STATUS = "/innovation/company-report/job_id/status"
CREATE = "/innovation/company-report/task/create"


def oauth(**overrides: Any) -> PatsnapConfig:
    settings: dict[str, Any] = {
        "base_url": BASE,
        "client_id": "cid",
        "client_secret": "csecret",
        "qps": None,
        "max_retries": 3,
        "retry_wait_min": 0.5,
        "retry_wait_max": 1.0,
    }
    return PatsnapConfig(**{**settings, **overrides})


def api_key(**overrides: Any) -> PatsnapConfig:
    return oauth(client_id=None, client_secret=None, api_key="sk-core-test-key", **overrides)


def ok(data: Any) -> Response:
    return Response(
        200, {"Content-Type": "application/json"}, json.dumps({"data": data, "status": True, "error_code": 0}).encode()
    )


def code(error_code: int, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps({"status": False, "error_code": error_code, "error_msg": "from PatSnap"}).encode()
    return Response(status, {"Content-Type": "application/json", **(headers or {})}, body)


def page(status: int) -> Response:
    return Response(status, {"Content-Type": "text/html"}, b"<html>gateway</html>")


def token(value: str = "tok-1") -> Response:
    return Response(200, {}, json.dumps({"token": value, "expires_in": 1800}).encode())


class Driver:
    """Answers ``Send`` steps from a script and records every step the sequence yields."""

    def __init__(self, answers: Iterator[Response | TransportFailure]) -> None:
        self.answers = answers
        self.steps: list[Step] = []
        self.released = 0

    def run(self, steps: Steps[Any]) -> Any:
        reply: Any = None
        while True:
            try:
                step = steps.send(reply)
            except StopIteration as done:
                return done.value
            self.steps.append(step)
            reply = self.perform(step)

    def perform(self, step: Step) -> Any:
        if isinstance(step, Send):
            return next(self.answers)
        if isinstance(step, Lock):
            return self.release
        return None

    def release(self) -> None:
        self.released += 1

    def kinds(self) -> list[str]:
        out = []
        for step in self.steps:
            if isinstance(step, Send):
                out.append("token" if step.request.url.endswith("/oauth/token") else f"send {step.request.method}")
            else:
                out.append(type(step).__name__.lower())
        return out

    def sends(self) -> list[Request]:
        return [s.request for s in self.steps if isinstance(s, Send)]

    def sleeps(self) -> list[float]:
        return [s.seconds for s in self.steps if isinstance(s, Sleep)]


def drive(
    config: PatsnapConfig, *answers: Response | TransportFailure, call: Callable[[CallCore], Steps[Any]] | None = None
) -> tuple[Driver, Any]:
    core = CallCore(config, _Log(), tokens=TokenCache())
    driver = Driver(iter(answers))
    steps = call(core) if call else core.call("GET", STATUS, params={"job_id": "7"})
    try:
        return driver, driver.run(steps)
    except Exception as exc:  # returned for the test to inspect
        return driver, exc


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, *args: Any) -> None:
        self.lines.append(msg % args)

    warning = info


def create(core: CallCore) -> Steps[Any]:
    return core.call("POST", CREATE, json={"report_type": "pdf"}, billable=True)


# ------------------------------------------------------------------------------------ the sequence


def test_a_missing_token_is_fetched_under_its_lock_before_queueing_for_a_slot() -> None:
    driver, result = drive(oauth(), token("tok-1"), ok({"job_status": 1}))

    assert result == {"job_status": 1}
    # The send follows its slot at once: no token fetch in between to make it arrive late.
    assert driver.kinds() == ["lock", "token", "masksecret", "acquire", "send GET"]
    assert driver.released == 1
    business = driver.sends()[1]
    assert business.headers["Authorization"] == "Bearer tok-1"
    assert business.params == {"job_id": "7", "apikey": "cid"}
    token_request = driver.sends()[0]
    assert token_request.basic_auth == ("cid", "csecret") and token_request.form == {"grant_type": "client_credentials"}


def test_the_token_is_read_after_the_wait_for_a_slot() -> None:
    tokens = TokenCache()
    tokens.put(("https://patsnap.test", "cid"), Token("tok-old", time.monotonic() + 1800, 1800))
    core = CallCore(oauth(), _Log(), tokens=tokens)
    steps = core.call("GET", STATUS)
    assert isinstance(steps.send(None), Acquire)  # a fresh token: straight to the queue
    tokens.invalidate(("https://patsnap.test", "cid"), "tok-old")  # it went stale while we waited
    assert isinstance(steps.send(None), Lock)
    fetch = steps.send(lambda: None)
    assert isinstance(fetch, Send) and fetch.request.url.endswith("/oauth/token")
    steps.send(token("tok-new"))  # MaskSecret
    business = steps.send(None)
    assert isinstance(business, Send) and business.request.headers["Authorization"] == "Bearer tok-new"


def test_a_cached_token_means_no_lock_and_no_token_request() -> None:
    core = CallCore(oauth(), _Log(), tokens=TokenCache())
    driver = Driver(iter([token(), ok(1), ok(2)]))
    driver.run(core.call("GET", STATUS))
    driver.steps.clear()

    assert driver.run(core.call("GET", STATUS)) == 2
    assert driver.kinds() == ["acquire", "send GET"]


def test_api_key_mode_has_no_token_step_and_keeps_the_key_out_of_the_query_by_default() -> None:
    driver, _ = drive(api_key(), ok(None))
    assert driver.kinds() == ["acquire", "send GET"]
    assert driver.sends()[0].headers["Authorization"] == "Bearer sk-core-test-key"
    assert "apikey" not in driver.sends()[0].params

    driver, _ = drive(api_key(api_key_in_query=True), ok(None))
    assert driver.sends()[0].params["apikey"] == "sk-core-test-key"


def test_refused_token_is_dropped_refetched_once_and_the_call_replayed() -> None:
    driver, result = drive(oauth(), token("tok-old"), code(67200003), token("tok-new"), ok("fine"))

    assert result == "fine"
    assert driver.kinds() == [
        "lock", "token", "masksecret", "acquire", "send GET",
        "lock", "token", "masksecret", "acquire", "send GET",
    ]  # fmt: skip
    assert driver.sends()[-1].headers["Authorization"] == "Bearer tok-new"
    assert driver.sleeps() == []  # a token refresh is not a retry: no backoff


def test_fresh_tokens_refused_in_a_fleet_are_refetched_with_backoff_then_retryable() -> None:
    """Another process fetched a newer token (one active token per client): a few fresh tokens, backing off."""
    answers = [token("a"), code(67200009)] + [a for n in "bcd" for a in (token(n), code(67200009))]
    driver, exc = drive(oauth(retry_wait_min=1.0, retry_wait_max=60.0, max_retries=0), *answers)
    assert isinstance(exc, PatsnapRetryableError) and exc.outcome is Outcome.REJECTED
    assert "refused 4 times in a row" in str(exc) and "one active token per client" in str(exc)
    assert len(driver.sends()) == 8  # four tokens, four replays
    waits = driver.sleeps()
    assert len(waits) == 2 and 1.0 <= waits[0] < 2.0 and 2.0 <= waits[1] < 3.0  # after fresh ones only


def test_a_fresh_token_accepted_after_a_refusal_succeeds() -> None:
    driver, result = drive(oauth(), token("a"), code(67200009), token("b"), code(67200009), token("c"), ok("x"))
    assert result == "x" and len(driver.sleeps()) == 1


def test_api_key_refusal_is_an_auth_error_at_once() -> None:
    driver, exc = drive(api_key(), code(67200003))
    assert isinstance(exc, PatsnapAuthError) and "API key" in str(exc)
    assert len(driver.sends()) == 1


# ------------------------------------------------------------------------------------ retries


def test_reads_are_replayed_on_every_transient_outcome() -> None:
    driver, result = drive(
        api_key(max_retries=4),
        TransportFailure("ReadTimeout", connected=True),
        page(502),
        page(504),
        Response(200, {"Content-Type": "text/html"}, b"<html>WAF</html>"),
        ok("done"),
    )
    assert result == "done"
    assert len(driver.sleeps()) == 4
    assert driver.kinds().count("acquire") == 5  # every replay takes a new slot


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(TransportFailure("ConnectionError", connected=False), id="not-sent"),
        pytest.param(code(67200002, 429), id="rate-limited"),
        pytest.param(page(408), id="request-timeout"),
    ],
)
def test_a_create_is_replayed_only_when_patsnap_surely_did_not_run_it(first: Response | TransportFailure) -> None:
    driver, result = drive(api_key(), first, ok({"job_id": "11"}), call=create)
    assert result == {"job_id": "11"}
    assert [r.method for r in driver.sends()] == ["POST", "POST"]


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(TransportFailure("ReadTimeout", connected=True), id="read-timeout"),
        pytest.param(page(502), id="502"),
        pytest.param(page(504), id="504"),
        pytest.param(page(500), id="500"),
        pytest.param(Response(200, {}, b"<html>maintenance</html>"), id="200-html"),
        pytest.param(code(68300005), id="search-failure"),
        pytest.param(code(68300008), id="service-busy"),  # "try again later" does not say nothing ran
        pytest.param(page(503), id="unavailable"),  # a gateway may answer 503 after the backend took it
        pytest.param(code(12345678), id="unknown-code"),
        pytest.param(Response(302, {"Location": "https://maintenance.example/"}, b""), id="redirect"),
        pytest.param(Response(200, {}, b'{"status": false, "error_code": 0}'), id="codeless-failure"),
    ],
)
def test_a_create_that_may_have_run_fails_at_once(first: Response | TransportFailure) -> None:
    driver, exc = drive(api_key(), first, ok({"job_id": "duplicate"}), call=create)
    assert isinstance(exc, PatsnapRetryableError) and exc.outcome is Outcome.MAY_HAVE_RUN
    assert len(driver.sends()) == 1 and driver.sleeps() == []


def test_a_token_fetch_failure_before_a_create_leaves_the_create_unsent_and_replayable() -> None:
    driver, result = drive(
        oauth(), TransportFailure("ReadTimeout", connected=True), page(504), token(), ok({"job_id": "5"}), call=create
    )
    assert result == {"job_id": "5"}
    assert driver.kinds().count("send POST") == 1
    assert len(driver.sleeps()) == 2


def test_retry_after_sets_the_wait_and_the_budget_ends_with_the_last_error() -> None:
    driver, exc = drive(api_key(max_retries=2), *[code(67200002, 429, {"Retry-After": "9"})] * 3)
    assert isinstance(exc, PatsnapRateLimitError) and exc.outcome is Outcome.REJECTED
    assert driver.sleeps() == [9.0, 9.0]
    assert len(driver.sends()) == 3


def test_transport_failure_names_the_endpoint_but_not_the_url() -> None:
    _, exc = drive(api_key(max_retries=0, api_key_in_query=True), TransportFailure("ConnectTimeout", False))
    assert isinstance(exc, PatsnapConnectionError) and exc.outcome is Outcome.NOT_SENT
    assert f"GET {STATUS}" in str(exc) and "sk-" not in str(exc)


# ------------------------------------------------------------------------------------ cleanup and policy


def test_closing_the_sequence_mid_token_fetch_releases_the_token_lock() -> None:
    core = CallCore(oauth(), _Log(), tokens=TokenCache())
    released: list[bool] = []
    steps = core.call("GET", STATUS)
    assert isinstance(steps.send(None), Lock)
    assert isinstance(steps.send(lambda: released.append(True)), Send)  # the token request is in flight
    steps.close()  # what a cancelled trigger does to it
    assert released == [True]


def test_every_request_obeys_the_url_policy() -> None:
    with pytest.raises(ValueError, match="unencrypted"):
        Request("GET", "http://patsnap.example/x")
    for url in ("https://patsnap.example/x", "http://127.0.0.2:8080/x", "http://[::1]/x", "http://localhost/x"):
        assert urlsplit(Request("GET", url).url).path == "/x"


def test_mask_secret_is_asked_for_every_new_token() -> None:
    driver, _ = drive(oauth(), token("tok-masked"), ok(None))
    masked = [s.value for s in driver.steps if isinstance(s, MaskSecret)]
    assert masked == ["tok-masked"]
    assert "tok-masked" not in repr(driver.steps)
