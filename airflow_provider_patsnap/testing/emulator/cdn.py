"""The download (CDN) host: COS-style query-string-signed links, COS XML errors, paced streaming."""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qs, unquote, urlsplit

from .protocol import CDN_PATH_RE
from .server import _first, _Handler


def _cos_error(code: str, message: str) -> bytes:
    request_id = secrets.token_hex(12)
    return (
        "<?xml version='1.0' encoding='utf-8' ?>\n"
        f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
    ).encode()


# COS error codes for the statuses an outage window may answer (anything else: InternalError).
_COS_OUTAGE_ERRORS = {
    502: ("BadGateway", "Bad gateway, please try again later."),
    503: ("ServiceUnavailable", "Service is unavailable. Please retry."),
    504: ("GatewayTimeout", "Gateway timeout, please try again later."),
}
_COS_INTERNAL_ERROR = ("InternalError", "We encountered an internal error. Please try again.")


class _CdnHandler(_Handler):
    """The download host serving COS-style query-string-signed links."""

    server_version = "tencent-cos"

    def _xml(self, status: int, code: str, message: str) -> None:
        self._send(status, _cos_error(code, message), "application/xml")

    def dispatch(self, body: bytes) -> None:
        emu = self.emu
        emu._count_call(f"{self.command} /download")
        outage = emu._outage_status(("cdn",))
        if outage is not None:
            self._xml(outage, *_COS_OUTAGE_ERRORS.get(outage, _COS_INTERNAL_ERROR))
            return
        if self.command not in ("GET", "HEAD"):
            self._xml(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
            return
        if "Authorization" in self.headers:
            emu._bump("rejected_auth_header_downloads")
            self._xml(400, "InvalidArgument", "Authorization header not allowed with query-string signature")
            return
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        sign = _first(query, "sign")
        disposition = _first(query, "response-content-disposition") or ""
        if not sign:
            self._xml(403, "AccessDenied", "Access Denied.")
            return
        verdict = emu._verify_signature(path, sign, disposition)
        if verdict == "bad":
            self._xml(403, "SignatureDoesNotMatch", "The Signature you specified is invalid.")
            return
        if verdict == "expired":
            self._xml(403, "AccessDenied", "Request has expired")
            return
        match = CDN_PATH_RE.match(path)
        job = emu._find_job(match.group(2)) if match else None
        if job is None or job.path != path:
            self._xml(404, "NoSuchKey", "The specified key does not exist.")
            return
        report = emu._report_file(job)
        truncate = self.command == "GET" and emu._take_truncation(job)
        self.send_response(200)
        self.send_header("Content-Type", report.media_type)
        self.send_header("Content-Length", str(report.size))
        self.send_header("Content-Disposition", disposition)
        self.send_header("Accept-Ranges", "none")
        self.end_headers()
        if self.command == "HEAD":
            return
        emu._bump("downloads_started")
        limit = report.size // 2 if truncate else report.size
        written = 0
        started = time.monotonic()
        for block in report.iter_chunks():
            bandwidth = emu.cdn_bandwidth
            if bandwidth:
                # Pace to a real link's speed: a CDN, not loopback memory copies.
                ahead = written / bandwidth - (time.monotonic() - started)
                if ahead > 0 and emu._stopping.wait(ahead):
                    raise ConnectionAbortedError("the emulator is stopping")
            chunk = block[: limit - written]
            written += len(chunk)
            done = written >= limit
            # Count before writing, so the counters are final by the time the client has the bytes.
            emu._bump("bytes_served", len(chunk))
            if done and not truncate:
                emu._bump("downloads_completed")
            try:
                self.wfile.write(chunk)
            except OSError:
                if done and not truncate:
                    emu._bump("downloads_completed", -1)
                raise
            if done:
                break
        if truncate:
            self.close_connection = True  # the body stops short of Content-Length
