"""A local, standard-library-only model of the PatSnap Open Platform HTTP API.

``PatsnapEmulator`` serves the endpoints the provider uses (OAuth token, R001/R002 report
tasks and their status, P037 legal indicators) on ``127.0.0.1``, plus a separate "CDN"
listener that serves the signed download links, with knobs for the failure modes a client
must survive (token expiry, QPS limits, transient faults, latency, truncated downloads).

It deliberately imports nothing from the rest of the package: it is an independent model of
the remote service, so tests against it can catch client bugs.

Run it stand-alone with ``python -m airflow_provider_patsnap.testing.emulator --port 8089``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import copy
import datetime as dt
import hashlib
import hmac
import io
import json
import math
import random
import re
import secrets
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit
from xml.sax.saxutils import escape as xml_escape

__all__ = ["PatsnapEmulator", "main"]

HOST = "127.0.0.1"
CHUNK_SIZE = 64 * 1024
MAX_BODY = 8 * 1024 * 1024
FIRST_JOB_ID = 1579434053399035905
COS_ACCESS_KEY = "AKIDemulator"
ABNORMAL_CAUSE = "服务器异常\uff0c正在修复中 (server error, being repaired)"

ENTERPRISE = "enterprise"
PATENT_VALUE = "patent_value"
KIND_IDENTIFIERS: dict[str, tuple[str, ...]] = {
    ENTERPRISE: ("company_name", "credit_code", "org_number"),
    PATENT_VALUE: ("patent_number", "patent_id"),
}
REPORT_TITLES = {
    ENTERPRISE: "PatSnap Enterprise Innovation Report",
    PATENT_VALUE: "PatSnap Patent Value Report",
}
MEDIA_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
LEGAL_STATUSES = (
    "Published",
    "Examining",
    "Granted",
    "Abandoned",
    "Withdrawn",
    "Expired",
    "Non-Payment",
    "Ceased",
)
LITIGATION_COUNTRIES = ("US", "CN", "DE", "JP", "EP", "KR", "GB", "FR")
PATENT_NUMBER_RE = re.compile(r"^[A-Z]{2}\d{4,}[A-Z]?\d?$")
PATENT_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
CDN_PATH_RE = re.compile(r"^/tffi-export/(\d{14})/(\d{1,20})/([A-Za-z0-9_.-]+)$")
MAX_BATCH = 100

# PatSnap error codes and messages used by the model.
OK = 0
E_RATE = (67200002, "The current call rate is too fast, exceeding the current configuration limit QPS!")
E_AUTH = (67200003, "Access token expired or authentication error!")
E_BAD_CLIENT = (67200003, "The key and secret are invalid or the client is disabled!")
E_NO_APIKEY = (67200008, "apikey not Pass")
E_APIKEY_MISMATCH = (67200009, "apikey and token do not match, please check whether the token has expired!")
E_GRANT = (67200015, "Grant type error")
E_NOT_FOUND = (67200101, "Path Not Found")
E_APIKEY_AUTH = (67200202, "apikey auth error")
E_INTERNAL = (67200000, "Server Internal Error!")
E_PARAM = (68300004, "Invalid parameter!")
E_BAD_REQUEST = (68300007, "Bad request!")
E_SERVICE = (68300008, "Service error, please try again later!")

GATEWAY_503_HTML = b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"


@dataclass(frozen=True)
class _Route:
    action: str  # "token" | "create" | "status" | "indicators"
    kind: str = ""
    logo: bool = True


R001_BASE = "/innovation/company-report"
R002_BASE = "/patent-valuation-data/patent-report"
ROUTES: dict[tuple[str, str], _Route] = {
    ("POST", "/oauth/token"): _Route("token"),
    ("POST", R001_BASE + "/task/create"): _Route("create", ENTERPRISE, True),
    ("POST", R001_BASE + "/task/create-no-logo"): _Route("create", ENTERPRISE, False),
    ("GET", R001_BASE + "/job_id/status"): _Route("status", ENTERPRISE),
    ("POST", R002_BASE + "/task/create"): _Route("create", PATENT_VALUE, True),
    ("POST", R002_BASE + "/task/create-no-logo"): _Route("create", PATENT_VALUE, False),
    ("GET", R002_BASE + "/job_id/status"): _Route("status", PATENT_VALUE),
    ("GET", "/patent-valuation-data/legal_indicators"): _Route("indicators"),
}


def _empty_stats() -> dict[str, Any]:
    return {
        "calls": {},
        "tokens_issued": 0,
        "creates": 0,
        "creates_by_kind": {ENTERPRISE: 0, PATENT_VALUE: 0},
        "status_polls": 0,
        "downloads_started": 0,
        "downloads_completed": 0,
        "bytes_served": 0,
        "billable_units": 0,
        "faults": 0,
        "rate_limited": 0,
        "auth_rejected": 0,
        "rejected_auth_header_downloads": 0,
        "internal_errors": 0,
    }


# --------------------------------------------------------------------------------------------
# Report files (deterministic, real PDF / DOCX)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ReportFile:
    """A report as served by the CDN: ``head`` + ``pad`` filler bytes (generated lazily) + ``tail``."""

    filename: str
    media_type: str
    head: bytes
    pad: int
    tail: bytes

    @property
    def size(self) -> int:
        return len(self.head) + self.pad + len(self.tail)

    def iter_chunks(self) -> Iterator[bytes]:
        """Yield the file in chunks of at most 64 KiB, never holding the padding in memory."""
        for part in (self.head, None, self.tail):
            if part is None:
                yield from _iter_padding(self.pad)
                continue
            for start in range(0, len(part), CHUNK_SIZE):
                yield part[start : start + CHUNK_SIZE]


_PAD_LINE = b"%" + b"x" * 62 + b"\n"  # a 64-byte PDF comment line
_PAD_BLOCK = _PAD_LINE * (CHUNK_SIZE // len(_PAD_LINE))


def _pad_label(index: int) -> bytes:
    return (b"%%emulator padding block %012d " % index).ljust(63, b".") + b"\n"


def _iter_padding(total: int) -> Iterator[bytes]:
    """Yield ``total`` bytes of PDF comment lines, each 64 KiB block labelled with its index."""
    index = 0
    remaining = total
    while remaining >= CHUNK_SIZE:
        yield _pad_label(index) + _PAD_BLOCK[len(_PAD_LINE) :]
        remaining -= CHUNK_SIZE
        index += 1
    if remaining:
        full, rest = divmod(remaining, len(_PAD_LINE))
        out = (_pad_label(index) + _PAD_LINE * (full - 1)) if full else b""
        if rest == 1:
            out += b"\n"
        elif rest >= 2:
            out += b"%" + b"x" * (rest - 2) + b"\n"
        yield out


def _pdf_text(value: str) -> bytes:
    """Encode a PDF literal string body: ASCII only (non-ASCII escaped), parentheses escaped."""
    text = " ".join(value.split()).encode("ascii", "backslashreplace").decode("ascii")
    text = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return text.encode("ascii")


def _build_pdf(
    title: str,
    lines: Sequence[str],
    doc_title: str,
    target_size: int | None,
) -> tuple[bytes, int, bytes]:
    """Build a valid one-page PDF 1.4, padded to exactly ``target_size`` bytes when given."""
    content = b"BT\n/F1 18 Tf\n72 720 Td\n(" + _pdf_text(title) + b") Tj\n/F1 11 Tf\n"
    for line in lines:
        content += b"0 -20 Td\n(" + _pdf_text(line) + b") Tj\n"
    content += b"ET\n"
    title_hex = (b"\xfe\xff" + doc_title.encode("utf-16-be")).hex().upper().encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Title <" + title_hex + b"> /Producer (PatsnapEmulator) /Creator (PatsnapEmulator) >>",
    ]
    head = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(head))
        head += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    xref += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    xref += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n" % (len(objects) + 1)
    eof = b"\n%%EOF"
    pad = 0
    if target_size is not None:
        fixed = len(xref) + len(eof)
        for digits in range(1, 21):  # startxref = len(head) + pad has `digits` digits
            start = target_size - fixed - digits
            if start >= len(head) and len(str(start)) == digits:
                pad = start - len(head)
                break
    tail = xref + str(len(head) + pad).encode("ascii") + eof
    return head, pad, tail


def _xml_text(value: str) -> str:
    cleaned = "".join(ch for ch in value if ch in "\t\n\r" or ord(ch) >= 0x20)
    return xml_escape(cleaned)


def _build_docx(title: str, lines: Sequence[str]) -> bytes:
    """Build a minimal valid DOCX (Office Open XML) package, byte-for-byte deterministic."""
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        'wordprocessingml.document.main+xml"/></Types>'
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        'officeDocument" Target="word/document.xml"/></Relationships>'
    )
    paragraphs = "".join(
        f'<w:p><w:r><w:t xml:space="preserve">{_xml_text(text)}</w:t></w:r></w:p>' for text in (title, *lines)
    )
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body>{paragraphs}<w:sectPr/></w:body></w:document>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in (
            ("[Content_Types].xml", content_types),
            ("_rels/.rels", rels),
            ("word/document.xml", document),
        ):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, text.encode("utf-8"))
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Patent ids (deterministic and reversible, so any process can resolve an id to its number)
# --------------------------------------------------------------------------------------------

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_MAX_REVERSIBLE_LEN = 18  # bijective base-36 of 18 symbols fits in 96 bits


def _id_keystream(check: bytes) -> bytes:
    return hashlib.sha256(b"patsnap-emulator-patent-id" + check).digest()[:12]


def _encode_number(number: str) -> int | None:
    if len(number) > _MAX_REVERSIBLE_LEN or any(ch not in _ALPHABET for ch in number):
        return None
    value = 0
    for ch in number:
        value = value * 36 + _ALPHABET.index(ch) + 1
    return value


def _decode_number(value: int) -> str:
    chars = []
    while value > 0:
        digit = value % 36 or 36
        chars.append(_ALPHABET[digit - 1])
        value = (value - digit) // 36
    return "".join(reversed(chars))


def _format_uuid(raw: bytes) -> str:
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_LONG_NUMBER_IDS: dict[str, str] = {}
_LONG_NUMBER_LOCK = threading.Lock()


def _patent_id_for(number: str) -> str:
    check = hashlib.sha256(number.encode("utf-8")).digest()[:4]
    encoded = _encode_number(number)
    if encoded is None:  # too long/odd to encode: hash-based id, resolvable in this process only
        pid = _format_uuid(hashlib.sha256(b"patent-id:" + number.encode("utf-8")).digest()[:16])
        with _LONG_NUMBER_LOCK:
            _LONG_NUMBER_IDS[pid] = number
        return pid
    payload = bytes(a ^ b for a, b in zip(encoded.to_bytes(12, "big"), _id_keystream(check), strict=True))
    return _format_uuid(check + payload)


def _number_for_patent_id(patent_id: str) -> str | None:
    if not PATENT_ID_RE.match(patent_id):
        return None
    with _LONG_NUMBER_LOCK:
        if patent_id in _LONG_NUMBER_IDS:
            return _LONG_NUMBER_IDS[patent_id]
    raw = bytes.fromhex(patent_id.replace("-", ""))
    check, payload = raw[:4], raw[4:]
    encoded = int.from_bytes(bytes(a ^ b for a, b in zip(payload, _id_keystream(check), strict=True)), "big")
    number = _decode_number(encoded)
    if not number or hashlib.sha256(number.encode("utf-8")).digest()[:4] != check:
        return None
    return number


def _known_patent_number(number: str) -> bool:
    return "UNKNOWN" not in number.upper() and bool(PATENT_NUMBER_RE.match(number))


def _legal_value(number: str) -> dict[str, Any]:
    h = hashlib.sha256(b"legal:" + number.encode("utf-8")).digest()
    status = LEGAL_STATUSES[h[0] % len(LEGAL_STATUSES)]
    litigation_no = h[2] % 6 if h[2] % 3 == 0 else 0
    n_countries = len(LITIGATION_COUNTRIES)
    countries = [LITIGATION_COUNTRIES[(h[13] + i) % n_countries] for i in range(min(litigation_no, 3))]
    return {
        "granted_no": h[1] % 12 + (1 if status == "Granted" else 0),
        "legal_status": status,
        "litigation_no": litigation_no,
        "patent_age_day": 30 + int.from_bytes(h[3:5], "big") % 7300,
        "invalid_fail_no": h[5] % 3,
        "grant_waiting_day": int.from_bytes(h[6:8], "big") % 1500,
        "has_reexam_invalid": "TRUE" if h[8] % 4 == 0 else "FALSE",
        "invalid_success_no": h[9] % 2,
        "litigation_country": countries,
        "in_application_ratio": round(h[10] / 255, 4),
        "remaining_time_ratio": round(h[11] / 255, 4),
        "avg_originality_index": round(h[12] / 255 * 2, 4),
    }


# --------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------


@dataclass
class _Job:
    job_id: int
    kind: str
    logo: bool
    report_type: str
    params: dict[str, Any]
    created_at: float  # epoch seconds
    created_mono: float
    fails: bool
    name: str
    filename: str
    path: str
    download_attempts: int = 0

    @property
    def subject(self) -> tuple[str, str]:
        """(label, value) of the identifier the report is about."""
        labels = {
            "company_name": "Company",
            "credit_code": "Credit code",
            "org_number": "Organization code",
            "patent_number": "Patent number",
            "patent_id": "Patent id",
        }
        for key in KIND_IDENTIFIERS[self.kind]:
            if self.params.get(key):
                return labels[key], str(self.params[key])
        return "Subject", ""


def _safe_name(value: str, job_id: int) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", value).strip("_-")[:80]
    return cleaned or f"report_{job_id}"


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server on loopback that can drop all of its open connections on stop."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler], emulator: PatsnapEmulator) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((HOST, port), handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # skip HTTPServer's reverse DNS lookup
        self.server_name, self.server_port = HOST, self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Keep stderr quiet: a vanished client is normal, anything else is recorded on the emulator."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            self.emulator._record_error(traceback.format_exc())

    def drop_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _BadRequestError(Exception):
    """The request could not be framed (bad Content-Length, oversize body, bad chunking)."""


class _Handler(BaseHTTPRequestHandler):
    # Headers and body go out in separate writes; with Nagle on, each answer on a kept-alive
    # connection would wait ~40 ms for the client's delayed ACK (a real server sends them together).
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "PatsnapEmulator/1.0"
    sys_version = ""
    timeout = 300
    server: _Server
    _headers_sent = False

    def log_message(self, *args: Any) -> None:
        """Silence the default stderr access log."""

    def version_string(self) -> str:
        return self.server_version

    def end_headers(self) -> None:
        self._headers_sent = True
        super().end_headers()

    @property
    def emu(self) -> PatsnapEmulator:
        return self.server.emulator

    def _handle(self) -> None:
        self._headers_sent = False
        try:
            body = self._read_body()
        except OSError:
            self.close_connection = True
            return
        except (_BadRequestError, ValueError):
            self.close_connection = True
            self._send(400, b"Bad Request", "text/plain; charset=utf-8", close=True)
            return
        try:
            self.dispatch(body)
        except OSError:  # the client went away or the emulator is stopping
            self.close_connection = True
        except Exception:
            self.close_connection = True
            self.emu._record_error(traceback.format_exc())
            if not self._headers_sent:
                with contextlib.suppress(OSError):
                    self._send_json(500, _error(*E_INTERNAL), close=True)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def dispatch(self, body: bytes) -> None:
        raise NotImplementedError

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"x", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                if len(data) + size > MAX_BODY:
                    raise _BadRequestError("body too large")
                data += self.rfile.read(size)
                self.rfile.readline(1024)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        size = int(length)
        if size < 0 or size > MAX_BODY:
            raise _BadRequestError("bad Content-Length")
        return self.rfile.read(size)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Iterable[tuple[str, str]] = (),
        close: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        if close:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(
        self, status: int, payload: Any, headers: Iterable[tuple[str, str]] = (), close: bool = False
    ) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8", headers, close)


def _ok(data: Any) -> dict[str, Any]:
    return {"data": data, "status": True, "error_code": OK}


def _error(code: int, message: str) -> dict[str, Any]:
    return {"status": False, "error_code": code, "error_msg": message}


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


class _ApiHandler(_Handler):
    """The PatSnap API host (``connect.patsnap.com`` in production)."""

    def dispatch(self, body: bytes) -> None:
        emu = self.emu
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        emu._count_call(f"{self.command} {path}")
        emu._pause()
        route = ROUTES.get((self.command, path))
        if route is None:
            self._send_json(404, _error(*E_NOT_FOUND))
            return
        if route.action == "token":
            self._token(body)
            return
        credential = self._authenticate(query)
        if credential is None:
            return
        if not emu._admit(credential):
            self._rate_limited(emu.rate_limit_http_status)
            return
        fault = emu._draw_fault()
        if fault == "service_error":
            self._send_json(200, _error(*E_SERVICE))
        elif fault == "gateway_503":
            self._send(503, GATEWAY_503_HTML, "text/html")
        elif fault == "rate_limited":
            self._rate_limited(429)
        elif route.action == "create":
            self._create(route, body)
        elif route.action == "status":
            self._status(route, query)
        else:
            self._indicators(query)

    def _rate_limited(self, status: int) -> None:
        self._send_json(status, _error(*E_RATE), headers=[("Retry-After", "1")])

    def _token(self, body: bytes) -> None:
        emu = self.emu
        client = _basic_credentials(self.headers.get("Authorization", ""))
        if client is None or not emu._valid_client(*client):
            emu._bump("auth_rejected")
            challenge = [("WWW-Authenticate", 'Basic realm="patsnap"')]
            self._send_json(401, _error(*E_BAD_CLIENT), headers=challenge)
            return
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        if _first(form, "grant_type") != "client_credentials":
            self._send_json(200, _error(*E_GRANT))
            return
        token, ttl = emu._issue_token(client[0])
        self._send_json(
            200,
            {
                "token": token,
                "token_type": "BearerToken",
                "expires_in": math.ceil(ttl),
                "status": "approved",
                "issued_at": str(int(time.time() * 1000)),
            },
        )

    def _authenticate(self, query: dict[str, list[str]]) -> str | None:
        """Return the call's credential (client id or API key); None after answering a rejection."""
        emu = self.emu
        apikey = _first(query, "apikey")
        header = self.headers.get("Authorization", "").strip()
        scheme, _, bearer = header.partition(" ")
        bearer = bearer.strip() if scheme.lower() == "bearer" else ""
        error: tuple[int, str] | None = None
        credential: str | None = None
        if bearer and hmac.compare_digest(bearer.encode(), emu.api_key.encode()):
            if apikey is not None and not hmac.compare_digest(apikey.encode(), emu.api_key.encode()):
                error = E_APIKEY_AUTH
            else:
                credential = emu.api_key
        elif bearer.startswith("sk-"):
            error = E_AUTH  # an unknown API key
        elif bearer:
            if not apikey:
                error = E_NO_APIKEY
            else:
                owner = emu._token_owner(bearer)
                if owner is None:
                    error = E_AUTH
                elif apikey != owner:
                    error = E_APIKEY_MISMATCH
                else:
                    credential = owner
        elif apikey and hmac.compare_digest(apikey.encode(), emu.api_key.encode()):
            credential = emu.api_key  # API-key mode, key passed as the `apikey` URL parameter
        else:
            error = E_AUTH
        if error is not None:
            emu._bump("auth_rejected")
            self._send_json(200, _error(*error))
        return credential

    def _create(self, route: _Route, body: bytes) -> None:
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            payload = None
        if not isinstance(payload, dict):
            self._send_json(200, _error(*E_BAD_REQUEST))
            return
        params = _validate_create(route.kind, payload)
        if params is None:
            self._send_json(200, _error(*E_PARAM))
            return
        job = self.emu._create_job(route.kind, route.logo, params)
        self._send_json(200, _ok({"job_id": job.job_id}))

    def _status(self, route: _Route, query: dict[str, list[str]]) -> None:
        emu = self.emu
        emu._bump("status_polls")
        raw = _first(query, "job_id") or ""
        job = emu._find_job(raw) if re.fullmatch(r"\d{1,20}", raw) else None
        if job is None or job.kind != route.kind:
            self._send_json(200, _error(*E_PARAM))
            return
        status, queue_num = emu._job_state(job)
        data: dict[str, Any] = {"job_id": job.job_id, "queue_num": queue_num, "job_status": status}
        if status == 2:
            data["download_url"] = emu._signed_url(job)
        elif status == 3:
            data["abnormal_cause"] = ABNORMAL_CAUSE
        self._send_json(200, _ok(data))

    def _indicators(self, query: dict[str, list[str]]) -> None:
        numbers = _split_list(_first(query, "patent_number"))
        ids = _split_list(_first(query, "patent_id"))
        if (not numbers and not ids) or len(numbers) > MAX_BATCH or len(ids) > MAX_BATCH:
            self._send_json(200, _error(*E_PARAM))
            return
        records: list[dict[str, Any]] = []
        for number in numbers:
            if _known_patent_number(number):
                records.append({"pn": number, "patent_id": _patent_id_for(number)})
        for patent_id in ids:
            resolved = _number_for_patent_id(patent_id)
            if resolved is not None and _known_patent_number(resolved):
                records.append({"pn": resolved, "patent_id": patent_id})
        for record in records:
            record["patsnap_legal_value"] = _legal_value(record["pn"])
        self.emu._bump("billable_units", len(records))
        self._send_json(200, _ok(records))


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


