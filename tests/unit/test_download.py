"""hooks/_download.py at the HTTP edge: the signed link's policy, streaming, size and type checks."""

from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from airflow_provider_patsnap.errors import (
    PatsnapDownloadError,
    PatsnapDownloadRejectedError,
    PatsnapJobFailedError,
    PatsnapPermanentError,
)
from airflow_provider_patsnap.hooks._download import MEDIA_TYPES, ReportDownloader
from airflow_provider_patsnap.hooks._urls import allowance_from
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.models import JobStatus, ReportJob, ReportKind
from airflow_provider_patsnap.storage import Destination
from tests.support import R001_STATUS, add_token, envelope, files_under

CDN_URL = "https://cdn.patsnap.test/tffi-export/1/2/Report_2026_01_07.pdf?sign=q-signature%3Dabc"
CDN_PATH = CDN_URL.split("?")[0]
PDF = b"%PDF-1.4\n" + b"%" + b"x" * 2000 + b"\n%%EOF"
LOG = logging.getLogger("test_download")


def docx(with_document: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        if with_document:
            archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def done(url: str = CDN_URL, job_id: str = "42", kind: ReportKind = ReportKind.ENTERPRISE) -> ReportJob:
    return ReportJob(job_id, kind, JobStatus.SUCCEEDED, download_url=url)


def fetch(job: ReportJob, destination: str, *, overwrite: bool = False, allow: Any = False) -> dict:
    downloader = ReportDownloader(LOG, (1.0, 5.0), allow_private=allow)
    return downloader.fetch(job, Destination.parse(destination), overwrite=overwrite)


# --------------------------------------------------------------------------- the request


@responses.activate
def test_download_asks_for_identity_encoding_without_patsnap_credentials(tmp_path: Path) -> None:
    responses.get(CDN_PATH, body=PDF, content_type="application/pdf")

    result = fetch(done(), f"{tmp_path}/")

    (cdn_call,) = responses.calls
    assert cdn_call.request.headers["Accept-Encoding"] == "identity"  # size and sha256 of the stored bytes
    assert "Authorization" not in cdn_call.request.headers
    assert cdn_call.request.url == CDN_URL  # the signature is sent as given
    assert result["size"] == len(PDF)


@pytest.mark.parametrize(
    "link",
    ["http://127.0.0.2:8080/r/Report.pdf?sign=x", "http://[::1]:8080/r/Report.pdf?sign=x", "http://localhost/r/a.pdf"],
)
@responses.activate
def test_download_links_to_loopback_are_fetched_when_the_connection_allows_it(tmp_path: Path, link: str) -> None:
    responses.get(link.split("?")[0], body=PDF, content_type="application/pdf")
    loopback = allowance_from("127.0.0.0/8,::1/128")  # what the bundled emulator's connection sets
    assert fetch(done(link), f"{tmp_path}/", allow=loopback)["size"] == len(PDF)
    with pytest.raises(PatsnapDownloadRejectedError, match="is a loopback"):  # and only then
        fetch(done(link), f"{tmp_path}/again/")


@pytest.mark.parametrize(
    ("link", "reason"),
    [("http://cdn.patsnap.test/r/Report.pdf?sign=x", "unencrypted"), ("ftp://cdn.patsnap.test/r.pdf", "ftp scheme")],
)
def test_links_outside_the_url_policy_are_refused_before_any_request(tmp_path: Path, link: str, reason: str) -> None:
    with responses.RequestsMock() as rsps, pytest.raises(PatsnapDownloadRejectedError, match=reason) as info:
        fetch(done(link), f"{tmp_path}/")
    assert len(rsps.calls) == 0
    assert "sign=x" not in str(info.value)
    assert files_under(tmp_path) == []


def test_a_job_that_is_not_done_is_not_fetched(tmp_path: Path) -> None:
    with responses.RequestsMock() as rsps:
        with pytest.raises(PatsnapPermanentError, match="not ready yet") as info:
            fetch(ReportJob("42", ReportKind.ENTERPRISE, JobStatus.EXPORTING), f"{tmp_path}/")
        assert "PatsnapReportJobSensor" in str(info.value)
        with pytest.raises(PatsnapJobFailedError, match="broken"):
            fetch(ReportJob("42", ReportKind.ENTERPRISE, JobStatus.FAILED, abnormal_cause="broken"), f"{tmp_path}/")
        assert len(rsps.calls) == 0


# --------------------------------------------------------------------------- the answer


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (403, PatsnapDownloadError),
        (404, PatsnapDownloadError),
        (503, PatsnapDownloadError),
        (400, PatsnapDownloadRejectedError),
        (405, PatsnapDownloadRejectedError),
    ],
)
@responses.activate
def test_an_error_status_from_the_link(tmp_path: Path, status: int, cls: type[Exception]) -> None:
    responses.get(CDN_PATH, status=status, body="<Error>AccessDenied</Error>", content_type="application/xml")
    with pytest.raises(cls, match=f"HTTP {status}") as info:
        fetch(done(), f"{tmp_path}/")
    assert type(info.value) is cls
    assert "sign=" not in str(info.value) and CDN_PATH in str(info.value)
    assert files_under(tmp_path) == []


