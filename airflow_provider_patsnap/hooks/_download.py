"""Fetching a finished report from its signed link: link policy, streaming, size and type checks.

The link is PatSnap's CDN, not the API: it is self-signed, so the request carries no PatSnap
credentials, and its query (the signature) is never logged.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
import zipfile
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

import requests
from urllib3.exceptions import HTTPError

from airflow_provider_patsnap.errors import (
    PatsnapDownloadError,
    PatsnapDownloadRejectedError,
    PatsnapPermanentError,
    error_from_download_status,
)
from airflow_provider_patsnap.hooks._deadline import deadline
from airflow_provider_patsnap.hooks._drivers import new_session
from airflow_provider_patsnap.hooks._urls import Allowance, safe_link, url_refusal
from airflow_provider_patsnap.models import ReportJob
from airflow_provider_patsnap.redaction import remote_text
from airflow_provider_patsnap.staging import publish, sha256_of, staged_file
from airflow_provider_patsnap.storage import Destination, filename_from_link, sanitize_filename, user_uri

DOWNLOAD_CHUNK = 1024 * 1024
#: A PDF's ``%%EOF`` must be in its last kilobyte (PDF 1.7, 7.5.5); a little slack for trailing bytes.
_TAIL = 2048
MAX_REDIRECTS = 5
MEDIA_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


class ReportDownloader:
    """Streams reports from signed links to storage with constant memory; one per hook.

    Every byte is checked before anything is published: each hop of the link passes the URL gate;
    the body is never content-decoded (size and sha256 describe what was sent and stored), is at
    most ``max_bytes`` long and arrives within ``deadline`` seconds; a PDF must end with its
    ``%%EOF`` trailer and a DOCX must be a whole, readable zip, so a body cut short without a
    ``Content-Length`` is caught.
    """

    def __init__(
        self,
        log: logging.Logger | Any,
        timeout: tuple[float, float],
        *,
        max_bytes: int = 1024 * 1024 * 1024,
        deadline: float = 900.0,
        allow_private: Allowance = False,
    ) -> None:
        self.log = log
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.allow_private = allow_private
        self.session = new_session()  # no PatSnap auth header: signed CDN links must not see it
        # Size and sha256 must describe the stored bytes: no compression asked for, none undone.
        self.session.headers["Accept-Encoding"] = "identity"

    def fetch(
        self, job: ReportJob, target: Destination, *, overwrite: bool, chunk_size: int = DOWNLOAD_CHUNK
    ) -> dict[str, Any]:
        """One attempt: stream ``job``'s file to a staging file, verify it, then publish it."""
        # A read timeout restarts with every byte: the watch ends a dripped download on time.
        with deadline(self.deadline) as watch:
            try:
                return self._fetch(job, target, overwrite, chunk_size)
            except (PatsnapDownloadError, PatsnapDownloadRejectedError):
                if not watch.expired:
                    raise
        raise PatsnapDownloadError(
            f"the download took longer than the connection's download_timeout ({self.deadline:.0f} s)",
            endpoint=f"GET {job.report_kind.status_path}",
        )

    def _fetch(self, job: ReportJob, target: Destination, overwrite: bool, chunk_size: int) -> dict[str, Any]:
        kind = job.report_kind
        if not job.is_done():
            raise PatsnapPermanentError(
                f"{job.describe()}: the report is not ready yet; wait for it (PatsnapReportJobSensor) first",
                endpoint=f"GET {kind.status_path}",
            )
        url = job.download_url or ""
        started = time.monotonic()
        response, url = self._open(url)
        link = safe_link(url)
        endpoint = f"GET {link}"
        with response:
            if response.status_code != 200:
                raise error_from_download_status(endpoint=endpoint, http_status=response.status_code)
            self._check_headers(response.headers, endpoint)
            fallback = f"{kind.value}_{job.job_id}"
            offered = sanitize_filename(filename_from_link(url, response.headers.get("Content-Disposition")), fallback)
            # Staged beside where it will be published; the final name waits for what the bytes are.
            provisional = target.resolve(fallback)
            self.log.info("Downloading %s report %s from %s to %s", kind.code, job.job_id, link, target.raw)
            with staged_file(provisional, key=f"{kind.value}:{job.job_id}") as (handle, local_path):
                size, digest, extension = self._stream(
                    response, handle, local_path, offered, chunk_size, endpoint, started
                )
                # The server names the file, but not its type: a PDF is never stored as index.html.
                filename = with_extension(offered, extension) if target.is_folder else offered
                final = target.resolve(filename)
                result = {
                    "uri": user_uri(final),
                    "filename": final.name,
                    "size": size,
                    "sha256": digest,
                    "media_type": MEDIA_TYPES[extension],
                    "job_id": job.job_id,
                    "report_kind": kind.value,
                }
                try:
                    publish(final, local_path, overwrite=overwrite)
                except FileExistsError:
                    self._accept_existing(final, size, digest, endpoint)
                    return result
        self.log.info("Stored %s (%d bytes, sha256 %s).", result["uri"], size, digest)
        return result

    def _open(self, url: str) -> tuple[requests.Response, str]:
        """GET the link, following redirects by hand so every hop passes the URL gate, judged on the
        very URL the HTTP client will send."""
        for _ in range(MAX_REDIRECTS + 1):
            link = safe_link(url)
            prepared = None
            refusal = url_refusal(url, allow_private=self.allow_private)
            if refusal is None:
                try:
                    prepared = self.session.prepare_request(requests.Request("GET", url))
                except (requests.RequestException, ValueError):
                    refusal = "it is not a valid URL"
                else:
                    refusal = url_refusal(prepared.url or "", allow_private=self.allow_private)
            if refusal or prepared is None:
                raise PatsnapDownloadRejectedError(
                    f"refusing the download link ({link}): {refusal}", endpoint=f"GET {link}"
                )
            try:
                response = self.session.send(prepared, stream=True, timeout=self.timeout, allow_redirects=False)
            except requests.RequestException as exc:
                raise PatsnapDownloadError(f"download failed: {type(exc).__name__}", endpoint=f"GET {link}") from None
            location = response.headers.get("Location")
            if not response.is_redirect or not location:
                return response, url
            response.close()
            try:
                url = urljoin(url, location)
            except ValueError:
                raise PatsnapDownloadRejectedError(
                    "refusing the download link's redirect: not a valid URL", endpoint=f"GET {link}"
                ) from None
        raise PatsnapDownloadError(f"more than {MAX_REDIRECTS} redirects", endpoint=f"GET {safe_link(url)}")

    def _check_headers(self, headers: Mapping[str, str], endpoint: str) -> None:
        """Refuse what the headers already give away: an encoded body, or one larger than the cap."""
        encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            raise PatsnapDownloadRejectedError(
                f"the download came {remote_text(encoding, 40)}-encoded although none was asked for; the "
                "provider stores reports exactly as sent and decodes nothing: nothing was stored",
                endpoint=endpoint,
            )
        expected = headers.get("Content-Length")
        if expected is not None and expected.isascii() and expected.isdigit() and int(expected) > self.max_bytes:
            raise PatsnapDownloadRejectedError(
                f"the report would be {expected} bytes, more than the connection's max_download_bytes "
                f"({self.max_bytes}); nothing was stored",
                endpoint=endpoint,
            )

    def _accept_existing(self, final: Any, size: int, digest: str, endpoint: str) -> None:
        """A file already at ``final`` is success if it is this report (a retry after the upload);
        anything else is an error naming both."""
        existing_size, existing_digest = sha256_of(final)
        if (existing_size, existing_digest) == (size, digest):
            self.log.info("%s already holds this report (same size and sha256): nothing to do.", user_uri(final))
            return
        raise PatsnapDownloadRejectedError(
            f"{user_uri(final)} already exists with other content ({existing_size} bytes, sha256 "
            f"{existing_digest}) than this report ({size} bytes, sha256 {digest}); set overwrite=True to "
            "replace it, or archive to another destination",
            endpoint=endpoint,
        )

    def _stream(
        self,
        response: requests.Response,
        handle: Any,
        local_path: str,
        filename: str,
        chunk_size: int,
        endpoint: str,
        started: float,
    ) -> tuple[int, str, str]:
        expected = response.headers.get("Content-Length")
        size = 0
        head = b""
        tail = b""
        digest = hashlib.sha256()
        deadline = started + self.deadline
        with BackgroundWriter(handle) as writer:
            try:
                # Raw bytes: a Content-Encoding is refused above, never undone here.
                for chunk in response.raw.stream(chunk_size, decode_content=False):
                    if len(head) < 8:
                        head += chunk[:8]
                    tail = chunk[-_TAIL:] if len(chunk) >= _TAIL else (tail + chunk)[-_TAIL:]
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise PatsnapDownloadRejectedError(
                            f"the download passed the connection's max_download_bytes ({self.max_bytes}) "
                            "and was stopped; nothing was stored",
                            endpoint=endpoint,
                        )
                    if time.monotonic() > deadline:
                        raise PatsnapDownloadError(
                            f"the download took longer than the connection's download_timeout ({self.deadline:.0f} s) "
                            f"after {size} bytes",
                            endpoint=endpoint,
                        )
                    # Hash the chunk while it is hot in this core's cache; the write (a copy into the
                    # page cache, or a disk) runs meanwhile in the writer thread.
                    digest.update(chunk)
                    writer.write(chunk)
            except (requests.RequestException, HTTPError, OSError) as exc:
                raise PatsnapDownloadError(
                    f"download cut short after {size} bytes ({type(exc).__name__})", endpoint=endpoint
                ) from None
        length_known = expected is not None and expected.isascii() and expected.isdigit()
        if length_known and int(expected) != size:  # type: ignore[arg-type]
            raise PatsnapDownloadError(f"download cut short: got {size} of {expected} bytes", endpoint=endpoint)
        handle.flush()
        extension = report_type_of(
            head,
            tail,
            local_path,
            filename,
            response.headers,
            endpoint,
            length_known=length_known,
            max_inflated=4 * self.max_bytes,
        )
        return size, digest.hexdigest(), extension


