"""models.py: report kinds, job states, exact job ids, ReportJob from PatSnap's answer, P037 records."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_patsnap.errors import (
    PatsnapInputError,
    PatsnapJobFailedError,
    PatsnapResponseError,
    PatsnapRetryableError,
)
from airflow_provider_patsnap.models import (
    FAILED_STATES,
    RUNNING_STATES,
    SUCCESS_STATES,
    TERMINAL_STATES,
    JobStatus,
    ReportJob,
    ReportKind,
    flatten_legal_indicator,
    normalize_job_id,
)

BIG_JOB_ID = 1579434053399035905  # > 2**53: a double would round it
ENDPOINT = "GET /innovation/company-report/job_id/status"
SIGNED = "https://cdn.patsnap.test/tffi-export/Report.pdf?sign=q-signature%3Dsecret-signature"


def job_from(data: Any, kind: ReportKind = ReportKind.ENTERPRISE, requested: str = "7") -> ReportJob:
    return ReportJob.from_api(data, kind, requested, ENDPOINT)


# --------------------------------------------------------------------------- ReportKind


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("enterprise", ReportKind.ENTERPRISE),
        (" Enterprise ", ReportKind.ENTERPRISE),
        ("PATENT_VALUE", ReportKind.PATENT_VALUE),
        (ReportKind.PATENT_VALUE, ReportKind.PATENT_VALUE),
    ],
)
def test_report_kind_parse(value: Any, kind: ReportKind) -> None:
    assert ReportKind.parse(value) is kind


@pytest.mark.parametrize("value", ["R001", "bogus", "", None, "{{ params.kind }}"])
def test_report_kind_parse_refuses_unknown_kinds_listing_the_choices(value: Any) -> None:
    with pytest.raises(PatsnapInputError) as info:
        ReportKind.parse(value)
    assert info.value.parameter == "report_kind"
    assert "'enterprise'" in str(info.value) and "'patent_value'" in str(info.value)


def test_report_kind_parse_names_the_callers_parameter() -> None:
    with pytest.raises(PatsnapInputError) as info:
        ReportKind.parse("x", parameter="kind")
    assert info.value.parameter == "kind"


def test_report_kind_endpoints_and_codes() -> None:
    r001, r002 = ReportKind.ENTERPRISE, ReportKind.PATENT_VALUE
    assert (r001.code, r002.code) == ("R001", "R002")
    assert r001.create_path(logo=True) == "/innovation/company-report/task/create"
    assert r001.create_path(logo=False) == "/innovation/company-report/task/create-no-logo"
    assert r001.status_path == "/innovation/company-report/job_id/status"
    assert r002.create_path(logo=True) == "/patent-valuation-data/patent-report/task/create"
    assert r002.create_path(logo=False) == "/patent-valuation-data/patent-report/task/create-no-logo"
    assert r002.status_path == "/patent-valuation-data/patent-report/job_id/status"


# --------------------------------------------------------------------------- JobStatus


def test_job_status_sets_partition_the_states() -> None:
    assert {JobStatus.QUEUED, JobStatus.EXPORTING} == RUNNING_STATES
    assert {JobStatus.SUCCEEDED} == SUCCESS_STATES and {JobStatus.FAILED} == FAILED_STATES
    assert {JobStatus.SUCCEEDED, JobStatus.FAILED} == TERMINAL_STATES
    assert RUNNING_STATES.isdisjoint(TERMINAL_STATES) and set(JobStatus) == RUNNING_STATES | TERMINAL_STATES
    assert [s.is_terminal for s in JobStatus] == [False, False, True, True]
    assert [int(s) for s in JobStatus] == [0, 1, 2, 3]  # PatSnap's job_status values


# --------------------------------------------------------------------------- job ids


@pytest.mark.parametrize(
    ("value", "expected"),
    [(BIG_JOB_ID, "1579434053399035905"), ("1579434053399035905", "1579434053399035905"), (" 42 ", "42"), (0, "0")],
)
def test_normalize_job_id_keeps_every_digit(value: Any, expected: str) -> None:
    assert normalize_job_id(value) == expected


@pytest.mark.parametrize("value", [1.579434053399036e18, 42.0, Decimal("1579434053399035905"), Decimal("1.5")])
def test_normalize_job_id_refuses_floating_point_numbers(value: Any) -> None:
    with pytest.raises(PatsnapInputError, match="floating-point") as info:
        normalize_job_id(value)
    assert info.value.parameter == "job_id"


@pytest.mark.parametrize("value", [None, True, False, "", "   "])
def test_normalize_job_id_refuses_missing_ids(value: Any) -> None:
    with pytest.raises(PatsnapInputError) as info:
        normalize_job_id(value, parameter="task_job_id")
    assert info.value.parameter == "task_job_id"


# --------------------------------------------------------------------------- ReportJob.from_api


def test_from_api_reads_a_running_job() -> None:
    job = job_from({"job_id": BIG_JOB_ID, "job_status": 0, "queue_num": 3}, requested=str(BIG_JOB_ID))
    assert job == ReportJob(str(BIG_JOB_ID), ReportKind.ENTERPRISE, JobStatus.QUEUED, queue_num=3)
    assert not job.is_terminal and job.is_done() is False
    assert job.describe() == f"R001 job {BIG_JOB_ID}: queued, queue position 3"


def test_from_api_accepts_status_and_queue_as_strings() -> None:
    job = job_from({"job_id": "7", "job_status": "1", "queue_num": "12"})
    assert job.status is JobStatus.EXPORTING and job.queue_num == 12


@pytest.mark.parametrize("queue", [None, "", -1, "soon", True, 2.5])
def test_from_api_drops_an_unusable_queue_position(queue: Any) -> None:
    assert job_from({"job_status": 0, "queue_num": queue}).queue_num is None


def test_from_api_falls_back_to_the_requested_id() -> None:
    assert job_from({"job_status": 1}, requested="99").job_id == "99"


@pytest.mark.parametrize("status", [9, -1, None, "done", "2.5"])
def test_from_api_unknown_status_is_a_response_error(status: Any) -> None:
    with pytest.raises(PatsnapResponseError, match=f"unknown job_status {status!r} for job 7") as info:
        job_from({"job_id": "7", "job_status": status})
    assert info.value.endpoint == ENDPOINT


@pytest.mark.parametrize("data", [None, [], "queued", 2])
def test_from_api_without_a_data_object_is_a_response_error(data: Any) -> None:
    with pytest.raises(PatsnapResponseError, match="no 'data' object"):
        job_from(data)


@pytest.mark.parametrize(
    "echo", [Decimal("1.579434053399036E+18"), 1579434053399036000, "1579434053399036000", None, True]
)
def test_the_job_id_asked_for_is_kept_whatever_patsnap_echoes(echo: Any) -> None:
    data = {"job_status": 0} if echo is None else {"job_id": echo, "job_status": 0}
    job = ReportJob.from_api(data, ReportKind.ENTERPRISE, "1579434053399035904", "GET /status")
    assert job.job_id == "1579434053399035904"
    assert job.to_xcom()["job_id"] == "1579434053399035904"


@pytest.mark.parametrize("url", [None, "", 42, {"url": "https://cdn"}, ["https://cdn"]])
def test_succeeded_without_a_usable_download_url_looks_transient(url: Any) -> None:
    with pytest.raises(PatsnapRetryableError, match="succeeded but PatSnap sent no usable download_url"):
        job_from({"job_id": "7", "job_status": 2, "download_url": url})


def test_a_succeeded_job_keeps_its_link_but_never_shows_it() -> None:
    job = job_from({"job_id": "7", "job_status": 2, "download_url": SIGNED})

    assert job.download_url == SIGNED and job.is_terminal and job.is_done() is True
    shown = " ".join([repr(job), str(job), job.describe(), json.dumps(job.to_xcom())])
    assert "sign" not in shown and "cdn.patsnap.test" not in shown


def test_to_xcom_is_plain_json_without_the_link() -> None:
    job = job_from({"job_id": "7", "job_status": 2, "download_url": SIGNED, "queue_num": 0})
    assert job.to_xcom() == {
        "job_id": "7",
        "report_kind": "enterprise",
        "job_status": 2,
        "status": "succeeded",
        "queue_num": 0,
        "abnormal_cause": None,
    }
    assert json.loads(json.dumps(job.to_xcom())) == job.to_xcom()


def test_a_failed_job_raises_with_patsnaps_cause() -> None:
    job = job_from({"job_id": "7", "job_status": 3, "abnormal_cause": "server error, being repaired"})
    assert job.is_terminal
    with pytest.raises(PatsnapJobFailedError) as info:
        job.is_done()
    exc = info.value
    assert exc.job_id == "7" and exc.abnormal_cause == "server error, being repaired"
    assert "R001 job 7 failed" in str(exc) and "server error, being repaired" in str(exc)
    assert exc.endpoint == ENDPOINT
    assert job.to_xcom()["abnormal_cause"] == "server error, being repaired"


def test_a_failed_job_without_a_cause_says_so() -> None:
    job = job_from({"job_id": "7", "job_status": 3, "abnormal_cause": ""}, kind=ReportKind.PATENT_VALUE)
    assert job.abnormal_cause is None
    with pytest.raises(PatsnapJobFailedError, match="R002 job 7 failed on PatSnap's side: no cause given"):
        job.is_done()


# --------------------------------------------------------------------------- P037 records


def test_flatten_legal_indicator_types_every_field() -> None:
    record = flatten_legal_indicator(
        {
            "pn": "CN108977442B",
            "patent_id": "id-1",
            "patsnap_legal_value": {
                "legal_status": "Granted",
                "granted_no": "3",
                "litigation_no": 0,
                "patent_age_day": Decimal("1200"),
                "invalid_fail_no": "",
                "invalid_success_no": "n/a",
                "grant_waiting_day": None,
                "has_reexam_invalid": "TRUE",
                "litigation_country": ["CN", 1],
                "in_application_ratio": "0.25",
                "remaining_time_ratio": Decimal("0.5"),
                "avg_originality_index": "x",
            },
        }
    )
    assert record == {
        "pn": "CN108977442B",
        "patent_id": "id-1",
        "legal_status": "Granted",
        "granted_no": 3,
        "litigation_no": 0,
        "patent_age_day": 1200,
        "invalid_fail_no": None,
        "invalid_success_no": None,
        "grant_waiting_day": None,
        "has_reexam_invalid": True,
        "litigation_country": ["CN", "1"],
        "in_application_ratio": 0.25,
        "remaining_time_ratio": 0.5,
        "avg_originality_index": None,
    }
    assert type(record["remaining_time_ratio"]) is float  # JSON-serialisable, unlike Decimal
    json.dumps(record)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[(True, True), ("true", True), ("1", True), ("Y", True), (" yes ", True)],
        *[(False, False), ("FALSE", False), ("0", False), ("N", False), ("no", False)],
        *[(None, None), ("", None), ("maybe", None)],
    ],
)
def test_flatten_legal_indicator_reads_flags(raw: Any, expected: bool | None) -> None:
    flag = flatten_legal_indicator({"patsnap_legal_value": {"has_reexam_invalid": raw}})["has_reexam_invalid"]
    assert flag is expected


@pytest.mark.parametrize("item", [None, "CN1A", [], {"pn": "CN1A", "patsnap_legal_value": "withdrawn"}])
def test_flatten_legal_indicator_tolerates_missing_or_odd_shapes(item: Any) -> None:
    record = flatten_legal_indicator(item)
    assert record["legal_status"] is None and record["granted_no"] is None and record["litigation_country"] == []
    assert record["pn"] == (item["pn"] if isinstance(item, dict) else None)