@responses.activate
def test_a_transfer_error_is_a_download_error(tmp_path: Path) -> None:
    responses.get(CDN_PATH, body=requests.ConnectionError(f"reset while fetching {CDN_URL}"))
    with pytest.raises(PatsnapDownloadError, match="download failed: ConnectionError") as info:
        fetch(done(), f"{tmp_path}/")
    assert "sign=" not in str(info.value)


@responses.activate
def test_a_body_shorter_than_its_content_length_is_cut_short_and_nothing_is_stored(tmp_path: Path) -> None:
    responses.get(
        CDN_PATH,
        body=PDF,
        content_type="application/pdf",
        headers={"Content-Length": str(len(PDF) + 100)},
        auto_calculate_content_length=False,
    )
    # urllib3 or the downloader's own count notices it first: either way a retryable cut-short download.
    with pytest.raises(PatsnapDownloadError, match="download cut short"):
        fetch(done(), f"{tmp_path}/")
    assert files_under(tmp_path) == []  # no partial file either


@pytest.mark.parametrize(
    "body",
    [b"<html><body>Access denied</body></html>", b"", docx(with_document=False)],
)
@responses.activate
def test_what_is_not_a_pdf_or_docx_is_rejected_and_not_stored(tmp_path: Path, body: bytes) -> None:
    responses.get(CDN_PATH, body=body, content_type="application/pdf")
    with pytest.raises(PatsnapDownloadRejectedError, match="is not a PDF or DOCX report") as info:
        fetch(done(), f"{tmp_path}/")
    assert "nothing was stored" in str(info.value)
    assert files_under(tmp_path) == []


