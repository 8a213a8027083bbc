"""Hostile or odd answers from PatSnap and its CDN, at the HTTP edge (``responses``).

Whatever comes back, a task ends with the provider's own error (``PatsnapError``) or Airflow's
(``AirflowFailException``), or with a safe result: never a ``KeyError``, ``JSONDecodeError``, an
exception from inside requests, or a file (or staging file) written where it should not be.
Downloads go through the real code path: only the status endpoint and the CDN link are mocked.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import responses

from airflow_provider_patsnap.errors import Outcome, PatsnapDownloadError, PatsnapError, PatsnapRetryableError
from airflow_provider_patsnap.operators.indicators import PatsnapLegalIndicatorsOperator
from airflow_provider_patsnap.operators.reports import (
    PatsnapCreateEnterpriseReportOperator,
    PatsnapDownloadReportOperator,
)
from airflow_provider_patsnap.sensors.report_job import PatsnapReportJobSensor
from airflow_provider_patsnap.version_compat import AirflowFailException, PokeReturnValue
from tests.support import P037, R001_CREATE, R001_STATUS, TOKEN_URL, envelope, expect_failure, files_under

CDN = "https://cdn.patsnap.test"
CDN_PATH = "/tffi-export/20260107093000/1579434053399035905/Example_Robotics_Ltd_2026_01_07.pdf"
SIGN = "q-sign-algorithm%3Dsha1%26q-signature%3Ddeadbeef"
JOB_ID = "1579434053399035905"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" + b"%" + b"x" * 4000 + b"\n%%EOF"


def done(url: object) -> str:
    return envelope({"job_id": JOB_ID, "job_status": 2, "queue_num": 0, "download_url": url})


@pytest.fixture
def rsps(oauth_conn: str, sleeps: list[float]) -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json={"token": "tok-hostile", "expires_in": 1800})
        yield mock


def calls_to(mock: responses.RequestsMock, url: str) -> int:
    return len([c for c in mock.calls if str(c.request.url).split("?")[0] == url])


def download_into(dest: Path, *, overwrite: bool = False) -> PatsnapDownloadReportOperator:
    return PatsnapDownloadReportOperator(
        task_id="download",
        job_id=JOB_ID,
        report_kind="enterprise",
        destination=f"{dest}/",
        overwrite=overwrite,
    )


# --------------------------------------------------------------------------- status endpoint

#: Not JSON at all (a WAF or maintenance page, a cut answer): transient, so retried, then Airflow's retries.
NOT_JSON_BODIES = [
    pytest.param({"body": "<html><body>Down for maintenance</body></html>", "content_type": "text/html"}, id="html"),
    pytest.param({"body": "", "content_type": "text/plain"}, id="empty"),
    pytest.param({"body": b"\xff\xfe\x00\x81garbage", "content_type": "application/json"}, id="binary"),
    pytest.param(
        {"body": '{"data": {"job_status": 2, "download_url": "https://', "content_type": "application/json"},
        id="cut-json",
    ),
]
#: JSON that PatSnap's envelope rules cannot read: permanent.
ODD_JSON_BODIES = [
    pytest.param({"body": "[]", "content_type": "application/json"}, id="json-list"),
    pytest.param({"body": "null", "content_type": "application/json"}, id="json-null"),
    pytest.param({"body": '"ok"', "content_type": "application/json"}, id="json-string"),
    pytest.param({"body": json.dumps({"status": True, "error_code": 0})}, id="no-data"),
    pytest.param({"body": envelope([1, 2])}, id="data-list"),
    pytest.param({"body": envelope("done")}, id="data-string"),
    pytest.param({"body": envelope({})}, id="no-job-status"),
    pytest.param({"body": envelope({"job_id": JOB_ID, "job_status": 9})}, id="status-9"),
    pytest.param({"body": envelope({"job_id": JOB_ID, "job_status": -1})}, id="status-minus-1"),
    pytest.param({"body": envelope({"job_id": JOB_ID, "job_status": "done"})}, id="status-word"),
    pytest.param({"body": envelope({"job_id": JOB_ID, "job_status": None})}, id="status-null"),
    pytest.param({"body": envelope({"job_id": JOB_ID, "job_status": 2})}, id="done-without-url"),
    pytest.param({"body": done("")}, id="done-empty-url"),
    pytest.param({"body": done(None)}, id="done-null-url"),
    pytest.param({"body": json.dumps({"status": "true", "error_code": 0, "data": {"job_status": 2}})}, id="status-str"),
    pytest.param({"body": json.dumps({"status": False, "error_code": "oops"})}, id="error-code-word"),
]
ODD_STATUS_BODIES = NOT_JSON_BODIES + ODD_JSON_BODIES


@pytest.mark.parametrize("answer", ODD_STATUS_BODIES)
def test_odd_status_answer_never_lets_the_sensor_succeed(rsps: responses.RequestsMock, answer: dict[str, Any]) -> None:
    rsps.get(R001_STATUS, **answer)
    sensor = PatsnapReportJobSensor(task_id="wait", job_id=JOB_ID, report_kind="enterprise", deferrable=False)

    try:
        result = sensor.poke({})
    except (PatsnapError, AirflowFailException) as exc:  # the provider's or Airflow's, with a readable message
        assert "GET /innovation/company-report/job_id/status" in str(exc), str(exc)
    except BaseException as exc:
        pytest.fail(f"uncaught {type(exc).__module__}.{type(exc).__name__}: {exc!r}")
    else:
        assert result is False or (isinstance(result, PokeReturnValue) and not result.is_done), result


@pytest.mark.parametrize(
    "answer",
    [
        *ODD_JSON_BODIES,
        pytest.param({"body": done(42)}, id="done-numeric-url"),
        pytest.param({"body": done({"url": "https://cdn"})}, id="done-object-url"),
    ],
)
def test_odd_status_answer_fails_the_download_cleanly(
    rsps: responses.RequestsMock, tmp_path: Path, answer: dict[str, Any]
) -> None:
    rsps.get(R001_STATUS, **answer)

    exc = expect_failure(lambda: download_into(tmp_path / "dest").execute({}))

    # Permanent, or (an answer that only looks wrong: a codeless failure, a done job without its link yet)
    # transient and left to Airflow's retries; never anything but the provider's or Airflow's error.
    assert isinstance(exc, (AirflowFailException, PatsnapRetryableError)), f"{type(exc).__name__}: {exc}"
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("answer", NOT_JSON_BODIES)
def test_status_answer_that_is_not_json_leaves_the_download_to_airflow_retries(
    rsps: responses.RequestsMock, tmp_path: Path, answer: dict[str, Any]
) -> None:
    rsps.get(R001_STATUS, **answer)

    exc = expect_failure(lambda: download_into(tmp_path / "dest").execute({}))

    # Not AirflowFailException: the report is paid for, and the task's own retries may still fetch it.
    assert isinstance(exc, PatsnapRetryableError), f"{type(exc).__name__}: {exc}"
    assert "GET /innovation/company-report/job_id/status" in str(exc)
    assert calls_to(rsps, R001_STATUS) == 4  # the hook's own budget was spent first
    assert files_under(tmp_path) == []


# --------------------------------------------------------------------------- create endpoint


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"body": "OK", "content_type": "text/plain"}, id="plain-text"),
        pytest.param({"body": "<html>accepted</html>", "content_type": "text/html"}, id="html"),
        pytest.param({"body": "[]", "content_type": "application/json"}, id="json-list"),
        pytest.param({"body": json.dumps({"status": True, "error_code": 0})}, id="no-data"),
        pytest.param({"body": envelope(None)}, id="data-null"),
        pytest.param({"body": envelope({})}, id="data-without-job-id"),
        pytest.param({"body": envelope({"jobId": JOB_ID})}, id="misspelt-job-id"),
        pytest.param({"body": envelope({"job_id": None})}, id="job-id-null"),
        pytest.param({"body": envelope(["1579434053399035905"])}, id="data-list"),
    ],
)
def test_create_answer_without_a_usable_job_id_fails_cleanly_and_is_not_resent(
    rsps: responses.RequestsMock, answer: dict[str, Any]
) -> None:
    rsps.post(R001_CREATE, **answer)
    rsps.post(R001_CREATE, body=envelope({"job_id": "2"}))

    exc = expect_failure(
        lambda: PatsnapCreateEnterpriseReportOperator(task_id="create", company_name="Example Robotics Ltd").execute({})
    )

    assert isinstance(exc, AirflowFailException), f"{type(exc).__name__}: {exc}"
    assert "POST /innovation/company-report/task/create" in str(exc), str(exc)
    assert "nothing was sent" not in str(exc)  # it was sent, and may have been billed
    assert calls_to(rsps, R001_CREATE) == 1


@pytest.mark.parametrize(
    "job_id_json",
    [
        pytest.param('""', id="empty-string"),
        pytest.param("1.579434053399036e18", id="float"),
        pytest.param("true", id="bool"),
        pytest.param('{"id": 1}', id="object"),
        pytest.param("[1579434053399035905]", id="list"),
    ],
)
def test_create_answer_with_an_unusable_job_id_says_the_job_may_exist(
    rsps: responses.RequestsMock, job_id_json: str
) -> None:
    rsps.post(R001_CREATE, body=f'{{"data": {{"job_id": {job_id_json}}}, "status": true, "error_code": 0}}')

    exc = expect_failure(
        lambda: PatsnapCreateEnterpriseReportOperator(task_id="create", company_name="Example Robotics Ltd").execute({})
    )

    assert isinstance(exc, AirflowFailException), f"{type(exc).__name__}: {exc}"
    assert "nothing was sent" not in str(exc), str(exc)
    assert "may exist" in str(exc) or "may have been created" in str(exc), str(exc)
    assert calls_to(rsps, R001_CREATE) == 1


# --------------------------------------------------------------------------- token endpoint


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"json": {"token_type": "BearerToken", "expires_in": 1800}}, id="no-token"),
        pytest.param({"json": {"token": None, "expires_in": 1800}}, id="token-null"),
        pytest.param({"json": {"token": 12345, "expires_in": 1800}}, id="token-number"),
        pytest.param({"json": {"data": "tok"}}, id="data-string"),
    ],
)
def test_odd_token_answer_fails_before_the_create_is_sent(
    oauth_conn: str, sleeps: list[float], answer: dict[str, Any]
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, **answer)
        mock.post(R001_CREATE, body=envelope({"job_id": "2"}))

        exc = expect_failure(
            lambda: PatsnapCreateEnterpriseReportOperator(task_id="create", company_name="Acme").execute({})
        )

        assert isinstance(exc, AirflowFailException), f"{type(exc).__name__}: {exc}"
        assert "POST /oauth/token" in str(exc), str(exc)
        assert calls_to(mock, R001_CREATE) == 0


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"body": "<html>login</html>", "content_type": "text/html"}, id="html"),
        pytest.param({"body": "", "content_type": "application/json"}, id="empty"),
    ],
)
def test_unreadable_token_answer_is_transient_and_the_create_is_never_sent(
    oauth_conn: str, sleeps: list[float], answer: dict[str, Any]
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, **answer)
        mock.post(R001_CREATE, body=envelope({"job_id": "2"}))

        exc = expect_failure(
            lambda: PatsnapCreateEnterpriseReportOperator(task_id="create", company_name="Acme").execute({})
        )

        # The create was never sent, so Airflow may safely retry the task: not a failure without retries.
        assert isinstance(exc, PatsnapRetryableError), f"{type(exc).__name__}: {exc}"
        assert exc.outcome is Outcome.NOT_SENT
        assert "POST /oauth/token" in str(exc), str(exc)
        assert calls_to(mock, TOKEN_URL) == 4
        assert calls_to(mock, R001_CREATE) == 0


@pytest.mark.parametrize("expires_in", ["soon", -5, None, "1e400", [1]])
def test_odd_token_lifetime_still_works(oauth_conn: str, sleeps: list[float], expires_in: object) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json={"token": "tok-odd-ttl", "expires_in": expires_in})
        mock.post(R001_CREATE, body=envelope({"job_id": 7}))

        assert PatsnapCreateEnterpriseReportOperator(task_id="create", company_name="Acme").execute({}) == "7"
        assert calls_to(mock, R001_CREATE) == 1
        assert mock.calls[-1].request.headers["Authorization"] == "Bearer tok-odd-ttl"


# --------------------------------------------------------------------------- legal indicators


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"body": envelope({"pn": "CN1A"})}, id="data-object"),
        pytest.param({"body": envelope("CN1A")}, id="data-string"),
    ],
)
def test_odd_indicator_answer_fails_cleanly(rsps: responses.RequestsMock, answer: dict[str, Any]) -> None:
    rsps.get(P037, **answer)
    exc = expect_failure(lambda: PatsnapLegalIndicatorsOperator(task_id="p037", patent_numbers=["CN1A"]).execute({}))
    assert isinstance(exc, AirflowFailException), f"{type(exc).__name__}: {exc}"
    assert "GET /patent-valuation-data/legal_indicators" in str(exc)


def test_junk_indicator_items_give_typed_records_not_a_crash(rsps: responses.RequestsMock) -> None:
    items = [
        "junk",
        17,
        None,
        {"pn": "CN1A", "patsnap_legal_value": "not-an-object"},
        {
            "pn": "CN2B",
            "patent_id": "id-2",
            "patsnap_legal_value": {
                "granted_no": "many",
                "has_reexam_invalid": "maybe",
                "litigation_country": "US",
                "remaining_time_ratio": "0.5",
                "patent_age_day": "120",
            },
        },
    ]
    rsps.get(P037, body=envelope(items))

    records = PatsnapLegalIndicatorsOperator(task_id="p037", patent_numbers=["CN1A", "CN2B"]).execute({})

    # Items that name no patent cannot be attributed to one: only the two that do become records.
    assert isinstance(records, list) and [r["pn"] for r in records] == ["CN1A", "CN2B"]
    assert all(isinstance(r, dict) and isinstance(r["litigation_country"], list) for r in records)
    typed = next(r for r in records if r["pn"] == "CN2B")
    assert typed["granted_no"] is None and typed["has_reexam_invalid"] is None
    assert typed["litigation_country"] == [] and typed["remaining_time_ratio"] == 0.5
    assert typed["patent_age_day"] == 120
    json.dumps(records)  # what reaches XCom / JSON Lines serialises


# --------------------------------------------------------------------------- downloads: file names


def _cd(name: str) -> dict[str, str]:
    return {"Content-Disposition": f"attachment;filename*=UTF-8''{quote(name, safe='')}"}


HOSTILE_NAMES = [
    pytest.param(CDN_PATH, {"Content-Disposition": 'attachment; filename="../../escaped.pdf"'}, id="dotdot"),
    pytest.param(CDN_PATH, _cd("../../../{tmp}-sibling/escaped.pdf"), id="deep-dotdot"),
    pytest.param(CDN_PATH, _cd("{tmp}/outside/escaped.pdf"), id="absolute"),
    pytest.param(CDN_PATH, {"Content-Disposition": 'attachment; filename="..\\..\\escaped.pdf"'}, id="backslashes"),
    pytest.param(CDN_PATH, _cd("C:\\Windows\\System32\\escaped.pdf"), id="windows-drive"),
    pytest.param(CDN_PATH, _cd("\\\\server\\share\\escaped.pdf"), id="windows-unc"),
    pytest.param(CDN_PATH, _cd("C:escaped.pdf"), id="drive-relative"),
    pytest.param(CDN_PATH, _cd("sub/dir/escaped.pdf"), id="slashes"),
    pytest.param(CDN_PATH, _cd(".."), id="only-dotdot"),
    pytest.param(CDN_PATH, _cd("."), id="only-dot"),
    pytest.param(CDN_PATH, _cd("../"), id="dotdot-slash"),
    pytest.param(CDN_PATH, _cd("   "), id="blank"),
    pytest.param(CDN_PATH, _cd(".hidden.pdf"), id="hidden"),
    pytest.param(CDN_PATH, _cd("a\x00b\nc\r\td.pdf"), id="control-chars"),
    pytest.param(CDN_PATH, _cd("report.pdf.part-12345678"), id="staging-lookalike"),
    pytest.param("/tffi-export/1/2/..%2F..%2Fescaped.pdf", {}, id="encoded-path"),
    pytest.param("/tffi-export/1/2/%2E%2E", {}, id="encoded-dotdot-path"),
    pytest.param("/tffi-export/1/2/", {}, id="no-name-at-all"),
]


@pytest.mark.parametrize(("cdn_path", "headers"), HOSTILE_NAMES)
def test_server_file_name_cannot_escape_the_destination_folder(
    rsps: responses.RequestsMock, tmp_path: Path, cdn_path: str, headers: dict[str, str]
) -> None:
    # Hostile absolute paths point inside tmp_path: should sanitising ever break, the escapee lands
    # where this test sees it (and pytest removes it), never in a real system folder.
    headers = {k: v.replace(quote("{tmp}", safe=""), quote(str(tmp_path), safe="")) for k, v in headers.items()}
    dest = tmp_path / "archive" / "enterprise" / "2026-01-07"
    link = f"{CDN}{cdn_path}?sign={SIGN}"
    rsps.get(R001_STATUS, body=done(link))
    # Any URL on the CDN host: requests may normalise an encoded path before sending it.
    rsps.get(re.compile(re.escape(CDN) + r"/.*"), body=PDF, headers=headers, content_type="application/pdf")

    result = download_into(dest).execute({})

    (stored,) = files_under(tmp_path)  # exactly one file anywhere, and no staging leftovers
    assert stored.parent == dest, stored
    assert stored.read_bytes() == PDF
    assert result["uri"] == stored.as_uri() or result["uri"] == f"file://{stored}", result
    name = result["filename"]
    assert name == stored.name and name not in (".", "..") and not name.startswith(".")
    assert not any(ch in name for ch in "/\\\x00\n\r\t:"), name
    assert not Path(f"{tmp_path}-sibling").exists()
    assert "sign=" not in json.dumps(result) and SIGN not in json.dumps(result)


def test_long_non_ascii_server_file_name_is_shortened_to_fit_the_filesystem(
    rsps: responses.RequestsMock, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    name = "宁德时代新能源科技股份有限公司" * 7 + "_2026_01_07.pdf"  # 105 CJK characters = 315 bytes
    rsps.get(R001_STATUS, body=done(f"{CDN}{CDN_PATH}?sign={SIGN}"))
    rsps.get(f"{CDN}{CDN_PATH}", body=PDF, headers=_cd(name), content_type="application/pdf")

    result = download_into(dest).execute({})

    (stored,) = files_under(tmp_path)
    assert stored.parent == dest
    assert len(stored.name.encode("utf-8")) <= 255 and stored.suffix == ".pdf"
    assert result["filename"] == stored.name and stored.read_bytes() == PDF


# --------------------------------------------------------------------------- downloads: bodies


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b"<!DOCTYPE html><html><body>Please sign in</body></html>", "text/html", id="html-page"),
        pytest.param(b"<html><body>Access denied</body></html>", "application/pdf", id="html-labelled-pdf"),
        pytest.param(b"", "application/pdf", id="empty"),
        pytest.param(b'{"error": "NoSuchKey"}', "application/json", id="json"),
        pytest.param(b"PK\x03\x04 not really a zip", "application/zip", id="bad-zip"),
        pytest.param(None, "application/vnd.openxmlformats-officedocument.wordprocessingml.document", id="zip-no-docx"),
    ],
)
def test_a_body_that_is_not_a_report_is_rejected_and_nothing_is_stored(
    rsps: responses.RequestsMock, tmp_path: Path, body: bytes | None, content_type: str
) -> None:
    if body is None:  # a valid zip that is not a Word document
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("evil.txt", "hello")
        body = buffer.getvalue()
    rsps.get(R001_STATUS, body=done(f"{CDN}{CDN_PATH}?sign={SIGN}"))
    # With its length announced and met, a body that is not a whole report is simply not one.
    rsps.get(f"{CDN}{CDN_PATH}", body=body, content_type=content_type, auto_calculate_content_length=True)

    exc = expect_failure(lambda: download_into(tmp_path / "dest").execute({}))

    assert isinstance(exc, AirflowFailException), f"{type(exc).__name__}: {exc}"
    assert "not a PDF or DOCX" in str(exc), str(exc)
    assert SIGN not in str(exc) and "sign=" not in str(exc)
    assert calls_to(rsps, f"{CDN}{CDN_PATH}") == 1  # wrong content is not a transient fault
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("declared", ["999999", "10", "0"])
def test_content_length_mismatch_never_leaves_a_file(
    rsps: responses.RequestsMock, tmp_path: Path, declared: str
) -> None:
    rsps.get(R001_STATUS, body=done(f"{CDN}{CDN_PATH}?sign={SIGN}"))
    rsps.get(f"{CDN}{CDN_PATH}", body=PDF, headers={"Content-Length": declared}, content_type="application/pdf")

    exc = expect_failure(lambda: download_into(tmp_path / "dest").execute({}))

    assert isinstance(exc, PatsnapError), f"{type(exc).__name__}: {exc}"
    assert "download" in str(exc).lower() and SIGN not in str(exc)
    assert files_under(tmp_path) == []


def test_expired_link_everywhere_is_a_transient_download_error(
    rsps: responses.RequestsMock, tmp_path: Path, sleeps: list[float]
) -> None:
    rsps.get(R001_STATUS, body=done(f"{CDN}{CDN_PATH}?sign={SIGN}"))
    xml = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    rsps.get(f"{CDN}{CDN_PATH}", status=403, body=xml, content_type="application/xml")

    exc = expect_failure(lambda: download_into(tmp_path / "dest").execute({}))

    assert isinstance(exc, PatsnapDownloadError) and "HTTP 403" in str(exc), str(exc)
    # Every attempt asked the status endpoint for a fresh link first (max_retries=3 -> 4 attempts).
    assert calls_to(rsps, R001_STATUS) == calls_to(rsps, f"{CDN}{CDN_PATH}") == 4
    assert files_under(tmp_path) == []


@pytest.mark.parametrize(
    "link",
    [
        "file:///etc/passwd",
        "ftp://cdn.patsnap.test/report.pdf",
        "http://cdn.patsnap.test/report.pdf",  # plain http off loopback
        "javascript:alert(1)",
        "//cdn.patsnap.test/report.pdf",
        "not a url at all",
    ],
)
def test_download_link_with_a_refused_scheme_is_never_fetched(
    rsps: responses.RequestsMock, tmp_path: Path, link: str
) -> None:
    rsps.get(R001_STATUS, body=done(link))

    exc = expect_failure(lambda: download_into(tmp_path / "dest").execute({}))

    assert isinstance(exc, AirflowFailException), f"{type(exc).__name__}: {exc}"
    assert "refusing" in str(exc), str(exc)
    assert [str(c.request.url).split("?")[0] for c in rsps.calls if "oauth" not in str(c.request.url)] == [R001_STATUS]
    assert files_under(tmp_path) == []


def test_existing_file_is_kept_and_no_staging_file_is_left(rsps: responses.RequestsMock, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    existing = dest / "Example_Robotics_Ltd_2026_01_07.pdf"
    existing.write_bytes(b"%PDF-1.4 older report")
    rsps.get(R001_STATUS, body=done(f"{CDN}{CDN_PATH}?sign={SIGN}"))
    rsps.get(f"{CDN}{CDN_PATH}", body=PDF, content_type="application/pdf")

    exc = expect_failure(lambda: download_into(dest).execute({}))

    assert isinstance(exc, AirflowFailException) and "overwrite=True" in str(exc), str(exc)
    assert files_under(tmp_path) == [existing] and existing.read_bytes() == b"%PDF-1.4 older report"
