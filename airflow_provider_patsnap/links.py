"""Operator extra links."""

from __future__ import annotations

from typing import Any

from airflow_provider_patsnap.version_compat import BaseOperatorLink

DEVPORTAL = "https://open.patsnap.com/devportal/api-reference"


def status_docs_path(report_kind: Any) -> str:
    """The status endpoint of a report kind, or "" while it is still an unrendered template."""
    from airflow_provider_patsnap.errors import PatsnapInputError
    from airflow_provider_patsnap.models import ReportKind

    try:
        return ReportKind.parse(report_kind).status_path
    except PatsnapInputError:
        return ""


class PatsnapApiDocsLink(BaseOperatorLink):
    """Links a PatSnap task to the API reference page of the endpoint it calls.

    The operator names its endpoint in ``api_docs_path`` (e.g. ``/innovation/company-report/task/create``).
    """

    name = "PatSnap API reference"

    def get_link(self, operator: Any, *, ti_key: Any = None) -> str:
        path = getattr(operator, "api_docs_path", "") or ""
        return f"{DEVPORTAL}{path}" if path else "https://open.patsnap.com/"
