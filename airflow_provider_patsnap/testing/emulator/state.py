"""The emulator object: lifecycle, knobs, addresses, stats, tokens, rate limits, faults, link signing."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import math
import random
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from .api import _ApiHandler
from .cdn import _CdnHandler
from .jobs import _Job, _JobBook
from .patents import _patent_id_for
from .protocol import COS_ACCESS_KEY, ENTERPRISE, FIRST_JOB_ID, HOST, MEDIA_TYPES, PATENT_VALUE
from .reports import _ReportFile
from .server import _Server


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


class PatsnapEmulator(_JobBook):
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