@pytest.mark.parametrize(
    "body",
    [PDF[:-10], PDF[: len(PDF) // 2], docx()[:-30], docx()[: len(docx()) // 2], b"PK\x03\x04 not really a zip"],
    ids=["pdf-without-trailer", "half-a-pdf", "docx-without-its-directory-end", "half-a-docx", "zip-signature-only"],
)
@responses.activate
def test_a_body_cut_short_without_content_length_is_caught_by_its_structure(tmp_path: Path, body: bytes) -> None:
    # No Content-Length (chunked): only the document's own structure says it is not whole.
    responses.get(CDN_PATH, body=body, content_type="application/pdf")
    with pytest.raises(PatsnapDownloadError, match="no Content-Length was sent: cut short; nothing was stored"):
        fetch(done(), f"{tmp_path}/")
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("body", [PDF[:-10], docx()[:-30], b"PK\x03\x04 not really a zip"])
@responses.activate
def test_a_broken_body_of_the_announced_length_is_not_a_report(tmp_path: Path, body: bytes) -> None:
    responses.get(CDN_PATH, body=body, content_type="application/pdf", auto_calculate_content_length=True)
    with pytest.raises(PatsnapDownloadRejectedError, match="starts like one but is not whole"):
        fetch(done(), f"{tmp_path}/")
    assert files_under(tmp_path) == []


# --------------------------------------------------------------------------- the result


@responses.activate
def test_a_pdf_is_stored_whole_with_its_metadata(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses.get(CDN_PATH, body=PDF, content_type="application/pdf")

    result = fetch(done(kind=ReportKind.PATENT_VALUE), f"{tmp_path}/archive/")

    stored = tmp_path / "archive" / "Report_2026_01_07.pdf"
    assert files_under(tmp_path) == [stored] and stored.read_bytes() == PDF
    assert result == {
        "uri": f"file://{stored}",
        "filename": "Report_2026_01_07.pdf",
        "size": len(PDF),
        "sha256": hashlib.sha256(PDF).hexdigest(),
        "media_type": "application/pdf",
        "job_id": "42",
        "report_kind": "patent_value",
    }
    assert "sign=" not in caplog.text and "q-signature" not in caplog.text  # the link is logged as host + path
    assert CDN_PATH in caplog.text


@responses.activate
def test_a_docx_is_recognised_by_its_content(tmp_path: Path) -> None:
    body = docx()
    responses.get(
        CDN_PATH.replace(".pdf", ".docx"),
        body=body,
        content_type="application/octet-stream",
        headers={"Content-Disposition": "attachment; filename*=UTF-8''%E4%BC%81%E4%B8%9A%E6%8A%A5%E5%91%8A.docx"},
    )
    result = fetch(done(CDN_URL.replace(".pdf", ".docx")), f"{tmp_path}/")
    assert result["filename"] == "企业报告.docx" and result["media_type"] == MEDIA_TYPES["docx"]
    assert (tmp_path / "企业报告.docx").read_bytes() == body


@responses.activate
def test_a_hostile_file_name_stays_inside_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    responses.get(CDN_PATH, body=PDF, headers={"Content-Disposition": 'attachment; filename="../../../evil.pdf"'})
    result = fetch(done(), f"{folder}/")
    assert result["filename"] == "evil.pdf" and files_under(tmp_path) == [folder / "evil.pdf"]


@responses.activate
def test_no_name_anywhere_falls_back_to_kind_and_job_id(tmp_path: Path) -> None:
    responses.get("https://cdn.patsnap.test/export/", body=PDF)
    result = fetch(done("https://cdn.patsnap.test/export/?sign=x", job_id="1579434053399035905"), f"{tmp_path}/")
    assert result["filename"] == "enterprise_1579434053399035905.pdf"  # the type the bytes were verified to be


@responses.activate
def test_a_file_destination_takes_the_report_under_that_name(tmp_path: Path) -> None:
    responses.get(CDN_PATH, body=PDF)
    result = fetch(done(), f"{tmp_path}/mine.pdf")
    assert result["uri"] == f"file://{tmp_path}/mine.pdf" and (tmp_path / "mine.pdf").read_bytes() == PDF


@responses.activate
def test_an_existing_file_with_other_content_is_kept_unless_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "report.pdf"
    target.write_bytes(b"previous archive")
    responses.get(CDN_PATH, body=PDF)

    with pytest.raises(PatsnapDownloadRejectedError, match="already exists"):
        fetch(done(), str(target))
    assert target.read_bytes() == b"previous archive"
    assert files_under(tmp_path) == [target]

    fetch(done(), str(target), overwrite=True)
    assert target.read_bytes() == PDF
    assert files_under(tmp_path) == [target]


@responses.activate
def test_a_report_of_many_chunks_is_hashed_and_stored_byte_for_byte(tmp_path: Path) -> None:
    import os

    body = PDF[:9] + os.urandom(3 * 4096 + 123) + b"\n%%EOF"  # chunks of 4096: several, the last short
    responses.get(CDN_PATH, body=body, content_type="application/pdf")

    result = ReportDownloader(LOG, (1.0, 5.0)).fetch(
        done(), Destination.parse(f"{tmp_path}/"), overwrite=False, chunk_size=4096
    )

    assert result["size"] == len(body)
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert (tmp_path / result["filename"]).read_bytes() == body


class SocketlessBody:
    """A body with no socket beneath (another transport): read through urllib3's ``read``, which records
    what it was asked for."""

    def __init__(self) -> None:
        self.asked: list[int] = []
        self.decode: set[Any] = set()

    def read(self, amt: int, decode_content: bool | None = None) -> bytes:
        self.asked.append(amt)
        self.decode.add(decode_content)
        return (b"%PDF-1.4\n" + b"x" * amt)[:amt]


def test_an_endless_body_is_read_one_byte_past_the_cap_never_further_nor_decoded(tmp_path: Path) -> None:
    import time
    from types import SimpleNamespace

    body = SocketlessBody()
    response = SimpleNamespace(headers={"Content-Type": "application/pdf"}, raw=body)
    downloader = ReportDownloader(LOG, (1.0, 5.0), max_bytes=10_000)
    with (
        open(tmp_path / "part", "w+b") as handle,
        pytest.raises(PatsnapDownloadRejectedError, match=r"max_download_bytes \(10000\)"),
    ):
        downloader._stream(response, handle, str(tmp_path / "part"), "r.pdf", 4096, "GET x", time.monotonic())  # type: ignore[arg-type]
    assert body.asked == [4096, 4096, 10_001 - 8192] and body.decode == {False}


@responses.activate
def test_a_redirect_to_plain_http_off_loopback_is_refused_at_the_hop(oauth_conn: str, tmp_path: Path) -> None:
    add_token(responses.mock)
    signed = "https://cdn.patsnap.test/r/Report.pdf?sign=x"
    responses.get(R001_STATUS, body=envelope({"job_id": "1", "job_status": 2, "download_url": signed}))
    responses.get(signed.split("?")[0], status=302, headers={"Location": "http://mirror.example/Report.pdf"})
    responses.get("http://mirror.example/Report.pdf", body=PDF, content_type="application/pdf")

    with pytest.raises(PatsnapDownloadRejectedError, match="unencrypted"):
        PatsnapHook().download_report("enterprise", "1", f"{tmp_path}/")
    assert not [c for c in responses.calls if c.request.url.startswith("http://mirror")]


@responses.activate
def test_an_https_redirect_is_followed(oauth_conn: str, tmp_path: Path) -> None:
    add_token(responses.mock)
    signed = "https://cdn.patsnap.test/r/Report.pdf?sign=x"
    responses.get(R001_STATUS, body=envelope({"job_id": "1", "job_status": 2, "download_url": signed}))
    responses.get(signed.split("?")[0], status=307, headers={"Location": "/moved/Report.pdf?sign=y"})
    responses.get("https://cdn.patsnap.test/moved/Report.pdf", body=PDF, content_type="application/pdf")

    assert PatsnapHook().download_report("enterprise", "1", f"{tmp_path}/")["size"] == len(PDF)


@responses.activate
def test_a_zip_whose_members_inflate_past_the_cap_is_not_read_back(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"<w:document/>" + b" " * (5 * 1024 * 1024))  # 5 MiB inflated
    body = buffer.getvalue()
    responses.get(CDN_PATH, body=body, content_type="application/pdf", auto_calculate_content_length=True)
    downloader = ReportDownloader(LOG, (1.0, 5.0), max_bytes=1024 * 1024)  # inflating may reach 4 x 1 MiB
    with pytest.raises(PatsnapDownloadRejectedError, match="is not a PDF or DOCX report"):
        downloader.fetch(done(), Destination.parse(f"{tmp_path}/"), overwrite=False)
    assert files_under(tmp_path) == []
