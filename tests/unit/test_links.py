"""links.py: the operator extra link to PatSnap's API reference."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_provider_patsnap.links import (
    DEVPORTAL,
    PatsnapApiDocsLink,
    PatsnapOutputLink,
    output_link,
    status_docs_path,
)
from airflow_provider_patsnap.models import ReportKind


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("enterprise", "/innovation/company-report/job_id/status"),
        (" Patent_Value ", "/patent-valuation-data/patent-report/job_id/status"),
        (ReportKind.PATENT_VALUE, "/patent-valuation-data/patent-report/job_id/status"),
    ],
)
def test_status_docs_path_of_a_report_kind(kind: object, path: str) -> None:
    assert status_docs_path(kind) == path


@pytest.mark.parametrize("kind", ["{{ params.kind }}", "bogus", "", None])
def test_status_docs_path_is_empty_while_unknown_or_unrendered(kind: object) -> None:
    assert status_docs_path(kind) == ""


def test_the_link_points_at_the_operators_endpoint() -> None:
    link = PatsnapApiDocsLink()
    assert link.name == "PatSnap API reference"
    operator = SimpleNamespace(api_docs_path="/innovation/company-report/task/create")
    assert link.get_link(operator, ti_key=None) == f"{DEVPORTAL}/innovation/company-report/task/create"
    assert DEVPORTAL.startswith("https://open.patsnap.com/")


@pytest.mark.parametrize("operator", [SimpleNamespace(api_docs_path=""), SimpleNamespace(api_docs_path=None), object()])
def test_without_an_endpoint_the_link_is_patsnaps_home(operator: object) -> None:
    assert PatsnapApiDocsLink().get_link(operator, ti_key=None) == "https://open.patsnap.com/"


def test_the_real_operators_link_to_their_endpoints() -> None:
    from airflow_provider_patsnap.operators.reports import (
        PatsnapCreateEnterpriseReportOperator,
        PatsnapDownloadReportOperator,
    )

    create = PatsnapCreateEnterpriseReportOperator(task_id="create", company_name="ACME", logo=False)
    download = PatsnapDownloadReportOperator(task_id="dl", job_id="1", report_kind="patent_value", destination="/x/")
    link = PatsnapApiDocsLink()
    assert link.get_link(create, ti_key=None) == f"{DEVPORTAL}/innovation/company-report/task/create-no-logo"
    assert link.get_link(download, ti_key=None) == f"{DEVPORTAL}/patent-valuation-data/patent-report/job_id/status"


@pytest.mark.parametrize(
    ("value", "link"),
    [
        (
            {"uri": "file:///archive/enterprise/2026-12-07/0/report.pdf"},
            "file:///archive/enterprise/2026-12-07/0/report.pdf",
        ),
        (
            {"uri": "s3://archive/patsnap/report.pdf", "job_id": "1579434053399035905"},
            "s3://archive/patsnap/report.pdf",
        ),
        ({"uri": "javascript:alert(document.cookie)"}, ""),  # not a place anything was written
        ({"uri": "https://user:pass@host/x.pdf"}, ""),  # Destination refuses http(s): never an output
        ({"uri": "s3://AKIA:secret@bucket/x.pdf"}, ""),  # credentials never shown
        ({"uri": "s3://bucket/x.pdf?X-Amz-Signature=abc"}, ""),  # nor a signed query
        ({"uri": "s3://bucket/x.pdf#frag"}, ""),
        ({"uri": "file://[::1/x"}, ""),  # not even a URL
        ({"uri": "file:///a\nb.pdf"}, ""),
        ({"uri": 7}, ""),
        ("1579434053399035905", ""),  # a create's job id: nothing written yet
        ([{"patent_number": "CN1"}], ""),  # indicator records in XCom
        (None, ""),
    ],
)
def test_the_output_link_is_the_uri_the_task_wrote(value: object, link: str) -> None:
    assert output_link(value) == link


def test_the_output_link_reads_the_task_instance_s_own_result() -> None:
    pulled: list[dict[str, object]] = []

    def xcom_pull(**kwargs: object) -> object:
        pulled.append(kwargs)
        return {"uri": "gs://lake/patsnap/patent_indicators.jsonl", "records": 3}

    ti = SimpleNamespace(task_id="legal", map_index=4, xcom_pull=xcom_pull)
    link = PatsnapOutputLink()
    assert link.name == "PatSnap output"
    assert link.get_link(object(), ti_key=ti) == "gs://lake/patsnap/patent_indicators.jsonl"
    assert pulled == [{"task_ids": "legal", "map_indexes": 4, "key": "return_value"}]


def test_the_output_link_prefers_what_the_operator_that_ran_wrote() -> None:
    def xcom_pull(**_: object) -> object:
        raise AssertionError("no XCom read when the operator knows (XCom mode may hold 10,000 records)")

    operator = SimpleNamespace(_written_uri="file:///lake/legal_indicators.jsonl.gz")
    ti = SimpleNamespace(task_id="legal", map_index=-1, xcom_pull=xcom_pull)
    assert PatsnapOutputLink().get_link(operator, ti_key=ti) == "file:///lake/legal_indicators.jsonl.gz"


def test_a_failing_xcom_read_gives_no_link_not_an_error() -> None:
    def xcom_pull(**_: object) -> object:
        raise RuntimeError("the API server is away")

    assert (
        PatsnapOutputLink().get_link(object(), ti_key=SimpleNamespace(task_id="t", map_index=-1, xcom_pull=xcom_pull))
        == ""
    )