def with_extension(name: str, extension: str) -> str:
    """``name`` ending in ``.extension`` (the type the bytes were verified to be), replacing another one."""
    if name.lower().endswith(f".{extension}"):
        return name
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return sanitize_filename(f"{stem}.{extension}", f"report.{extension}")


class BackgroundWriter:
    """Writes chunks to ``handle`` in a thread fed by the copy loop, so the write overlaps hashing and
    reading the next chunk (file writes and hashlib release the GIL). At most ``depth`` chunks wait:
    memory stays bounded. A write error is raised by the next ``write`` or on leaving the block."""

    def __init__(self, handle: Any, depth: int = 8) -> None:
        self._handle = handle
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="patsnap-writer", daemon=True)

    def __enter__(self) -> BackgroundWriter:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self._finish()
        if exc_type is None and self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:  # after a failure, drain the queue so the producer never blocks
                try:
                    self._handle.write(chunk)
                except BaseException as exc:  # handed to the copy loop's thread
                    self._error = exc

    def write(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def _finish(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def report_type_of(
    head: bytes,
    tail: bytes,
    local_path: str,
    filename: str,
    headers: Mapping[str, str],
    endpoint: str,
    *,
    length_known: bool = True,
    max_inflated: int = 4 * 1024 * 1024 * 1024,
) -> str:
    """``pdf`` or ``docx`` when the bytes are a whole one; raise otherwise.

    A file that starts like a report but is not whole (no ``%%EOF`` in a PDF's last kilobyte, a zip
    that does not read back) was cut short when nothing said how long it should be (no
    ``Content-Length``): a transient error, fetched again. With a length that was met, or when it
    does not even start like a report (an HTML error page, junk), it is not a report: refused.
    """
    kind, whole = _sniff(head, tail, local_path, max_inflated)
    if kind is not None and whole:
        return kind
    if kind is not None and not length_known:
        raise PatsnapDownloadError(
            f"the {kind.upper()} is not whole (no %%EOF trailer, or not a readable zip) and no Content-Length "
            "was sent: cut short; nothing was stored",
            endpoint=endpoint,
        )
    content_type = remote_text(headers.get("Content-Type", "unknown"), 80)
    broken = " (it starts like one but is not whole)" if kind else ""
    raise PatsnapDownloadRejectedError(
        f"downloaded {filename!r} is not a PDF or DOCX report{broken} (Content-Type {content_type}, "
        f"starts with {head[:8]!r}); nothing was stored",
        endpoint=endpoint,
    )


def _sniff(head: bytes, tail: bytes, local_path: str, max_inflated: int) -> tuple[str | None, bool]:
    """What the bytes start like, and whether they are a whole one of it. A zip is read back (every
    member's CRC) only while its members inflate to at most ``max_inflated`` bytes in all."""
    if head.startswith(b"%PDF-"):
        return "pdf", b"%%EOF" in tail[-_TAIL:]
    if not head.startswith(b"PK\x03\x04"):
        return None, False
    try:
        with zipfile.ZipFile(local_path) as archive:
            names = archive.namelist()
            if sum(info.file_size for info in archive.infolist()) > max_inflated:
                return None, False  # a zip bomb is not a report
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError):
        return "docx", False
    if broken is not None:
        return "docx", False
    return ("docx", True) if "word/document.xml" in names else (None, False)  # a whole zip, not a document
