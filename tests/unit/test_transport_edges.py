"""Transport edges: what counts as "not sent", retry nesting, encodings, destinations, log redaction."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NameResolutionError

from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.operators.reports import PatsnapDownloadReportOperator
from airflow_provider_patsnap.version_compat import AirflowFailException
from tests.support import R001_CREATE, R001_STATUS, add_token, calls_to, envelope

CDN_URL = "https://cdn.patsnap.test/tffi-export/1/2/Report_2026_01_07.pdf?sign=q-signature%3Dabc"
PDF = b"%PDF-1.4\n" + b"%" + b"x" * 2000 + b"\n%%EOF"


@responses.activate
def test_dns_failure_before_a_create_is_replayed_not_ambiguous(oauth_conn: str, sleeps: list[float]) -> None:
    add_token(responses.mock)
    dns = NameResolutionError("patsnap.test", None, OSError("Name or service not known"))  # type: ignore[arg-type]
    responses.post(R001_CREATE, body=requests.ConnectionError(MaxRetryError(None, R001_CREATE, reason=dns)))  # type: ignore[arg-type]
    responses.post(R001_CREATE, body=envelope({"job_id": "42"}))

    assert PatsnapHook().create_enterprise_report(company_name="ACME") == "42"
    assert len(calls_to(responses.mock, R001_CREATE)) == 2


@responses.activate
def test_download_does_not_multiply_status_retries(oauth_conn: str, sleeps: list[float], tmp_path: Path) -> None:
    add_token(responses.mock)
    responses.get(R001_STATUS, status=503, body="<html>down</html>", content_type="text/html")

    from airflow_provider_patsnap.errors import PatsnapRetryableError

    with pytest.raises(PatsnapRetryableError, match="HTTP 503"):
        PatsnapHook(max_retries=3).download_report("enterprise", "1", f"{tmp_path}/")
    assert len(calls_to(responses.mock, R001_STATUS)) == 4  # one policy's worth, not 4 x 4


@responses.activate
def test_download_asks_for_identity_encoding(oauth_conn: str, tmp_path: Path) -> None:
    add_token(responses.mock)
    responses.get(R001_STATUS, body=envelope({"job_id": "1", "job_status": 2, "download_url": CDN_URL}))
    responses.get(CDN_URL.split("?")[0], body=PDF, content_type="application/pdf")

    result = PatsnapHook().download_report("enterprise", "1", f"{tmp_path}/")

    (cdn_call,) = [c for c in responses.calls if c.request.url.startswith("https://cdn.")]
    assert cdn_call.request.headers["Accept-Encoding"] == "identity"
    assert "Authorization" not in cdn_call.request.headers
    assert result["size"] == len(PDF)


def test_existing_folder_without_trailing_slash_fails_before_any_call(oauth_conn: str, tmp_path: Path) -> None:
    with responses.RequestsMock() as rsps, pytest.raises(AirflowFailException, match="end it with '/'"):
        PatsnapDownloadReportOperator(
            task_id="dl", job_id="1", report_kind="enterprise", destination=str(tmp_path)
        ).execute({})
    assert len(rsps.calls) == 0


@pytest.mark.parametrize(
    "link",
    ["http://127.0.0.2:8080/r/Report.pdf?sign=x", "http://[::1]:8080/r/Report.pdf?sign=x", "http://localhost/r/a.pdf"],
)
@responses.activate
def test_download_links_to_any_loopback_address_are_fetched(oauth_conn: str, tmp_path: Path, link: str) -> None:
    add_token(responses.mock)
    responses.get(R001_STATUS, body=envelope({"job_id": "1", "job_status": 2, "download_url": link}))
    responses.get(link.split("?")[0], body=PDF, content_type="application/pdf")

    assert PatsnapHook().download_report("enterprise", "1", f"{tmp_path}/")["size"] == len(PDF)
