"""Permanent PatSnap errors fail the task at once: one call, no backoff, no Airflow retry.

Balance, quota, permission, parameter and account errors cannot be fixed by trying again, and on a
paid API trying again costs money, so every operator (and the sensor) must turn them into
``AirflowFailException`` carrying PatSnap's code and message, after exactly one request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import responses

from airflow_provider_patsnap.errors import PatsnapRetryableError
from airflow_provider_patsnap.operators.indicators import PatsnapLegalIndicatorsOperator
from airflow_provider_patsnap.operators.reports import (
    PatsnapCreateEnterpriseReportOperator,
    PatsnapCreatePatentValueReportOperator,
    PatsnapDownloadReportOperator,
)
from airflow_provider_patsnap.sensors.report_job import PatsnapReportJobSensor
from airflow_provider_patsnap.version_compat import AirflowFailException
from tests.support import (
    FAKE_HOST,
    P037,
    R001_CREATE,
    R001_STATUS,
    R002_CREATE_NO_LOGO,
    R002_STATUS,
    TOKEN_URL,
    expect_failure,
    files_under,
)

R002_CREATE = R002_CREATE_NO_LOGO

# (code, PatSnap's message as it would send it)
PERMANENT_CODES = [
    pytest.param(67200005, "Insufficient balance, call failed!", id="67200005-balance"),
    pytest.param(67200004, "No permission or the API package quota is used up!", id="67200004-quota-permission"),
    pytest.param(67200001, "API call exceeds the total limit set by the platform!", id="67200001-total-limit"),
    pytest.param(67200006, "This client has expired!", id="67200006-client-expired"),
    pytest.param(68300004, "Invalid parameter!", id="68300004-invalid-parameter"),
    pytest.param(68300007, "Bad request!", id="68300007-bad-request"),
]


def _create_enterprise(tmp: Path) -> Any:
    return PatsnapCreateEnterpriseReportOperator(task_id="create", company_name="Example Robotics Ltd")


def _create_patent_value(tmp: Path) -> Any:
    return PatsnapCreatePatentValueReportOperator(task_id="create", patent_number="CN108977442B")


def _download(tmp: Path) -> Any:
    return PatsnapDownloadReportOperator(
        task_id="download", job_id="1579434053399035905", report_kind="enterprise", destination=f"{tmp}/out/"
    )


def _sensor(tmp: Path) -> Any:
    return PatsnapReportJobSensor(
        task_id="wait", job_id="1579434053399035905", report_kind="patent_value", deferrable=False
    )


def _indicators(tmp: Path) -> Any:
    return PatsnapLegalIndicatorsOperator(task_id="p037", patent_numbers=["CN108977442B", "US9876543B2"])


# (operator factory, method, endpoint that answers, how the task is driven)
OPERATORS = [
    pytest.param(_create_enterprise, "POST", R001_CREATE, "execute", id="create-enterprise"),
    pytest.param(_create_patent_value, "POST", R002_CREATE, "execute", id="create-patent-value"),
    pytest.param(_download, "GET", R001_STATUS, "execute", id="download"),
    pytest.param(_sensor, "GET", R002_STATUS, "poke", id="sensor-poke"),
    pytest.param(_indicators, "GET", P037, "execute", id="legal-indicators"),
]


def _calls_to(rsps: responses.RequestsMock, url: str) -> int:
    return len([c for c in rsps.calls if str(c.request.url).split("?")[0] == url])


def _drive(operator: Any, how: str) -> Callable[[], Any]:
    return (lambda: operator.poke({})) if how == "poke" else (lambda: operator.execute({}))


@pytest.mark.parametrize(("factory", "method", "url", "how"), OPERATORS)
@pytest.mark.parametrize(("code", "message"), PERMANENT_CODES)
def test_permanent_error_code_fails_the_task_at_once(
    oauth_conn: str,
    sleeps: list[float],
    tmp_path: Path,
    factory: Callable[[Path], Any],
    method: str,
    url: str,
    how: str,
    code: int,
    message: str,
) -> None:
    body = {"status": False, "error_code": code, "error_msg": message}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(TOKEN_URL, json={"token": "tok-permanent", "expires_in": 1800})
        rsps.add(method, url, json=body)

        exc = expect_failure(_drive(factory(tmp_path), how))

        assert isinstance(exc, AirflowFailException), f"{type(exc).__name__}: {exc}"  # no Airflow retry
        text = str(exc)
        assert str(code) in text and message in text, text
        assert f"{method} {url.removeprefix(FAKE_HOST)}" in text, text  # names the endpoint
        assert _calls_to(rsps, url) == 1  # exactly one call: not retried by the hook
        assert _calls_to(rsps, TOKEN_URL) == 1  # and not "fixed" by a token refresh
        assert sleeps == []  # no backoff either
    assert files_under(tmp_path) == []


BILLABLE = [p for p in OPERATORS if p.id in ("create-enterprise", "create-patent-value", "legal-indicators")]
READS = [p for p in OPERATORS if p.id in ("download", "sensor-poke")]


@pytest.mark.parametrize(("factory", "method", "url", "how"), BILLABLE)
def test_a_daily_limit_fails_what_would_buy_at_once(
    oauth_conn: str,
    sleeps: list[float],
    tmp_path: Path,
    factory: Callable[[Path], Any],
    method: str,
    url: str,
    how: str,
) -> None:
    body = {"status": False, "error_code": 67200007, "error_msg": "Exceeded the daily call limit!"}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(TOKEN_URL, json={"token": "tok-permanent", "expires_in": 1800})
        rsps.add(method, url, json=body)
        exc = expect_failure(_drive(factory(tmp_path), how))
        assert isinstance(exc, AirflowFailException) and "67200007" in str(exc), f"{type(exc).__name__}: {exc}"
        assert _calls_to(rsps, url) == 1


@pytest.mark.parametrize(("factory", "method", "url", "how"), READS)
@pytest.mark.parametrize(
    "response",
    [
        pytest.param({"json": {"status": False, "error_code": 67200007, "error_msg": "daily limit"}}, id="67200007"),
        pytest.param({"status": 403, "body": "<html>403 Forbidden</html>", "content_type": "text/html"}, id="403-html"),
        pytest.param({"status": 302, "headers": {"Location": "https://maintenance.example/"}}, id="302"),
        pytest.param({"json": {"status": False, "error_code": 0}}, id="codeless-failure"),
        pytest.param({"json": {"status": False, "error_code": 68300099}}, id="unknown-code"),
    ],
)
def test_a_read_that_only_looks_wrong_is_retried_a_bounded_number_of_times_then_left_to_airflow(
    api_key_conn: str,
    sleeps: list[float],
    tmp_path: Path,
    factory: Callable[[Path], Any],
    method: str,
    url: str,
    how: str,
    response: dict[str, Any],
) -> None:
    """A status read that meets a gateway page, a daily limit or an unknown code: permanent only when
    PatSnap's own code says so."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(method, url, **response)
        if how == "poke":  # the sensor keeps waiting
            assert factory(tmp_path).poke({}) is False
        else:  # an ordinary failure: Airflow's retries apply
            exc = expect_failure(_drive(factory(tmp_path), how))
            assert isinstance(exc, PatsnapRetryableError), f"{type(exc).__name__}: {exc}"
        assert _calls_to(rsps, url) == 2  # one more try within the hook, no more
    assert files_under(tmp_path) == []


