"""The trust boundary, against a hostile server these tests run themselves (tests/hostile.py).

One section per kind of input: identifiers, links, bodies, remote text, file names. Each test drives
the public hook with real HTTP on 127.0.0.1; a refused address is proven refused by the connect
audit (nothing dialled), never by being unreachable.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_patsnap.errors import (
    PatsnapAmbiguousCreateError,
    PatsnapDownloadError,
    PatsnapDownloadRejectedError,
    PatsnapError,
    PatsnapInputError,
    PatsnapResponseError,
)
from airflow_provider_patsnap.hooks import _drivers
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.redaction import forget_secrets
from airflow_provider_patsnap.triggers.report_job import PatsnapReportJobTrigger
from tests.hostile import TOKEN, ConnectAudit, Exchange, HostileServer, endless, gzip_bomb
from tests.support import API_KEY, CLIENT_ID, CLIENT_SECRET, conn_json, files_under

R001_CREATE = "/innovation/company-report/task/create"
R001_STATUS = "/innovation/company-report/job_id/status"
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%" + b"x" * 4000 + b"\n%%EOF\n"
MiB = 1024 * 1024


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_secrets_from_other_tests() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def connect(
    monkeypatch: pytest.MonkeyPatch, server: HostileServer, *, api_key: str | None = None, **extra: Any
) -> None:
    """The connection to the hostile server; its links may point at loopback (where it runs), nowhere else internal."""
    settings: dict[str, Any] = {
        "qps": 0,
        "max_retries": 0,
        "retry_wait_min": 0.001,
        "retry_wait_max": 0.01,
        "allow_private_addresses": "127.0.0.0/8",
    }
    monkeypatch.setenv("AIRFLOW_CONN_PATSNAP_DEFAULT", conn_json(server.url, api_key=api_key, **{**settings, **extra}))


def finished(server: HostileServer, link: str) -> None:
    """The status endpoint says job 42 is done, with ``link`` as its download URL."""
    server.routes[R001_STATUS] = lambda ex: ex.envelope({"job_id": "42", "job_status": 2, "download_url": link})


def serve_pdf(ex: Exchange) -> None:
    ex.send(200, PDF, {"Content-Type": "application/pdf", "Content-Disposition": 'attachment; filename="R.pdf"'})


def download(tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    return PatsnapHook().download_report("enterprise", "42", f"{tmp_path}/archive/", **kwargs)


# ------------------------------------------------------------------------------------ identifiers


@pytest.mark.parametrize("job_id", ["/../../x", "42/../../etc", "42\n43", "４２", "1e3", "-1", "0x2a", "None"])
def test_a_create_answer_whose_job_id_is_not_digits_is_refused_and_never_used(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, job_id: str
) -> None:
    connect(monkeypatch, hostile)
    hostile.routes[R001_CREATE] = lambda ex: ex.envelope({"job_id": job_id})
    with pytest.raises(
        PatsnapAmbiguousCreateError, match=r"sent no usable job_id \(job_id: .*not a PatSnap report job id"
    ):
        PatsnapHook().create_enterprise_report(company_name="ACME")
    assert len(hostile.calls(R001_CREATE)) == 1  # asked once: the job may exist, so never created again


@pytest.mark.parametrize("job_id", ["1/../../x", "../42", "42?x=1", "None", ""])
def test_a_job_id_from_the_dag_that_is_not_digits_is_refused_before_any_connection(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, job_id: str
) -> None:
    connect(monkeypatch, hostile)
    with ConnectAudit() as audit, pytest.raises(PatsnapInputError, match=r"^job_id: "):
        PatsnapHook().download_report("enterprise", job_id, f"{tmp_path}/")
    assert audit.addresses == [] and hostile.seen == []


@pytest.mark.parametrize(
    ("path", "disposition"),
    [
        ("/dl/..%2f..%2fescaped.pdf", None),
        ("/dl/", 'attachment; filename="../../../escaped.pdf"'),
        ("/dl/%2e%2e", "attachment; filename*=UTF-8''..%2F..%2Fescaped.pdf"),
        ("/dl/", 'attachment; filename=".."'),
        ("/dl/", 'attachment; filename="..\\\\..\\\\escaped.pdf"'),
    ],
)
def test_no_name_from_the_link_or_its_headers_writes_outside_the_destination(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, path: str, disposition: str | None
) -> None:
    connect(monkeypatch, hostile)
    finished(hostile, f"{hostile.url}{path}")
    headers = {"Content-Type": "application/pdf", **({"Content-Disposition": disposition} if disposition else {})}
    hostile.fallback = lambda ex: ex.send(200, PDF, headers)
    result = download(tmp_path, overwrite=True)
    (stored,) = files_under(tmp_path)
    assert stored.parent == tmp_path / "archive" and result["uri"] == stored.as_uri()


# ------------------------------------------------------------------------------------ links

INTERNAL_LINKS = [
    "http://169.254.169.254\\@127.0.0.1:{port}/dl/r.pdf",
    "https://169.254.169.254/latest/meta-data/",
    "https://2852039166/latest/meta-data/",
    "https://[::ffff:a9fe:a9fe]/latest/meta-data/",
    "https://10.0.0.1/r.pdf",
    "https://100.64.0.1/r.pdf",
    "https://0.0.0.0/r.pdf",
    "https://user:secret@cdn.patsnap.test/r.pdf",
    "http://cdn.patsnap.test/r.pdf",
    "file:///etc/passwd",
]


@pytest.mark.parametrize("link", INTERNAL_LINKS)
def test_a_hostile_download_link_is_refused_before_connecting(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, link: str
) -> None:
    connect(monkeypatch, hostile)
    finished(hostile, link.format(port=hostile.port))
    with ConnectAudit() as audit, pytest.raises(PatsnapDownloadRejectedError, match="refusing the download link"):
        download(tmp_path)
    assert audit.hosts() == {"127.0.0.1"} and {port for _, port in audit.addresses} == {hostile.port}
    assert [e.path.split("?")[0] for e in hostile.seen] == ["/oauth/token", R001_STATUS]  # the API only
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("link", INTERNAL_LINKS)
def test_a_redirect_to_a_hostile_link_is_refused_before_connecting(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, link: str
) -> None:
    connect(monkeypatch, hostile)
    finished(hostile, f"{hostile.url}/dl/r.pdf?sign=abc")
    hostile.routes["/dl/r.pdf"] = lambda ex: ex.send(302, b"", {"Location": link.format(port=hostile.port)})
    with ConnectAudit() as audit, pytest.raises(PatsnapDownloadRejectedError, match="refusing the download link"):
        download(tmp_path)
    assert audit.hosts() == {"127.0.0.1"} and {port for _, port in audit.addresses} == {hostile.port}
    assert [e.path.split("?")[0] for e in hostile.seen][-1] == "/dl/r.pdf"
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("allowance", [False, "10.0.0.0/8"])
@pytest.mark.parametrize(
    "link", ["http://127.0.0.1:{port}/log/secret", "http://localhost:{port}/x", "http://127.1:{port}/x"]
)
def test_a_link_to_the_workers_own_loopback_needs_the_connection_to_allow_it(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, link: str, allowance: Any
) -> None:
    """Airflow's log server, its API and Redis listen on the worker's loopback: a link there is refused."""
    connect(monkeypatch, hostile, allow_private_addresses=allowance)
    finished(hostile, link.format(port=hostile.port))
    with pytest.raises(PatsnapDownloadRejectedError, match=r"127\.0\.0\.1 is a loopback"):
        download(tmp_path)
    assert [e.path.split("?")[0] for e in hostile.seen] == ["/oauth/token", R001_STATUS]


def test_a_link_the_gate_admits_is_fetched(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The control for the two tests above: the same set-up with a loopback link downloads."""
    connect(monkeypatch, hostile)
    finished(hostile, f"{hostile.url}/dl/r.pdf?sign=abc")
    hostile.routes["/dl/r.pdf"] = serve_pdf
    assert download(tmp_path)["size"] == len(PDF)


