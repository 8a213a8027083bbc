"""Fetching a finished report from its signed link: link policy, streaming, size and type checks.

The link is PatSnap's CDN, not the API: it is self-signed, so the request carries no PatSnap
credentials, and its query (the signature) is never logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from http.client import HTTPException
from types import SimpleNamespace
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
from airflow_provider_patsnap.hooks._deadline import Watch, deadline
from airflow_provider_patsnap.hooks._drivers import new_session
from airflow_provider_patsnap.hooks._urls import Allowance, safe_link, url_refusal
from airflow_provider_patsnap.models import ReportJob
from airflow_provider_patsnap.redaction import remote_text
from airflow_provider_patsnap.staging import publish, sha256_of, staged_file
from airflow_provider_patsnap.storage import Destination, filename_from_link, sanitize_filename, user_uri

#: The one buffer a download is read into, hashed and written from. It fits a core's L2 cache (hash
#: and write read it back from there); much larger, and the sender stalls on a full socket buffer
#: while it is processed. 1 MiB costs ~5% more CPU per GiB (more, shorter system calls).
DOWNLOAD_CHUNK = 2 * 1024 * 1024
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
                return self._fetch(job, target, overwrite, chunk_size, watch)
            except (PatsnapDownloadError, PatsnapDownloadRejectedError):
                if not watch.expired:
                    raise
        raise PatsnapDownloadError(
            f"the download took longer than the connection's download_timeout ({self.deadline:.0f} s)",
            endpoint=f"GET {job.report_kind.status_path}",
        )

    def _fetch(
        self, job: ReportJob, target: Destination, overwrite: bool, chunk_size: int, watch: Watch
    ) -> dict[str, Any]:
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
                with watching_body(response.raw, watch):
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
        length_known = expected is not None and expected.isascii() and expected.isdigit()
        digest = hashlib.sha256()
        deadline = started + self.deadline
        # One buffer for the whole body, read into, hashed and written from while it is hot in this
        # core's cache: no allocation per chunk (fresh pages cost a fault each), no thread hand-off.
        buffer = memoryview(bytearray(max(1, chunk_size)))
        read_into = _body_reader(response.raw)
        size = 0
        try:
            while True:
                room = self.max_bytes - size + 1  # one byte past the cap is enough to know
                count = read_into(buffer if room >= len(buffer) else buffer[:room])
                if not count:
                    break
                size += count
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
                chunk = buffer if count == len(buffer) else buffer[:count]
                digest.update(chunk)
                handle.write(chunk)
        except (requests.RequestException, HTTPError, HTTPException, OSError) as exc:
            raise PatsnapDownloadError(
                f"download cut short after {size} bytes ({type(exc).__name__})", endpoint=endpoint
            ) from None
        if length_known and int(expected) != size:  # type: ignore[arg-type]
            raise PatsnapDownloadError(f"download cut short: got {size} of {expected} bytes", endpoint=endpoint)
        handle.flush()
        # The type is judged on the bytes stored, and only the few it needs: no bookkeeping per chunk.
        fd = handle.fileno()
        head = os.pread(fd, 8, 0)
        tail = os.pread(fd, _TAIL, max(0, size - _TAIL))
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


@contextlib.contextmanager
def watching_body(raw: Any, watch: Watch) -> Iterator[None]:
    """Within the block, ``watch``'s deadline shuts the socket the body arrives on.

    The watch knows the pool's connection, but a ``Connection: close`` answer takes the socket away
    from it (``http.client`` hands it to the response), and a read that fills a whole buffer from a
    trickling body may block far past the deadline: the watch gets the socket itself.
    """
    sock = _socket_of(raw)
    try:
        if sock is not None:
            watch.use(SimpleNamespace(sock=sock))
        yield
    finally:
        if sock is not None:
            sock.close()


def _socket_of(raw: Any) -> socket.socket | None:
    """A duplicate of the body's socket (shutting it down ends the connection for every descriptor of
    it), or None when there is no socket beneath (another transport, a test double)."""
    try:
        duplicate = os.dup(raw.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    try:
        return socket.socket(fileno=duplicate)
    except OSError:  # not a socket
        os.close(duplicate)
        return None


def _body_reader(raw: Any) -> Callable[[memoryview], int]:
    """``readinto`` for the response body as sent: never content-decoded (a ``Content-Encoding`` is
    refused before), and the only reader of it.

    urllib3's reads return a new ``bytes`` per call (and copy it once more for ``readinto``); the
    ``http.client`` response beneath fills the caller's buffer straight from the socket, undoing only
    the chunked transfer framing, and stops at ``Content-Length``. Anything else (another transport,
    a test double) is read through urllib3, with ``decode_content=False``.
    """
    read_into = getattr(getattr(raw, "_fp", None), "readinto", None)
    # Only while urllib3 has read none of the body: it would hold bytes the file beneath no longer has.
    if callable(read_into) and getattr(raw, "_fp_bytes_read", None) == 0:
        return read_into  # type: ignore[no-any-return]

    def copy_into(target: memoryview) -> int:
        data = raw.read(len(target), decode_content=False)
        target[: len(data)] = data
        return len(data)

    return copy_into


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
