"""hooks/patsnap.py at the HTTP edge, with `responses`: the hook's public surface (auth, request
shapes, token refresh, retries as a caller sees them, P037 batching, input checks, test_connection).

What each answer means is tested in test_envelope.py, the retry policy itself in test_retry.py, the
call sequence without HTTP in test_core.py, and the transports in test_drivers.py.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NameResolutionError

from airflow_provider_patsnap.errors import (
    ERROR_CODES,
    ErrorClass,
    Outcome,
    PatsnapAmbiguousCreateError,
    PatsnapAuthError,
    PatsnapError,
    PatsnapInputError,
    PatsnapPermanentError,
    PatsnapRateLimitError,
    PatsnapRetryableError,
    classify_code,
)
from airflow_provider_patsnap.hooks._token_cache import TOKEN_CACHE
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.models import JobStatus
from tests.support import (
    API_KEY,
    CLIENT_ID,
    CLIENT_SECRET,
    P037,
    R001_CREATE,
    R001_CREATE_NO_LOGO,
    R001_STATUS,
    R002_CREATE_NO_LOGO,
    R002_STATUS,
    TOKEN_URL,
    add_token,
    calls_to,
    conn_json,
    envelope,
    query,
)

BIG_JOB_ID = 1579434053399035905  # > 2**53 and not representable as a double
_DNS = NameResolutionError("patsnap.test", None, OSError("Name or service not known"))  # type: ignore[arg-type]
DNS_FAILURE = requests.ConnectionError(MaxRetryError(None, R001_CREATE, reason=_DNS))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- authentication


@responses.activate
def test_oauth_token_is_fetched_once_and_sent_with_apikey(oauth_conn: str) -> None:
    add_token(responses.mock, "tok-A")
    responses.post(R001_CREATE, body=envelope({"job_id": "1"}))
    responses.get(R001_STATUS, body=envelope({"job_id": "1", "job_status": 0, "queue_num": 3}))

    PatsnapHook().create_enterprise_report(company_name="ACME")
    PatsnapHook().get_report_job("enterprise", "1")  # a second hook in the same process

    token_calls = calls_to(responses.mock, TOKEN_URL)
    assert len(token_calls) == 1
    basic = base64.b64decode(token_calls[0].request.headers["Authorization"].split()[1]).decode()
    assert basic == f"{CLIENT_ID}:{CLIENT_SECRET}"
    assert parse_qs(token_calls[0].request.body) == {"grant_type": ["client_credentials"]}
    for call in calls_to(responses.mock, R001_CREATE) + calls_to(responses.mock, R001_STATUS):
        assert call.request.headers["Authorization"] == "Bearer tok-A"
        assert query(call)["apikey"] == [CLIENT_ID]


@responses.activate
def test_token_refreshed_before_expiry(oauth_conn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_patsnap.hooks import _token_cache

    now = [1000.0]
    monkeypatch.setattr(_token_cache.time, "monotonic", lambda: now[0])
    from airflow_provider_patsnap.hooks import _core as hook_module

    monkeypatch.setattr(hook_module.time, "monotonic", lambda: now[0])
    add_token(responses.mock, "tok-1", expires_in=1800)
    add_token(responses.mock, "tok-2", expires_in=1800)
    responses.get(R001_STATUS, body=envelope({"job_id": "1", "job_status": 1}))
    hook = PatsnapHook()

    hook.get_report_job("enterprise", "1")
    now[0] += 1700  # 100 s left: still outside the 60 s lead
    hook.get_report_job("enterprise", "1")
    now[0] += 50  # 50 s left: inside the lead, refresh before PatSnap would refuse it
    hook.get_report_job("enterprise", "1")

    sent = [c.request.headers["Authorization"] for c in calls_to(responses.mock, R001_STATUS)]
    assert sent == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    assert len(calls_to(responses.mock, TOKEN_URL)) == 2


@pytest.mark.parametrize("code", [67200003, 67200009])
@responses.activate
def test_token_error_refreshes_once_and_replays(oauth_conn: str, code: int) -> None:
    add_token(responses.mock, "stale")
    add_token(responses.mock, "fresh")
    responses.get(R001_STATUS, body=envelope(code=code, msg="Access token expired"))
    responses.get(R001_STATUS, body=envelope({"job_id": "7", "job_status": 2, "download_url": "https://cdn/x.pdf"}))

    job = PatsnapHook().get_report_job("enterprise", "7")

    assert job.status is JobStatus.SUCCEEDED
    sent = [c.request.headers["Authorization"] for c in calls_to(responses.mock, R001_STATUS)]
    assert sent == ["Bearer stale", "Bearer fresh"]


@responses.activate
def test_fresh_tokens_refused_again_and_again_end_in_a_retryable_error_without_a_loop(
    oauth_conn: str, sleeps: list[float]
) -> None:
    for name in "abcd":
        add_token(responses.mock, name)
    responses.get(R001_STATUS, body=envelope(code=67200003))

    with pytest.raises(PatsnapRetryableError, match="67200003") as info:
        PatsnapHook(max_retries=0).get_report_job("enterprise", "7")

    assert len(calls_to(responses.mock, R001_STATUS)) == 4
    assert len(calls_to(responses.mock, TOKEN_URL)) == 4
    assert "one active token per client" in str(info.value) and len(sleeps) == 2


@responses.activate
def test_bad_client_credentials_fail_at_the_token_endpoint(oauth_conn: str) -> None:
    responses.post(TOKEN_URL, status=401, body=envelope(code=67200003, msg="The key and secret are wrong"))

    with pytest.raises(PatsnapAuthError, match="client id and client secret"):
        PatsnapHook().get_report_job("enterprise", "7")
    assert len(calls_to(responses.mock, R001_STATUS)) == 0


@responses.activate
def test_api_key_mode_uses_bearer_key_and_no_token_endpoint(api_key_conn: str) -> None:
    responses.get(R002_STATUS, body=envelope({"job_id": "5", "job_status": 0, "queue_num": 1}))

    PatsnapHook().get_report_job("patent_value", "5")

    (call,) = responses.calls
    assert call.request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert "apikey" not in query(call)  # kept out of URLs unless asked for


@responses.activate
def test_api_key_in_query_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PATSNAP_DEFAULT", conn_json(api_key=API_KEY, qps=0, api_key_in_query=True))
    responses.get(R002_STATUS, body=envelope({"job_id": "5", "job_status": 0}))
    PatsnapHook().get_report_job("patent_value", "5")
    assert query(responses.calls[0])["apikey"] == [API_KEY]


@responses.activate
def test_api_key_refused_is_permanent_and_not_replayed(api_key_conn: str) -> None:
    responses.get(R002_STATUS, body=envelope(code=67200003))
    with pytest.raises(PatsnapAuthError, match="API key"):
        PatsnapHook().get_report_job("patent_value", "5")
    assert len(responses.calls) == 1


# --------------------------------------------------------------------------- request shapes and job ids


@responses.activate
def test_big_job_id_keeps_every_digit_both_ways(oauth_conn: str) -> None:
    add_token(responses.mock)
    raw = f'{{"data": {{"job_id": {BIG_JOB_ID}}}, "status": true, "error_code": 0}}'
    responses.post(R002_CREATE_NO_LOGO, body=raw)
    responses.get(
        R002_STATUS,
        body=f'{{"data": {{"job_id": {BIG_JOB_ID}, "job_status": 0}}, "status": true, "error_code": 0}}',
    )
    hook = PatsnapHook()

    job_id = hook.create_patent_value_report(patent_number="CN108977442B")
    job = hook.get_report_job("patent_value", job_id)

    assert job_id == "1579434053399035905"
    assert job.job_id == "1579434053399035905"
    assert query(calls_to(responses.mock, R002_STATUS)[0])["job_id"] == ["1579434053399035905"]
    create_body = json.loads(calls_to(responses.mock, R002_CREATE_NO_LOGO)[0].request.body)
    assert create_body == {"report_type": "pdf", "patent_number": "CN108977442B"}


@responses.activate
def test_enterprise_create_sends_the_checked_identifiers(api_key_conn: str) -> None:
    responses.post(R001_CREATE_NO_LOGO, body=envelope({"job_id": "12"}))

    job_id = PatsnapHook().create_enterprise_report(
        report_type=" WORD ", company_name="  ACME Ltd ", credit_code="91350100m000100y43", org_number=" ", logo=False
    )

    assert job_id == "12"
    (call,) = responses.calls
    assert call.request.method == "POST" and call.request.headers["Content-Type"] == "application/json"
    assert json.loads(call.request.body) == {
        "report_type": "word",
        "company_name": "ACME Ltd",
        "credit_code": "91350100M000100Y43",
    }


@pytest.mark.parametrize("data", [{"job_id": None}, {"job_id": ""}, {"job_id": True}, {}, None, ["1"]])
@responses.activate
def test_a_create_answer_without_a_usable_job_id_is_ambiguous(api_key_conn: str, data: object) -> None:
    responses.post(R001_CREATE, body=envelope(data))
    with pytest.raises(PatsnapAmbiguousCreateError, match="sent no usable job_id") as info:
        PatsnapHook().create_enterprise_report(company_name="ACME")
    assert "before re-running" in str(info.value).lower()
    assert len(responses.calls) == 1


@responses.activate
def test_a_floating_point_job_id_from_patsnap_is_ambiguous_not_rounded(api_key_conn: str) -> None:
    responses.post(R001_CREATE, body='{"data": {"job_id": 1.579434053399036e18}, "status": true, "error_code": 0}')
    with pytest.raises(PatsnapAmbiguousCreateError, match="no usable job_id"):
        PatsnapHook().create_enterprise_report(company_name="ACME")


@responses.activate
def test_the_job_status_call_returns_the_job(api_key_conn: str) -> None:
    responses.get(R002_STATUS, body=envelope({"job_id": "5", "job_status": 1, "queue_num": 2}))
    job = PatsnapHook().get_report_job(" Patent_Value ", 5)
    assert (job.job_id, job.status, job.queue_num) == ("5", JobStatus.EXPORTING, 2)
    assert query(responses.calls[0])["job_id"] == ["5"]


# --------------------------------------------------------------------------- retries, as a caller sees them


@responses.activate
def test_transient_error_is_retried_until_success(oauth_conn: str, sleeps: list[float]) -> None:
    add_token(responses.mock)
    responses.get(R001_STATUS, body=envelope(code=68300008))
    responses.get(R001_STATUS, status=503, body="<html><h1>503</h1></html>", content_type="text/html")
    responses.get(R001_STATUS, body=envelope({"job_id": "9", "job_status": 1}))

    job = PatsnapHook().get_report_job("enterprise", "9")

    assert job.status is JobStatus.EXPORTING
    assert len(calls_to(responses.mock, R001_STATUS)) == 3
    assert len(sleeps) == 2


@responses.activate
def test_the_hooks_max_retries_overrides_the_connections(oauth_conn: str, sleeps: list[float]) -> None:
    add_token(responses.mock)
    responses.get(R001_STATUS, body=envelope(code=68300008))

    with pytest.raises(PatsnapRetryableError, match="68300008"):
        PatsnapHook(max_retries=2).get_report_job("enterprise", "9")
    assert len(calls_to(responses.mock, R001_STATUS)) == 3  # first try + 2 retries


@responses.activate
def test_non_json_success_body_is_a_transient_read_error(oauth_conn: str, sleeps: list[float]) -> None:
    add_token(responses.mock)
    responses.get(R001_STATUS, body="<html>maintenance</html>", content_type="text/html")
    with pytest.raises(PatsnapRetryableError, match="HTML page"):
        PatsnapHook().get_report_job("enterprise", "1")
    assert len(calls_to(responses.mock, R001_STATUS)) == 4  # a WAF or maintenance page passes: retried


@pytest.mark.parametrize(
    ("first", "retried"),
    [
        ({"body": envelope(code=67200002), "status": 429}, True),  # rate limited: not run
        ({"body": envelope(code=68300008)}, False),  # "try again later" does not prove it did nothing
        ({"body": "<html>unavailable</html>", "status": 503, "content_type": "text/html"}, False),
        ({"body": envelope(code=0), "status": 503}, False),  # a gateway may answer 503 after the backend took it
        ({"body": "<html>timeout</html>", "status": 408, "content_type": "text/html"}, True),
        ({"body": DNS_FAILURE}, True),  # DNS failed: nothing was sent
        ({"body": "<html>bad gateway</html>", "status": 502, "content_type": "text/html"}, False),
        ({"body": "<html>gateway timeout</html>", "status": 504, "content_type": "text/html"}, False),
        ({"body": envelope(code=68300005)}, False),  # may have run
        ({"body": "<html>oops</html>", "status": 500, "content_type": "text/html"}, False),
        ({"body": "<html>WAF</html>", "status": 200, "content_type": "text/html"}, False),
        ({"body": envelope(code=68300099)}, False),  # unknown code: may have run
    ],
)
@responses.activate
def test_create_is_replayed_only_when_patsnap_did_not_run_it(
    oauth_conn: str, sleeps: list[float], first: dict, retried: bool
) -> None:
    add_token(responses.mock)
    responses.post(R001_CREATE, **first)
    responses.post(R001_CREATE, body=envelope({"job_id": BIG_JOB_ID}))

    hook = PatsnapHook()
    if retried:
        assert hook.create_enterprise_report(company_name="ACME") == str(BIG_JOB_ID)
        assert len(calls_to(responses.mock, R001_CREATE)) == 2
    else:
        with pytest.raises(PatsnapAmbiguousCreateError) as info:
            hook.create_enterprise_report(company_name="ACME")
        assert info.value.outcome is Outcome.MAY_HAVE_RUN
        assert "before re-running" in str(info.value).lower()
        assert len(calls_to(responses.mock, R001_CREATE)) == 1


@responses.activate
def test_create_read_timeout_is_ambiguous_and_not_replayed(oauth_conn: str, sleeps: list[float]) -> None:
    add_token(responses.mock)
    responses.post(R001_CREATE, body=requests.ReadTimeout("read timed out"))
    responses.post(R001_CREATE, body=envelope({"job_id": "2"}))

    with pytest.raises(PatsnapAmbiguousCreateError, match="may have been created"):
        PatsnapHook().create_enterprise_report(company_name="ACME")
    assert len(calls_to(responses.mock, R001_CREATE)) == 1


@responses.activate
def test_status_read_timeout_is_retried(oauth_conn: str, sleeps: list[float]) -> None:
    add_token(responses.mock)
    responses.get(R001_STATUS, body=requests.ReadTimeout("read timed out"))
    responses.get(R001_STATUS, body=envelope({"job_id": "2", "job_status": 0}))
    assert PatsnapHook().get_report_job("enterprise", "2").status is JobStatus.QUEUED


@responses.activate
def test_permanent_error_raises_at_once(oauth_conn: str, sleeps: list[float]) -> None:
    add_token(responses.mock)
    responses.post(R001_CREATE, body=envelope(code=67200005, msg="Insufficient balance, call failed!"))
    with pytest.raises(PatsnapPermanentError) as info:
        PatsnapHook().create_enterprise_report(company_name="ACME")
    text = str(info.value)
    assert "67200005" in text and "POST /innovation/company-report/task/create" in text
    assert "Insufficient balance" in text
    assert len(calls_to(responses.mock, R001_CREATE)) == 1
    assert sleeps == []


@pytest.mark.parametrize("code", [*sorted(ERROR_CODES), 68300009])  # and one undocumented code
@responses.activate
def test_every_error_code_maps_to_its_class(api_key_conn: str, sleeps: list[float], code: int) -> None:
    responses.get(R001_STATUS, body=envelope(code=code, msg="from PatSnap"))
    row = classify_code(code)
    with pytest.raises(PatsnapError) as info:
        PatsnapHook(max_retries=3).get_report_job("enterprise", "1")
    exc = info.value
    assert exc.code == code and "from PatSnap" in str(exc)
    calls = len(responses.calls)
    if row.error_class is ErrorClass.RETRY:
        assert isinstance(exc, PatsnapRetryableError) and calls == 4
    elif row.error_class is ErrorClass.RETRY_LIMITED or code == 67200007:  # a daily limit only pauses a read
        assert isinstance(exc, PatsnapRetryableError) and calls == 2
    else:  # permanent (unknown codes too), or a token error in API-key mode (nothing to refresh)
        assert isinstance(exc, PatsnapPermanentError) and calls == 1
    if code == 67200002:
        assert isinstance(exc, PatsnapRateLimitError)


@responses.activate
def test_download_does_not_multiply_status_retries(oauth_conn: str, sleeps: list[float], tmp_path: Path) -> None:
    add_token(responses.mock)
    responses.get(R001_STATUS, status=503, body="<html>down</html>", content_type="text/html")

    with pytest.raises(PatsnapRetryableError, match="HTTP 503"):
        PatsnapHook(max_retries=3).download_report("enterprise", "1", f"{tmp_path}/")
    assert len(calls_to(responses.mock, R001_STATUS)) == 4  # one policy's worth, not 4 x 4


# --------------------------------------------------------------------------- P037 batching


def _p037_callback(request: requests.PreparedRequest) -> tuple[int, dict, str]:
    params = parse_qs(urlsplit(request.url).query)
    numbers = params["patent_number"][0].split(",")
    data = [
        {
            "pn": n,
            "patent_id": f"id-{n}",
            "patsnap_legal_value": {"legal_status": "Granted", "has_reexam_invalid": "TRUE", "granted_no": "3"},
        }
        for n in numbers
        if not n.startswith("XX")
    ]
    return 200, {}, envelope(data)


@pytest.mark.parametrize(("count", "expected_requests"), [(1, 1), (100, 1), (101, 2), (250, 3)])
@responses.activate
def test_legal_indicators_batches_100_per_request(api_key_conn: str, count: int, expected_requests: int) -> None:
    responses.add_callback(responses.GET, P037, callback=_p037_callback)
    numbers = [f"CN{100000 + i}A" for i in range(count)]

    records = PatsnapHook().get_legal_indicators(patent_numbers=numbers + numbers[:5])  # duplicates asked once

    assert len(responses.calls) == expected_requests
    sent = [query(c)["patent_number"][0].split(",") for c in responses.calls]
    assert all(len(batch) <= 100 for batch in sent)
    assert sorted(n for batch in sent for n in batch) == sorted(numbers)
    assert [r["pn"] for r in records] == numbers  # input order kept
    assert records[0]["has_reexam_invalid"] is True and records[0]["granted_no"] == 3


@responses.activate
def test_legal_indicators_unknown_patents_are_absent(api_key_conn: str) -> None:
    responses.add_callback(responses.GET, P037, callback=_p037_callback)
    records = PatsnapHook().get_legal_indicators(patent_numbers=["CN1A", "XX404"])
    assert [r["pn"] for r in records] == ["CN1A"]


@pytest.mark.parametrize("data", [{"pn": "CN1A"}, "CN1A"])
@responses.activate
def test_legal_indicators_data_that_is_not_a_list_is_a_permanent_error(api_key_conn: str, data: object) -> None:
    responses.get(P037, body=envelope(data))
    with pytest.raises(PatsnapPermanentError, match="expected a list of indicator records"):
        PatsnapHook().get_legal_indicators(patent_numbers=["CN1A"])


@responses.activate
def test_legal_indicators_no_data_is_no_records(api_key_conn: str) -> None:
    responses.get(P037, body=envelope(None))
    assert PatsnapHook().get_legal_indicators(patent_ids="id-1") == []
    assert query(responses.calls[0]) == {"patent_id": ["id-1"]}


# --------------------------------------------------------------------------- input checked before any call
# (the checks themselves, case by case, are in test_validation.py, test_models.py and test_storage.py)


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda h, _: h.create_enterprise_report(report_type="xlsx", company_name="A"), "report_type"),
        (lambda h, _: h.create_enterprise_report(), "company_name"),
        (lambda h, _: h.create_enterprise_report(company_name="   "), "company_name"),
        (lambda h, _: h.create_enterprise_report(credit_code="91350100M000100Y44"), "credit_code"),
        (lambda h, _: h.create_enterprise_report(credit_code="9135010"), "credit_code"),
        (lambda h, _: h.create_enterprise_report(credit_code="91350100M000100YI3"), "credit_code"),
        (lambda h, _: h.create_enterprise_report(company_name="A", credit_code="91350100M000100Y44"), "credit_code"),
        (lambda h, _: h.create_patent_value_report(), "patent_number"),
        (lambda h, _: h.create_patent_value_report(patent_id="x", patent_number="CN1"), "patent_number"),
        (lambda h, _: h.create_patent_value_report(report_type="docx", patent_number="CN1"), "report_type"),
        (lambda h, _: h.get_report_job("bogus", "1"), "report_kind"),
        (lambda h, _: h.get_report_job("enterprise", 1.579434053399036e18), "job_id"),
        (lambda h, _: h.get_report_job("enterprise", " "), "job_id"),
        (lambda h, tmp: h.download_report("R001", "1", f"{tmp}/"), "report_kind"),
        (lambda h, tmp: h.download_report("enterprise", 1.5e18, f"{tmp}/"), "job_id"),
        (lambda h, _: h.download_report("enterprise", "1", "  "), "destination"),
        (lambda h, tmp: h.download_report("enterprise", "1", str(tmp)), "destination"),  # existing folder, no '/'
        (lambda h, _: h.get_legal_indicators(patent_numbers=["CN1A,CN2A"]), "patent_numbers"),
    ],
)
def test_bad_input_is_rejected_before_any_call(api_key_conn: str, tmp_path: Path, call, parameter: str) -> None:
    with responses.RequestsMock() as rsps, pytest.raises(PatsnapInputError) as info:
        call(PatsnapHook(), tmp_path)
    assert info.value.parameter == parameter
    assert str(info.value).startswith(f"{parameter}: ")
    assert len(rsps.calls) == 0


@pytest.mark.parametrize("value", [[], None, ["  "], "", ["CN1A", ""]])
def test_legal_indicators_reject_empty_input_before_any_call(api_key_conn: str, value: object) -> None:
    with responses.RequestsMock() as rsps, pytest.raises(PatsnapInputError, match="patent_numbers"):
        PatsnapHook().get_legal_indicators(patent_numbers=value)
    assert len(rsps.calls) == 0


# --------------------------------------------------------------------------- secrets


@responses.activate
def test_secrets_stay_out_of_logs_and_errors(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, sleeps: list[float]
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_PATSNAP_DEFAULT", conn_json(qps=0, max_retries=1, retry_wait_min=0.001, retry_wait_max=0.01)
    )
    secret_token = "tok-VERY-SECRET-0123456789"
    add_token(responses.mock, secret_token)
    responses.get(R001_STATUS, body=requests.ConnectionError("boom"))
    responses.post(R001_CREATE, body=envelope(code=67200005))
    caplog.set_level(logging.DEBUG)
    errors = []
    hook = PatsnapHook()
    for call in (
        lambda: hook.get_report_job("enterprise", "1"),
        lambda: hook.create_enterprise_report(company_name="A"),
    ):
        with pytest.raises(PatsnapError) as info:
            call()
        errors.append(f"{info.value!s} {info.value!r}")
    text = caplog.text + " ".join(errors) + repr(hook.config)
    for secret in (CLIENT_SECRET, secret_token):
        assert secret not in text


@responses.activate
def test_api_key_never_echoed_from_a_transport_error(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PATSNAP_DEFAULT", conn_json(api_key=API_KEY, qps=0, api_key_in_query=True))
    responses.get(R001_STATUS, body=requests.ConnectionError(f"failed for {R001_STATUS}?apikey={API_KEY}"))
    with pytest.raises(PatsnapError) as info:
        PatsnapHook(max_retries=0).get_report_job("enterprise", "1")
    assert API_KEY not in str(info.value) and API_KEY not in repr(info.value)


# --------------------------------------------------------------------------- test_connection


@responses.activate
def test_test_connection_reports_success_and_failure(oauth_conn: str) -> None:
    add_token(responses.mock, "tok")
    ok, message = PatsnapHook().test_connection()
    assert ok and CLIENT_ID in message
    TOKEN_CACHE.clear()
    responses.replace(responses.POST, TOKEN_URL, status=401, body=envelope(code=67200003))
    ok, message = PatsnapHook().test_connection()
    assert not ok and "67200003" in message and CLIENT_SECRET not in message


@responses.activate
def test_test_connection_api_key_mode_accepts_invalid_parameter(api_key_conn: str) -> None:
    responses.get(R001_STATUS, body=envelope(code=68300004))
    assert PatsnapHook().test_connection()[0] is True
    responses.replace(responses.GET, R001_STATUS, body=envelope(code=67200202))
    assert PatsnapHook().test_connection()[0] is False


def test_test_connection_reports_a_bad_connection_instead_of_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PATSNAP_DEFAULT", conn_json("http://connect.patsnap.com"))
    with responses.RequestsMock() as rsps:
        ok, message = PatsnapHook().test_connection()
        assert len(rsps.calls) == 0
    assert not ok and message.startswith("host: ")