# ------------------------------------------------------------------------------------ bodies


def test_a_compressed_download_is_refused_not_inflated(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    connect(monkeypatch, hostile)
    finished(hostile, f"{hostile.url}/dl/r.pdf")
    bomb = gzip_bomb(256 * MiB)
    hostile.routes["/dl/r.pdf"] = lambda ex: ex.send(
        200, bomb, {"Content-Type": "application/pdf", "Content-Encoding": "gzip"}
    )
    with pytest.raises(PatsnapDownloadRejectedError, match="gzip-encoded although none was asked for"):
        download(tmp_path)
    assert files_under(tmp_path) == []
    assert hostile.calls("/dl/r.pdf")[0].headers["accept-encoding"] == "identity"


def test_an_endless_download_stops_at_the_size_cap_and_stores_nothing(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    connect(monkeypatch, hostile, max_download_bytes=2 * MiB)
    finished(hostile, f"{hostile.url}/dl/r.pdf")
    hostile.routes["/dl/r.pdf"] = lambda ex: ex.stream(
        chain([b"%PDF-1.4\n"], endless()), {"Content-Type": "application/pdf"}
    )
    with pytest.raises(PatsnapDownloadRejectedError, match=r"max_download_bytes \(2097152\)"):
        download(tmp_path)
    assert files_under(tmp_path) == []


def test_a_download_announcing_more_than_the_cap_is_refused_unread(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    connect(monkeypatch, hostile, max_download_bytes=MiB)

    def huge(ex: Exchange) -> None:
        ex.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\nContent-Length: 10737418240\r\n\r\n%PDF-")

    finished(hostile, f"{hostile.url}/dl/r.pdf")
    hostile.routes["/dl/r.pdf"] = huge
    with pytest.raises(PatsnapDownloadRejectedError, match=r"would be 10737418240 bytes"):
        download(tmp_path)
    assert files_under(tmp_path) == []


def test_a_download_that_trickles_is_stopped_at_its_deadline(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    connect(monkeypatch, hostile, download_timeout=1)
    finished(hostile, f"{hostile.url}/dl/r.pdf")
    trickle = chain([b"%PDF-1.4\n"], endless(b"x" * 64, pause=0.05))
    hostile.routes["/dl/r.pdf"] = lambda ex: ex.stream(trickle, {"Content-Type": "application/pdf"})
    with pytest.raises(PatsnapDownloadError, match=r"longer than the connection's download_timeout \(1 s\)"):
        download(tmp_path)
    assert files_under(tmp_path) == []


def test_a_download_that_trickles_on_a_closing_connection_is_stopped_at_its_deadline(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``Connection: close`` takes the socket away from the pool's connection, and a read that fills a
    whole buffer would wait for megabytes that come 64 bytes at a time: the deadline still ends it."""
    connect(monkeypatch, hostile, download_timeout=1, timeout=5)
    finished(hostile, f"{hostile.url}/dl/r.pdf")
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n"

    def trickle(ex: Exchange) -> None:
        ex.wfile.write(head + b"%PDF-1.4\n")
        for block in endless(b"x" * 64, pause=0.05):
            ex.wfile.write(block)
            ex.wfile.flush()

    hostile.routes["/dl/r.pdf"] = trickle
    started = time.monotonic()
    with pytest.raises(PatsnapDownloadError, match=r"longer than the connection's download_timeout \(1 s\)"):
        download(tmp_path)
    assert time.monotonic() - started < 4
    assert files_under(tmp_path) == []


def test_a_chunked_download_is_stored_byte_for_byte_across_chunk_boundaries(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    connect(monkeypatch, hostile)
    finished(hostile, f"{hostile.url}/dl/r.pdf")
    body = PDF[:-7] + os.urandom(50_000) + PDF[-7:]
    pieces = [body[i : i + 777] for i in range(0, len(body), 777)]  # never aligned with the reads
    hostile.routes["/dl/r.pdf"] = lambda ex: ex.stream(iter(pieces), {"Content-Type": "application/pdf"})
    result = download(tmp_path, chunk_size=4096)
    assert result["size"] == len(body) and result["sha256"] == hashlib.sha256(body).hexdigest()
    assert (tmp_path / "archive" / result["filename"]).read_bytes() == body


def drip(data: bytes, pause: float) -> Any:
    """A route that sends ``data`` one byte at a time, ``pause`` apart: every read succeeds in time."""

    def route(ex: Exchange) -> None:
        for byte in data:
            ex.wfile.write(bytes([byte]))
            time.sleep(pause)

    return route


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_download_dripped_byte_by_byte_is_stopped_at_its_deadline(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, part: str
) -> None:
    connect(monkeypatch, hostile, download_timeout=1, timeout=5)
    finished(hostile, f"{hostile.url}/dl/r.pdf")
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\nContent-Length: 100000\r\n" + b"X-Pad: " + b"a" * 500
    body = b"\r\n\r\n%PDF-1.4\n" + b"x" * 5000
    hostile.routes["/dl/r.pdf"] = drip(head + body, 0.05) if part == "headers" else drip(head[:0] + head + body, 0.0005)
    if part == "body":
        hostile.routes["/dl/r.pdf"] = lambda ex: (
            ex.wfile.write(head + b"\r\n\r\n%PDF-1.4\n"),
            drip(b"x" * 5000, 0.05)(ex),
        )
    started = time.monotonic()
    with pytest.raises(PatsnapDownloadError, match=r"longer than the connection's download_timeout \(1 s\)"):
        download(tmp_path)
    assert time.monotonic() - started < 4  # a read timeout (5 s) never fired: the deadline did
    assert files_under(tmp_path) == []


def test_an_api_answer_dripped_byte_by_byte_is_stopped_at_its_deadline(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, hostile, timeout=0.5)  # the whole exchange: connect (0.5) + 3 x read (0.5) = 2 s
    answer = (
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n{"data": "' + b"1" * 2000
    )
    hostile.routes[R001_STATUS] = drip(answer, 0.1)  # each byte within the 0.5 s read timeout
    started = time.monotonic()
    with pytest.raises(PatsnapError, match="AnswerDeadlineExceeded"):
        PatsnapHook().get_report_job("enterprise", "42")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("body", [PDF[:-20], PDF[:100]], ids=["no-trailer", "a-tenth"])
def test_a_download_cut_short_without_content_length_is_not_stored(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, body: bytes
) -> None:
    connect(monkeypatch, hostile)
    finished(hostile, f"{hostile.url}/dl/r.pdf")
    # No Content-Length and no chunking: the body ends when the server closes the connection.
    hostile.routes["/dl/r.pdf"] = lambda ex: ex.send(
        200, body, {"Content-Type": "application/pdf"}, content_length=False
    )
    with pytest.raises(PatsnapDownloadError, match="no Content-Length was sent: cut short"):
        download(tmp_path)
    assert files_under(tmp_path) == []


def test_an_endless_json_answer_is_cut_at_the_cap(hostile: HostileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, hostile, max_response_bytes=MiB)
    hostile.routes[R001_STATUS] = lambda ex: ex.stream(chain([b'{"data": {"job_id": "'], endless(b"1" * 65536)))
    with pytest.raises(PatsnapResponseError, match=rf"GET {R001_STATUS}.*larger than 1048576 bytes"):
        PatsnapHook().get_report_job("enterprise", "42")


def test_a_compressed_json_bomb_is_refused_while_inflating(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, hostile, max_response_bytes=MiB)
    bomb = gzip.compress(b'{"data": {"x": "' + b"0" * (200 * MiB) + b'"}}', compresslevel=9)
    assert len(bomb) < MiB  # it passes the byte cap on the wire...
    hostile.routes[R001_STATUS] = lambda ex: ex.send(
        200, bomb, {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    with pytest.raises(PatsnapResponseError, match="inflates to more than 1048576 bytes"):  # ...not in memory
        PatsnapHook().get_report_job("enterprise", "42")


def test_a_compressed_answer_within_the_cap_is_read(hostile: HostileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, hostile)
    body = gzip.compress(
        json.dumps({"data": {"job_id": "42", "job_status": 1}, "status": True, "error_code": 0}).encode()
    )
    hostile.routes[R001_STATUS] = lambda ex: ex.send(
        200, body, {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    assert PatsnapHook().get_report_job("enterprise", "42").status.name == "EXPORTING"


DEEP = b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b', "status": true, "error_code": 0}'


def test_deeply_nested_json_is_the_providers_error_on_a_read(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, hostile)
    hostile.routes[R001_STATUS] = lambda ex: ex.send(200, DEEP, {"Content-Type": "application/json"})
    with pytest.raises(PatsnapResponseError, match=rf"GET {R001_STATUS}.*nests deeper than 32 levels"):
        PatsnapHook().get_report_job("enterprise", "42")


def test_deeply_nested_json_from_the_token_endpoint_is_the_providers_error(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, hostile)
    hostile.routes["/oauth/token"] = lambda ex: ex.send(200, DEEP, {"Content-Type": "application/json"})
    with pytest.raises(PatsnapResponseError, match=r"POST /oauth/token.*nests deeper") as info:
        PatsnapHook().get_report_job("enterprise", "42")
    assert info.value.outcome.value == "not_sent"
    assert hostile.calls(R001_STATUS) == []


def test_the_trigger_turns_hostile_json_into_an_event_instead_of_dying(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, hostile)
    hostile.routes[R001_STATUS] = lambda ex: ex.send(200, DEEP, {"Content-Type": "application/json"})
    trigger = PatsnapReportJobTrigger(job_id="42", report_kind="enterprise", end_time=9e9, poll_interval=0.1)

    async def first_event() -> Any:
        try:
            return await trigger.run().__anext__()
        finally:
            await _drivers.close_shared_async_client()

    event = asyncio.run(first_event())
    assert event.payload["status"] == "error" and "nests deeper than 32 levels" in event.payload["message"]


@pytest.mark.parametrize("queue_num", ["²", "1" * 5000, "-3", 1.5, True, {"a": 1}])
def test_an_odd_queue_position_is_dropped_not_a_crash(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, queue_num: Any
) -> None:
    connect(monkeypatch, hostile)
    hostile.routes[R001_STATUS] = lambda ex: ex.envelope({"job_id": "42", "job_status": 0, "queue_num": queue_num})
    job = PatsnapHook().get_report_job("enterprise", "42")
    assert job.status.name == "QUEUED" and job.queue_num is None


# ------------------------------------------------------------------------------------ remote text


def echoes(api_key: str | None = None, *, token: bool = True) -> list[str]:
    """What a hostile server may echo back: every credential and the forms it travels in (the token
    only once one was issued: before that it is just a word)."""
    if api_key:
        return [api_key, f"Bearer {api_key}", f"apikey={api_key}"]
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    return [CLIENT_SECRET, *([TOKEN] if token else []), basic, f"Basic {basic}", f"{CLIENT_ID}:{CLIENT_SECRET}"]


def assert_clean(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret!r} leaked into: {text[:500]}"
    assert CLIENT_SECRET not in text and API_KEY not in text


def test_an_error_message_echoing_credentials_is_masked_in_the_exception_and_the_retry_warnings(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    connect(monkeypatch, hostile, max_retries=2)
    secrets = echoes()
    # 68300008 is retried first (a warning per retry), then raised.
    hostile.routes[R001_STATUS] = lambda ex: ex.envelope(None, 68300008, "you sent " + " and ".join(secrets))
    with pytest.raises(PatsnapError) as info:
        PatsnapHook().get_report_job("enterprise", "42")
    assert "***" in str(info.value)
    assert_clean(str(info.value), secrets)
    output = "".join(capsys.readouterr())  # the task log, as `airflow dags test` shows it (unmasked by Airflow)
    warnings = [line for line in output.splitlines() if "Retrying in" in line]
    assert len(warnings) == 2 and all("***" in w for w in warnings), output[-2000:]
    assert_clean(output, secrets)


def test_an_api_key_echoed_by_the_server_is_masked(hostile: HostileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, hostile, api_key=API_KEY)
    secrets = echoes(API_KEY)
    hostile.routes[R001_CREATE] = lambda ex: ex.envelope(None, 68300004, "bad: " + " ".join(secrets))
    with pytest.raises(PatsnapError) as info:
        PatsnapHook().create_enterprise_report(company_name="ACME")
    assert_clean(str(info.value), secrets)


def test_test_connection_does_not_repeat_an_echoed_secret(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, hostile)
    secrets = echoes(token=False)
    hostile.routes["/oauth/token"] = lambda ex: ex.json(
        {"status": False, "error_code": 67200003, "error_msg": "refused " + " ".join(secrets)}, status=401
    )
    ok, message = PatsnapHook().test_connection()
    assert ok is False and "67200003" in message
    assert_clean(message, secrets)


def test_a_huge_error_message_becomes_a_bounded_one(hostile: HostileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, hostile)
    hostile.routes[R001_CREATE] = lambda ex: ex.envelope(None, 68300004, "\u202ex" * (2 * MiB))
    with pytest.raises(PatsnapError) as info:
        PatsnapHook().create_enterprise_report(company_name="ACME")
    text = str(info.value)
    assert len(text) < 1000 and "more characters cut" in text
    assert "\u202e" not in text and "\\u202e" in text  # a bidi override is shown, not obeyed


def test_a_huge_link_is_refused_with_a_bounded_message(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    connect(monkeypatch, hostile)
    finished(hostile, f"{hostile.url}/dl/" + "a" * MiB + ".pdf?sign=the-signature")
    with ConnectAudit() as audit, pytest.raises(PatsnapDownloadRejectedError) as info:
        download(tmp_path)
    assert len(str(info.value)) < 1000 and "the-signature" not in str(info.value)
    assert {port for _, port in audit.addresses} == {hostile.port} and len(hostile.seen) == 2


SIGNED = {
    "q-signature": "cos0signature0value",
    "X-Amz-Signature": "sigv4signaturevalue",
    "X-Amz-Credential": "AKIAEXAMPLEKEY/20261206/cn-northwest-1/s3/aws4_request",
    "Signature": "ossOrCloudFrontSignature",
    "OSSAccessKeyId": "LTAIossAccessKeyId",
    "Policy": "eyJTdGF0ZW1lbnQiOltdfQ",
    "Key-Pair-Id": "APKAEXAMPLEKEYPAIR",
    "X-Goog-Signature": "googsignaturevalue0",
    "GoogleAccessId": "svc@project.iam.gserviceaccount.com",
}


def test_signed_links_of_every_common_style_stay_out_of_debug_logs(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    connect(monkeypatch, hostile)
    query = "&".join(f"{k}={v}" for k, v in SIGNED.items())
    finished(hostile, f"{hostile.url}/dl/r.pdf?{query}")
    hostile.routes["/dl/r.pdf"] = serve_pdf
    caplog.set_level(logging.DEBUG)
    result = download(tmp_path)
    assert any("/dl/r.pdf" in r.getMessage() for r in caplog.records if r.name.startswith("urllib3"))
    logged = "\n".join(r.getMessage() for r in caplog.records) + json.dumps(result)
    for value in SIGNED.values():
        assert value not in logged


# ------------------------------------------------------------------------------------ file names


@pytest.mark.parametrize(
    ("disposition", "stored"),
    [
        ("attachment; filename*=UTF-8''invoice%E2%80%AEfdp.exe", "invoicefdp.pdf"),  # and the type is what it is
        ('attachment; filename="index.html"', "index.pdf"),
        ('attachment; filename="portfolio.csv"', "portfolio.pdf"),
        ("attachment; filename*=UTF-8''re%E2%80%8Bport%E2%80%A8.pdf", "report.pdf"),
        ('attachment; filename="CON"', "_CON.pdf"),
        ('attachment; filename="nul.pdf"', "_nul.pdf"),
        ('attachment; filename="COM1.pdf"', "_COM1.pdf"),
        ('attachment; filename="report.pdf. . ."', "report.pdf"),
        (
            'attachment; filename=".patsnap-0123456789abcdef0123456789abcdef.part"',
            "patsnap-0123456789abcdef0123456789abcdef.pdf",
        ),
    ],
)
def test_hostile_file_names_are_sanitised_once_for_every_source(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, disposition: str, stored: str
) -> None:
    connect(monkeypatch, hostile)
    finished(hostile, f"{hostile.url}/dl/x.pdf")
    hostile.routes["/dl/x.pdf"] = lambda ex: ex.send(
        200, PDF, {"Content-Type": "application/pdf", "Content-Disposition": disposition}
    )
    result = download(tmp_path)
    assert result["filename"] == stored
    assert [p.name for p in files_under(tmp_path)] == [stored]


def test_a_file_named_like_an_old_staging_file_is_never_swept(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A DAG may name its destination anything; only a dead staging file's exact pattern is swept."""
    connect(monkeypatch, hostile)
    finished(hostile, f"{hostile.url}/dl/x.pdf")
    hostile.routes["/dl/x.pdf"] = serve_pdf
    archive = tmp_path / "archive"
    name = "x.patsnap-0123456789abcdef.part"
    PatsnapHook().download_report("enterprise", "42", str(archive / name))
    os.utime(archive / name, (0, 0))  # old enough to be swept, were it a leftover
    download(tmp_path)  # writes beside it, sweeping dead staging files on the way
    assert sorted(p.name for p in files_under(tmp_path)) == ["R.pdf", name]


def test_netrc_credentials_are_never_sent_to_the_api_or_a_link(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("default login svc-git password Hunter2-ProdToken\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    connect(monkeypatch, hostile, api_key=API_KEY)
    finished(hostile, f"{hostile.url}/dl/r.pdf")
    hostile.routes["/dl/r.pdf"] = serve_pdf
    download(tmp_path)
    (status,) = hostile.calls(R001_STATUS)
    assert status.headers["authorization"] == f"Bearer {API_KEY}"
    (link,) = hostile.calls("/dl/r.pdf")
    assert "authorization" not in link.headers


def test_the_generic_operator_refuses_a_template_rendered_to_none_before_any_connection(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_patsnap.operators.api import PatsnapApiOperator
    from airflow_provider_patsnap.version_compat import AirflowFailException

    connect(monkeypatch, hostile)
    operator = PatsnapApiOperator(
        task_id="api", method="POST", endpoint="/patent-valuation/report", query={"patent_number": "None"}
    )
    with (
        ConnectAudit() as audit,
        pytest.raises(AirflowFailException, match=r"query\.patent_number: is the text 'None'"),
    ):
        operator.execute({})
    assert audit.addresses == [] and hostile.seen == []
