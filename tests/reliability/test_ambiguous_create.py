"""Creates are billable: when PatSnap may have run one, never send it again, and say so.

Documented behaviour: a create whose request was sent but whose answer never arrived (read timeout,
connection dropped mid-answer) raises ``PatsnapAmbiguousCreateError``; the operators turn it into
``AirflowFailException`` (Airflow must not retry it either) whose message says the job may exist and
to check before re-running. Failures that prove PatSnap did not run the create (connect timeout,
rate limit, token refresh) are replayed, still ending in exactly one job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
import responses
from urllib3.exceptions import ProtocolError

from airflow_provider_patsnap.errors import Outcome, PatsnapAmbiguousCreateError
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.operators.reports import (
    PatsnapCreateEnterpriseReportOperator,
    PatsnapCreatePatentValueReportOperator,
)
from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from airflow_provider_patsnap.version_compat import AirflowFailException
from tests.support import FAKE_HOST, R001_CREATE, R002_CREATE_NO_LOGO, TOKEN_URL, envelope, expect_failure

R002_CREATE = R002_CREATE_NO_LOGO
R001_EMU_CREATE = "POST /innovation/company-report/task/create"
R002_EMU_CREATE = "POST /patent-valuation-data/patent-report/task/create-no-logo"


def _enterprise() -> Any:
    return PatsnapCreateEnterpriseReportOperator(task_id="create", company_name="Example Robotics Ltd")


def _patent_value() -> Any:
    return PatsnapCreatePatentValueReportOperator(task_id="create", patent_number="CN108977442B")


CREATES = [
    pytest.param(_enterprise, R001_CREATE, id="enterprise"),
    pytest.param(_patent_value, R002_CREATE, id="patent-value"),
]


def _posts(rsps: responses.RequestsMock, url: str) -> int:
    return len([c for c in rsps.calls if c.request.method == "POST" and str(c.request.url).split("?")[0] == url])


def assert_says_job_may_exist(text: str) -> None:
    lowered = text.lower()
    assert "may have been created" in lowered or "may exist" in lowered, text
    assert "before re-running" in lowered, text


# --------------------------------------------------------------------------- sent, no answer


@pytest.mark.parametrize(("factory", "url"), CREATES)
@pytest.mark.parametrize(
    "lost_answer",
    [
        pytest.param(requests.ReadTimeout("HTTPSConnectionPool: Read timed out. (read timeout=30)"), id="read-timeout"),
        pytest.param(
            requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))),
            id="connection-reset-after-send",
        ),
        pytest.param(requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"), id="cut-answer"),
    ],
)
def test_create_without_an_answer_is_ambiguous_and_never_resent(
    oauth_conn: str, sleeps: list[float], factory: Callable[[], Any], url: str, lost_answer: Exception
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(TOKEN_URL, json={"token": "tok-ambiguous", "expires_in": 1800})
        rsps.post(url, body=lost_answer)
        rsps.post(url, body=envelope({"job_id": "2"}))  # a blind replay would create a second job

        exc = expect_failure(lambda: factory().execute({}))

        assert isinstance(exc, AirflowFailException), f"{type(exc).__name__}: {exc}"
        assert_says_job_may_exist(str(exc))
        assert "POST " + url.removeprefix(FAKE_HOST) in str(exc)
        assert _posts(rsps, url) == 1
        assert sleeps == []


@pytest.mark.parametrize(("factory", "url"), CREATES)
def test_hook_raises_the_documented_ambiguous_error(oauth_conn: str, factory: Callable[[], Any], url: str) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(TOKEN_URL, json={"token": "tok-ambiguous", "expires_in": 1800})
        rsps.post(url, body=requests.ReadTimeout("read timed out"))
        hook = PatsnapHook()
        create = (
            (lambda: hook.create_enterprise_report(company_name="Example Robotics Ltd"))
            if url == R001_CREATE
            else (lambda: hook.create_patent_value_report(patent_number="CN108977442B"))
        )
        with pytest.raises(PatsnapAmbiguousCreateError) as info:
            create()
        assert info.value.outcome is Outcome.MAY_HAVE_RUN
        assert_says_job_may_exist(str(info.value))
        assert _posts(rsps, url) == 1


# --------------------------------------------------------------------------- answered, but PatSnap may have run it


@pytest.mark.parametrize(("factory", "url"), CREATES)
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            {"status": 500, "body": "<html>Internal error</html>", "content_type": "text/html"}, id="500-html"
        ),
        pytest.param({"status": 502, "body": "<html>Bad gateway</html>", "content_type": "text/html"}, id="502-html"),
        pytest.param(
            {"status": 504, "body": "<html>Gateway time-out</html>", "content_type": "text/html"}, id="504-html"
        ),
        pytest.param({"body": "<html>Access denied by WAF</html>", "content_type": "text/html"}, id="200-html"),
        pytest.param({"body": envelope(code=68300005, msg="Search API failure")}, id="68300005"),
        pytest.param({"body": envelope(code=68399999, msg="Something new")}, id="unknown-code"),
        pytest.param({"body": envelope(code=67200000, msg="Server Internal Error!")}, id="67200000"),
        # "Try again later" and a 503 do not prove nothing ran (a gateway may answer 503 after the backend took it).
        pytest.param({"body": envelope(code=68300008)}, id="68300008"),
        pytest.param({"status": 503, "body": "<html>Unavailable</html>", "content_type": "text/html"}, id="503-html"),
        pytest.param({"status": 503, "body": envelope(code=0)}, id="503-patsnap-json"),
        pytest.param({"status": 302, "headers": {"Location": "https://maintenance.example/"}}, id="302-maintenance"),
        pytest.param({"body": envelope(code=0).replace("true", "false")}, id="codeless-failure"),
    ],
)
def test_create_that_patsnap_may_have_run_says_so_and_is_not_resent(
    oauth_conn: str, sleeps: list[float], factory: Callable[[], Any], url: str, answer: dict[str, Any]
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(TOKEN_URL, json={"token": "tok-ambiguous", "expires_in": 1800})
        rsps.post(url, **answer)
        rsps.post(url, body=envelope({"job_id": "2"}))

        exc = expect_failure(lambda: factory().execute({}))

        assert isinstance(exc, AirflowFailException), f"{type(exc).__name__}: {exc}"
        assert _posts(rsps, url) == 1  # never a silent duplicate
        assert_says_job_may_exist(str(exc))


# --------------------------------------------------------------------------- surely not run: replayed, one job


@pytest.mark.parametrize(("factory", "url"), CREATES)
@pytest.mark.parametrize(
    "rejection",
    [
        pytest.param({"body": requests.ConnectTimeout("connect timed out")}, id="connect-timeout"),
        pytest.param({"status": 429, "body": envelope(code=67200002)}, id="429"),
        pytest.param({"status": 408, "body": "<html>Request timeout</html>", "content_type": "text/html"}, id="408"),
        pytest.param({"status": 404, "body": "<html>Not found</html>", "content_type": "text/html"}, id="gateway-404"),
        pytest.param({"body": envelope(code=67200003)}, id="token-expired"),
    ],
)
def test_create_rejected_before_work_is_replayed_into_one_job(
    oauth_conn: str, sleeps: list[float], factory: Callable[[], Any], url: str, rejection: dict[str, Any]
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(TOKEN_URL, json={"token": "tok-1", "expires_in": 1800})
        rsps.post(url, **rejection)
        rsps.post(url, body=envelope({"job_id": 1579434053399035905}))
        rsps.post(url, body=envelope({"job_id": "9999"}))  # a third POST would be a duplicate

        assert factory().execute({}) == "1579434053399035905"
        assert _posts(rsps, url) == 2


@pytest.mark.parametrize(
    "token_failure",
    [
        pytest.param({"status": 500, "body": "<html>oops</html>", "content_type": "text/html"}, id="500-html"),
        pytest.param({"status": 503, "json": {"status": False, "error_code": 0}}, id="503-json"),
        pytest.param({"body": envelope(code=68300005)}, id="68300005"),
    ],
)
def test_a_failed_token_fetch_is_not_mistaken_for_an_ambiguous_create(
    oauth_conn: str, sleeps: list[float], token_failure: dict[str, Any]
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(TOKEN_URL, **token_failure)
        rsps.post(TOKEN_URL, json={"token": "tok-2", "expires_in": 1800})
        rsps.post(R001_CREATE, body=envelope({"job_id": "42"}))

        result = _enterprise().execute({})

        assert result == "42"
        assert _posts(rsps, R001_CREATE) == 1


# --------------------------------------------------------------------------- against the emulator, for real


@pytest.mark.parametrize(
    ("factory", "endpoint"),
    [
        pytest.param(_enterprise, R001_EMU_CREATE, id="enterprise"),
        pytest.param(_patent_value, R002_EMU_CREATE, id="pv"),
    ],
)
@pytest.mark.parametrize("auth", ["oauth", "api_key"])
def test_slow_create_times_out_once_and_the_job_exists_server_side(
    emulator: PatsnapEmulator,
    monkeypatch: pytest.MonkeyPatch,
    factory: Callable[[], Any],
    endpoint: str,
    auth: str,
) -> None:
    """PatSnap answers after 1.5 s, the connection gives up after 0.5 s: the job is created anyway."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_PATSNAP_DEFAULT",
        emulator.connection_json(auth=auth, qps=0, timeout=0.5, retry_wait_min=0.01, retry_wait_max=0.05),
    )
    if auth == "oauth":
        assert PatsnapHook().test_connection()[0]  # token cached while the emulator is still fast
    emulator.latency = 1.5

    started = time.monotonic()
    exc = expect_failure(lambda: factory().execute({}))
    elapsed = time.monotonic() - started

    assert isinstance(exc, AirflowFailException), f"{type(exc).__name__}: {exc}"
    assert_says_job_may_exist(str(exc))
    assert "Before re-running, check PatSnap's record of calls" in str(exc)
    assert elapsed < 1.45, elapsed  # gave up at the read timeout, did not wait for (or retry) the answer
    assert emulator.stats["calls"].get(endpoint) == 1

    # The server finishes the request the client abandoned: the job exists, exactly once.
    deadline = time.monotonic() + 5
    while emulator.stats["creates"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    stats = emulator.stats
    assert stats["creates"] == 1, stats
    assert stats["calls"].get(endpoint) == 1, stats
    assert len(emulator.job_ids()) == 1
