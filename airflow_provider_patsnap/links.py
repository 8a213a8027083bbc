"""Operator extra links."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

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


#: Schemes an output link may carry: the storage the provider writes to (``Destination`` refuses
#: http/https). Anything else (``javascript:``, ``data:``) is not a link, whatever an XCom says.
OUTPUT_SCHEMES = frozenset(
    {"file", "s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "hdfs", "webhdfs", "sftp", "ftp", "smb"}
)


def output_link(value: Any) -> str:
    """The URI a task's result names as what it wrote (``{"uri": ...}`` or the URI itself), or "" (a job
    id, records, or anything that is not a plain storage URI: no credentials, query or fragment)."""
    uri = value.get("uri") if isinstance(value, dict) else value
    if not isinstance(uri, str) or any(ord(c) < 0x20 for c in uri):
        return ""
    try:
        parts = urlsplit(uri)
        credentials = parts.username is not None or parts.password is not None
    except ValueError:
        return ""
    if parts.scheme.lower() not in OUTPUT_SCHEMES or credentials or parts.query or parts.fragment:
        return ""
    return uri


def _return_value(ti_key: Any) -> Any:
    pull = getattr(ti_key, "xcom_pull", None)
    if callable(pull):  # Airflow 3: the running task instance, when its try ends (the link is stored then)
        return pull(task_ids=ti_key.task_id, map_indexes=ti_key.map_index, key="return_value")
    from airflow.models.xcom import XCom  # Airflow 2: the webserver, with the task instance's key

    return XCom.get_value(ti_key=ti_key, key="return_value")


class PatsnapOutputLink(BaseOperatorLink):
    """Links a PatSnap task instance to what it wrote: the archived report, the lake file or the kept
    statement; empty when it wrote nothing. On Airflow 3 the operator that ran knows it (no XCom read);
    on Airflow 2 the webserver reads it from the task instance's XCom."""

    name = "PatSnap output"

    def get_link(self, operator: Any, *, ti_key: Any = None) -> str:
        written = getattr(operator, "_written_uri", None)
        if written:
            return output_link(written)
        if ti_key is None:
            return ""
        try:
            return output_link(_return_value(ti_key))
        except Exception:  # a link must not fail the page that shows it
            return ""
