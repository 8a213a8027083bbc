"""links.py: the operator extra link to PatSnap's API reference."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_provider_patsnap.links import DEVPORTAL, PatsnapApiDocsLink, status_docs_path
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