@pytest.mark.parametrize(("factory", "method", "url", "how"), OPERATORS)
@pytest.mark.parametrize(
    "response",
    [
        pytest.param({"status": 403, "json": {"status": False, "error_code": 67200004, "error_msg": "No permission"}}),
    ],
    ids=["403-envelope"],
)
def test_permission_denied_fails_the_task_at_once(
    api_key_conn: str,
    sleeps: list[float],
    tmp_path: Path,
    factory: Callable[[Path], Any],
    method: str,
    url: str,
    how: str,
    response: dict[str, Any],
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(method, url, **response)

        exc = expect_failure(_drive(factory(tmp_path), how))

        assert isinstance(exc, AirflowFailException), f"{type(exc).__name__}: {exc}"
        text = str(exc)
        assert "HTTP 403" in text, text
        if "json" in response:
            assert "67200004" in text and "No permission" in text, text
        assert len(rsps.calls) == 1
        assert sleeps == []
    assert files_under(tmp_path) == []


def test_permanent_error_in_one_batch_of_many_fails_the_indicators_task(api_key_conn: str, sleeps: list[float]) -> None:
    """250 patents = 3 batches; a balance error on any of them fails the task without retrying it."""
    numbers = [f"CN{1000000 + i}A" for i in range(250)]

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        if "CN1000100A" in str(request.url):  # the second batch
            return 200, {}, json.dumps({"status": False, "error_code": 67200005, "error_msg": "Insufficient balance"})
        return 200, {}, json.dumps({"status": True, "error_code": 0, "data": []})

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.GET, P037, callback=answer)
        operator = PatsnapLegalIndicatorsOperator(task_id="p037", patent_numbers=numbers)
        exc = expect_failure(lambda: operator.execute({}))
        assert isinstance(exc, AirflowFailException) and "67200005" in str(exc)
        assert len(rsps.calls) <= 3  # each batch asked at most once
        assert sum("CN1000100A" in str(c.request.url) for c in rsps.calls) == 1
    assert sleeps == []