def _split_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _validate_create(kind: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Return the normalised create parameters, or None when PatSnap would answer 68300004."""
    if payload.get("report_type") not in ("word", "pdf"):
        return None
    params: dict[str, Any] = {"report_type": payload["report_type"]}
    for key in KIND_IDENTIFIERS[kind]:
        value = payload.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or not value.strip():
            return None
        params[key] = value
    given = len(params) - 1
    if given == 0 or (kind == PATENT_VALUE and given > 1):
        return None
    return params


def _cos_error(code: str, message: str) -> bytes:
    request_id = secrets.token_hex(12)
    return (
        "<?xml version='1.0' encoding='utf-8' ?>\n"
        f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
    ).encode()


class _CdnHandler(_Handler):
    """The download host serving COS-style query-string-signed links."""

    server_version = "tencent-cos"

    def _xml(self, status: int, code: str, message: str) -> None:
        self._send(status, _cos_error(code, message), "application/xml")

    def dispatch(self, body: bytes) -> None:
        emu = self.emu
        emu._count_call(f"{self.command} /download")
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
                if ahead > 0:
                    time.sleep(ahead)
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


# --------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------


class PatsnapEmulator:
    """A local PatSnap Open Platform (API + download CDN) on 127.0.0.1, for tests, demos and CI.

    Use it as a context manager (``with PatsnapEmulator() as emu: ...``) or call :meth:`start`
    and :meth:`stop`. The fault knobs (``fault_rate``, ``qps_limit``, ``latency``,
    ``truncate_downloads``, ``truncate_first_download``, ``job_seconds``, ``token_ttl``,
    ``link_ttl``, ``report_size``) are plain attributes and may be changed while it runs.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        cdn_port: int = 0,
        job_seconds: float = 2.0,
        token_ttl: float = 1800.0,
        link_ttl: float = 604800.0,
        fault_rate: float = 0.0,
        qps_limit: float | None = None,
        rate_limit_http_status: int = 429,
        latency: float = 0.0,
        report_size: int | None = None,
        cdn_bandwidth: float | None = None,
        truncate_downloads: int = 0,
        truncate_first_download: bool = False,
        fail_identifiers: Iterable[str] = (),
        seed: int = 0,
        client_id: str | None = None,
        client_secret: str | None = None,
        api_key: str | None = None,
    ) -> None:
        self.job_seconds = job_seconds
        self.token_ttl = token_ttl
        self.link_ttl = link_ttl
        self.fault_rate = fault_rate
        self.qps_limit = qps_limit
        self.rate_limit_http_status = rate_limit_http_status
        self.latency = latency
        self.report_size = report_size
        #: Bytes per second the CDN listener sends at (None: as fast as loopback allows).
        self.cdn_bandwidth = cdn_bandwidth
        self.truncate_downloads = truncate_downloads
        self.truncate_first_download = truncate_first_download
        self.fail_identifiers = frozenset(fail_identifiers)
        self.seed = seed
        self.client_id = client_id if client_id is not None else "emulator-client"
        self.client_secret = client_secret if client_secret is not None else secrets.token_urlsafe(24)
        self.api_key = api_key if api_key is not None else "sk-" + secrets.token_hex(16)
        self._requested_ports = (port, cdn_port)
        self._lock = threading.RLock()
        self._files_lock = threading.Lock()
        self._stopping = threading.Event()
        self._fault_rng = random.Random(seed)
        self._id_rng = random.Random(f"job-ids:{seed}")
        self._last_job_id = FIRST_JOB_ID
        self._signing_key = secrets.token_bytes(32)
        self._stats = _empty_stats()
        self._tokens: dict[str, tuple[str, float]] = {}
        self._windows: dict[str, deque[float]] = {}
        self._jobs: dict[str, _Job] = {}
        self._files: dict[str, _ReportFile] = {}
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self._ports: tuple[int, int] | None = None
        self.errors: list[str] = []  # tracebacks of unexpected emulator errors (should stay empty)

    # ----- lifecycle -----------------------------------------------------------------------

    def start(self) -> PatsnapEmulator:
        """Bind both listeners on 127.0.0.1 and serve in daemon threads; a no-op when running."""
        with self._lock:
            if self._servers:
                return self
            ports = self._ports or self._requested_ports
            self._stopping.clear()
            api = _Server(ports[0], _ApiHandler, self)
            try:
                cdn = _Server(ports[1], _CdnHandler, self)
            except OSError:
                api.server_close()
                raise
            self._servers = [api, cdn]
            self._ports = (api.server_address[1], cdn.server_address[1])
            for server, name in ((api, "api"), (cdn, "cdn")):
                thread = threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.05},
                    name=f"patsnap-emulator-{name}-{server.server_address[1]}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and free the ports; safe to call more than once."""
        with self._lock:
            servers, threads = self._servers, self._threads
            self._servers, self._threads = [], []
        if not servers:
            return
        self._stopping.set()
        for server in servers:
            server.shutdown()
        for server in servers:
            server.drop_connections()
            server.server_close()
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> PatsnapEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return bool(self._servers)

    # ----- addresses and connections -------------------------------------------------------

    @property
    def port(self) -> int:
        return self._bound_ports()[0]

    @property
    def cdn_port(self) -> int:
        return self._bound_ports()[1]

    @property
    def url(self) -> str:
        """Base URL of the API, e.g. ``http://127.0.0.1:8089``."""
        return f"http://{HOST}:{self.port}"

    @property
    def cdn_url(self) -> str:
        """Base URL of the separate download (CDN) listener."""
        return f"http://{HOST}:{self.cdn_port}"

    def _bound_ports(self) -> tuple[int, int]:
        if self._ports is None:
            if all(self._requested_ports):
                return self._requested_ports
            raise RuntimeError("PatsnapEmulator is not started: its ports are not known yet")
        return self._ports

    def connection_uri(self, auth: str = "oauth", **extra: Any) -> str:
        """Return an Airflow connection URI (``auth`` is ``"oauth"`` or ``"api_key"``)."""
        params: dict[str, str] = {"scheme": "http"}
        if auth == "oauth":
            userinfo = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
            netloc = f"{userinfo}@{HOST}:{self.port}"
        elif auth == "api_key":
            netloc = f"{HOST}:{self.port}"
            params["api_key"] = self.api_key
        else:
            raise ValueError(f"auth must be 'oauth' or 'api_key', not {auth!r}")
        for key, value in extra.items():
            params[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return f"patsnap://{netloc}/?{urlencode(params)}"

    def connection_json(self, auth: str = "oauth", **extra: Any) -> str:
        """Return the connection as JSON, e.g. for ``AIRFLOW_CONN_PATSNAP_DEFAULT``."""
        conn: dict[str, Any] = {"conn_type": "patsnap", "host": self.url}
        if auth == "oauth":
            conn.update(login=self.client_id, password=self.client_secret, extra=dict(extra))
        elif auth == "api_key":
            conn["extra"] = {"api_key": self.api_key, **extra}
        else:
            raise ValueError(f"auth must be 'oauth' or 'api_key', not {auth!r}")
        return json.dumps(conn)

    # ----- inspection ----------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters (calls per endpoint, creates, billable units, faults...)."""
        with self._lock:
            return copy.deepcopy(self._stats)

    def reset_stats(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._stats = _empty_stats()

    def expire_tokens(self) -> None:
        """Make every token issued so far expired from now on."""
        with self._lock:
            self._tokens = {token: (owner, -math.inf) for token, (owner, _) in self._tokens.items()}

    def job(self, job_id: str | int) -> dict[str, Any]:
        """Return what the emulator knows about a job (``KeyError`` for an unknown id)."""
        job = self._find_job(str(job_id))
        if job is None:
            raise KeyError(job_id)
        status, queue_num = self._job_state(job)
        with self._lock:
            attempts = job.download_attempts
        return {
            "job_id": str(job.job_id),
            "kind": job.kind,
            "logo": job.logo,
            "params": copy.deepcopy(job.params),
            "report_type": job.report_type,
            "created_at": job.created_at,
            "status": status,
            "queue_num": queue_num,
            "fails": job.fails,
            "filename": job.filename,
            "media_type": MEDIA_TYPES["pdf" if job.report_type == "pdf" else "docx"],
            "download_attempts": attempts,
        }

    def job_ids(self) -> list[str]:
        """Ids of every job created so far, oldest first."""
        with self._lock:
            return list(self._jobs)

    def report_bytes(self, job_id: str | int) -> bytes:
        """Return the exact bytes the CDN serves for the job (only sensible for small reports)."""
        return b"".join(self._report_file(self._require_job(job_id)).iter_chunks())

    def report_sha256(self, job_id: str | int) -> str:
        """SHA-256 hex digest of the job's report, computed by streaming (fine for 1 GiB)."""
        digest = hashlib.sha256()
        for chunk in self._report_file(self._require_job(job_id)).iter_chunks():
            digest.update(chunk)
        return digest.hexdigest()

    def report_size_of(self, job_id: str | int) -> int:
        """Size in bytes of the job's report as served."""
        return self._report_file(self._require_job(job_id)).size

    @staticmethod
    def patent_id_for(number: str) -> str:
        """Return the deterministic, UUID-like patent id the emulator uses for a patent number."""
        return _patent_id_for(number)

    # ----- internals used by the handlers --------------------------------------------------

    def _record_error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)
            self._stats["internal_errors"] += 1

    def _bump(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._stats[name] += amount

    def _count_call(self, key: str) -> None:
        with self._lock:
            calls = self._stats["calls"]
            calls[key] = calls.get(key, 0) + 1

    def _pause(self) -> None:
        delay = self.latency
        if delay and delay > 0:
            self._stopping.wait(delay)

    def _valid_client(self, client_id: str, secret: str) -> bool:
        return hmac.compare_digest(client_id.encode(), self.client_id.encode()) and hmac.compare_digest(
            secret.encode(), self.client_secret.encode()
        )

    def _issue_token(self, owner: str) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        ttl = float(self.token_ttl)
        with self._lock:
            self._tokens[token] = (owner, time.monotonic() + ttl)
            self._stats["tokens_issued"] += 1
        return token, ttl

    def _token_owner(self, token: str) -> str | None:
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None or time.monotonic() >= entry[1]:
            return None
        return entry[0]

    def _admit(self, credential: str) -> bool:
        limit = self.qps_limit
        if limit is None:
            return True
        now = time.monotonic()
        with self._lock:
            window = self._windows.setdefault(credential, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                self._stats["rate_limited"] += 1
                return False
            window.append(now)
            return True

    def _draw_fault(self) -> str | None:
        with self._lock:
            rate = self.fault_rate
            if not rate or rate <= 0 or self._fault_rng.random() >= rate:
                return None
            self._stats["faults"] += 1
            return self._fault_rng.choice(("service_error", "gateway_503", "rate_limited"))

    def _next_job_id(self) -> int:
        while True:
            self._last_job_id += self._id_rng.randint(1, 1 << 20)
            candidate = self._last_job_id
            if int(float(candidate)) != candidate:
                return candidate

    def _create_job(self, kind: str, logo: bool, params: dict[str, Any]) -> _Job:
        identifiers = [str(params[key]) for key in KIND_IDENTIFIERS[kind] if key in params]
        fails = any("FAIL" in value.upper() or value in self.fail_identifiers for value in identifiers)
        now = time.time()
        stamp = dt.datetime.fromtimestamp(now, tz=dt.timezone.utc)
        ext = "pdf" if params["report_type"] == "pdf" else "docx"
        with self._lock:
            job_id = self._next_job_id()
            name = _safe_name(identifiers[0], job_id)
            filename = f"{name}_{stamp:%Y_%m_%d}.{ext}"
            job = _Job(
                job_id=job_id,
                kind=kind,
                logo=logo,
                report_type=params["report_type"],
                params=dict(params),
                created_at=now,
                created_mono=time.monotonic(),
                fails=fails,
                name=name,
                filename=filename,
                path=f"/tffi-export/{stamp:%Y%m%d%H%M%S}/{job_id}/{filename}",
            )
            self._jobs[str(job_id)] = job
            self._stats["creates"] += 1
            self._stats["creates_by_kind"][kind] += 1
            self._stats["billable_units"] += 1
        return job

    def _find_job(self, job_id: str) -> _Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _require_job(self, job_id: str | int) -> _Job:
        job = self._find_job(str(job_id))
        if job is None:
            raise KeyError(job_id)
        return job

    def _job_state(self, job: _Job) -> tuple[int, int]:
        """(job_status, queue_num) by wall time since creation."""
        total = float(self.job_seconds)
        elapsed = time.monotonic() - job.created_mono
        if total <= 0 or elapsed >= total:
            return (3 if job.fails else 2), 0
        fraction = elapsed / total
        if fraction < 1 / 3:
            return 0, max(1, math.ceil(3 * (1 - 3 * fraction)))
        return 1, 0

    def _signature(self, path: str, sign_time: str, disposition: str) -> str:
        sign_key = hmac.new(self._signing_key, sign_time.encode(), hashlib.sha1).hexdigest()
        http_string = f"get\n{path}\nresponse-content-disposition={quote(disposition, safe='')}\nhost\n"
        http_digest = hashlib.sha1(http_string.encode(), usedforsecurity=False).hexdigest()
        string_to_sign = f"sha1\n{sign_time}\n{http_digest}\n"
        return hmac.new(sign_key.encode(), string_to_sign.encode(), hashlib.sha1).hexdigest()

    def _signed_url(self, job: _Job) -> str:
        start = int(time.time())
        end = int(start + float(self.link_ttl))
        sign_time = f"{start};{end}"
        disposition = f"attachment;filename*=UTF-8''{job.filename}"
        sign = (
            f"q-sign-algorithm=sha1&q-ak={COS_ACCESS_KEY}&q-sign-time={sign_time}&q-key-time={sign_time}"
            f"&q-header-list=host&q-url-param-list=response-content-disposition"
            f"&q-signature={self._signature(job.path, sign_time, disposition)}"
        )
        return (
            f"{self.cdn_url}{job.path}?sign={quote(sign, safe='')}"
            f"&response-content-disposition={quote(disposition, safe='')}"
        )

    def _verify_signature(self, path: str, sign: str, disposition: str) -> str:
        """``"ok"``, ``"bad"`` (signature does not match) or ``"expired"``."""
        fields = {key: values[0] for key, values in parse_qs(sign, keep_blank_values=True).items()}
        sign_time = fields.get("q-sign-time", "")
        if (
            fields.get("q-sign-algorithm") != "sha1"
            or fields.get("q-ak") != COS_ACCESS_KEY
            or fields.get("q-key-time") != sign_time
            or not re.fullmatch(r"\d{1,12};\d{1,12}", sign_time)
        ):
            return "bad"
        expected = self._signature(path, sign_time, disposition)
        if not hmac.compare_digest(expected, fields.get("q-signature", "")):
            return "bad"
        start, end = (int(part) for part in sign_time.split(";"))
        now = time.time()
        if now > end or now < start - 60:
            return "expired"
        return "ok"

    def _take_truncation(self, job: _Job) -> bool:
        with self._lock:
            job.download_attempts += 1
            if self.truncate_first_download and job.download_attempts == 1:
                return True
            if self.truncate_downloads > 0:
                self.truncate_downloads -= 1
                return True
            return False

    def _report_file(self, job: _Job) -> _ReportFile:
        key = str(job.job_id)
        with self._files_lock:
            cached = self._files.get(key)
            if cached is not None:
                return cached
            label, subject = job.subject
            title = REPORT_TITLES[job.kind]
            lines = [
                f"{label}: {subject}",
                f"Job ID: {job.job_id}",
                f"Report type: {job.report_type}{'' if job.logo else ' (no logo)'}",
                "Synthetic document generated by PatsnapEmulator for testing.",
            ]
            if job.report_type == "pdf":
                head, pad, tail = _build_pdf(title, lines, f"{title} - {subject}", self.report_size)
                report = _ReportFile(job.filename, MEDIA_TYPES["pdf"], head, pad, tail)
            else:
                report = _ReportFile(job.filename, MEDIA_TYPES["docx"], _build_docx(title, lines), 0, b"")
            self._files[key] = report
            return report


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_patsnap.testing.emulator",
        description="Serve a local PatSnap Open Platform emulator on 127.0.0.1 until SIGINT/SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=8089, help="API port (0 = any free port; default 8089)")
    parser.add_argument("--cdn-port", type=int, default=0, help="download (CDN) port (default: any)")
    parser.add_argument("--job-seconds", type=float, default=2.0, help="report generation time (default 2)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="probability of a transient fault")
    parser.add_argument("--token-ttl", type=float, default=1800.0, help="OAuth token lifetime in seconds")
    parser.add_argument("--link-ttl", type=float, default=604800.0, help="download link lifetime in seconds")
    parser.add_argument("--qps-limit", type=float, default=None, help="requests per second per credential")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API answer")
    parser.add_argument("--report-size", type=int, default=None, help="pad PDF reports to this many bytes")
    parser.add_argument(
        "--fail-identifier", action="append", default=[], help="identifier whose report fails (repeatable)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for faults and job ids")
    parser.add_argument("--client-id", default=None)
    parser.add_argument("--client-secret", default=None)
    parser.add_argument("--api-key", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator from the command line; prints its URL and connection, serves until signalled."""
    args = _parser().parse_args(argv)
    emulator = PatsnapEmulator(
        port=args.port,
        cdn_port=args.cdn_port,
        job_seconds=args.job_seconds,
        fault_rate=args.fault_rate,
        token_ttl=args.token_ttl,
        link_ttl=args.link_ttl,
        qps_limit=args.qps_limit,
        latency=args.latency,
        report_size=args.report_size,
        fail_identifiers=args.fail_identifier,
        seed=args.seed,
        client_id=args.client_id,
        client_secret=args.client_secret,
        api_key=args.api_key,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
    emulator.start()
    try:
        print(f"PATSNAP_EMULATOR_URL={emulator.url}")
        print(f"AIRFLOW_CONN_PATSNAP_DEFAULT={emulator.connection_json()}", flush=True)
        print(
            f"PatSnap emulator: API {emulator.url}, downloads {emulator.cdn_url}; stop with Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
