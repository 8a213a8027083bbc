"""The emulator object: lifecycle, knobs, addresses, inspection (the rest is in its mixins)."""

from __future__ import annotations

import copy
import hashlib
import json
import random
import secrets
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlencode

from .access import _AccessBook
from .api import _ApiHandler
from .cdn import _CdnHandler
from .faults import FAULT_KINDS, _FaultBook, _Outage
from .jobs import _Job, _JobBook
from .links import _LinkSigner
from .patents import _patent_id_for
from .protocol import FIRST_JOB_ID, HOST, MEDIA_TYPES
from .reports import _ReportFile
from .server import _Server
from .stats import _empty_stats

#: The emulator's CDN is on loopback: the networks its connections allow download links to.
LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"


class PatsnapEmulator(_JobBook, _AccessBook, _FaultBook, _LinkSigner):
    """A local PatSnap Open Platform (API + download CDN) on 127.0.0.1, for tests, demos and CI.

    Use it as a context manager (``with PatsnapEmulator() as emu: ...``) or call :meth:`start`
    and :meth:`stop`. Endpoints: OAuth token; R001/R002 create (logo and no-logo) and status;
    P035-P040 batch indicators; a separate CDN listener for the signed download links.

    Knobs: plain attributes (each also a keyword of the constructor) that may be changed while it runs:

    * ``job_seconds`` (2.0): report generation time; ``fail_identifiers``: identifiers whose report
      fails (status 3), as does any identifier containing ``FAIL``.
    * ``generation_slots`` (None): PatSnap's queue. Jobs wait in creation order for one of this many
      generators (status 0, ``queue_num`` = position), then take ``job_seconds`` each, or a seeded
      draw from ``job_seconds_range`` (e.g. ``(60, 600)``: PatSnap's documented 1-10 minutes).
    * ``token_ttl`` (1800 s), ``link_ttl`` (7 days): OAuth token and signed link lifetimes.
    * ``single_active_token`` (False): issuing a token to a client revokes that client's earlier
      tokens (calls with them get 67200003), as PatSnap does.
    * ``qps_limit`` (None) per credential, answered 67200002 with ``rate_limit_http_status`` (429).
    * ``fault_rate`` (0.0): probability that an authenticated API call gets a transient fault
      (68300008, an HTML 503 or a 429) instead of being served; drawn from ``seed``.
      ``create_fault_kinds`` (all three: ``"service_error"``, ``"gateway_503"``, ``"rate_limited"``)
      narrows what a create may get (the job is never made when a fault answers).
    * ``latency`` (0.0): seconds added to every API answer.
    * ``create_gateway_timeouts`` (0) and ``create_gateway_status`` (504): the next N report creates
      (R001/R002, any logo variant) create and bill their job, then answer that status with an
      nginx-style HTML gateway page (``text/html``) instead of the envelope; decremented per create.
      ``indicator_gateway_timeouts`` (0): the same for the next N indicator batches (P035-P040): their
      results are billed, and the client sees only the gateway page.
    * ``echo_wrong_job_id`` (False): the status endpoints answer with a ``job_id`` that went through
      a double (``int(float(id))``, +1 should that equal the id); the rest of the answer is right.
    * ``colliding_file_names`` (False): jobs created while it is on all download as ``report.pdf`` /
      ``report.docx`` (link path and ``response-content-disposition``), so they collide in a folder.
    * ``report_size`` (None): pad PDF reports to exactly this many bytes (generated lazily).
    * ``cdn_bandwidth`` (None): bytes per second the CDN sends at (e.g. ``2 * 1024 * 1024``).
    * ``truncate_downloads`` (0): the next N downloads stop at half of ``Content-Length``;
      ``truncate_first_download`` (False): the first download of every job does.

    Methods: :meth:`outage` / :meth:`end_outages` (timed outage windows per endpoint or the CDN),
    :meth:`expire_tokens`, :attr:`stats` / :meth:`reset_stats` / :meth:`billed` (counters and
    per-endpoint billing), :meth:`job` / :meth:`job_ids` / :meth:`report_bytes` (what was created).
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
        create_gateway_timeouts: int = 0,
        create_gateway_status: int = 504,
        single_active_token: bool = False,
        echo_wrong_job_id: bool = False,
        colliding_file_names: bool = False,
        generation_slots: int | None = None,
        job_seconds_range: tuple[float, float] | None = None,
        seed: int = 0,
        client_id: str | None = None,
        client_secret: str | None = None,
        api_key: str | None = None,
    ) -> None:
        self.job_seconds = job_seconds
        self.token_ttl = token_ttl
        self.link_ttl = link_ttl
        self.fault_rate = fault_rate
        self.create_fault_kinds: tuple[str, ...] = FAULT_KINDS
        self.qps_limit = qps_limit
        self.rate_limit_http_status = rate_limit_http_status
        self.latency = latency
        self.report_size = report_size
        #: Bytes per second the CDN listener sends at (None: as fast as loopback allows).
        self.cdn_bandwidth = cdn_bandwidth
        self.truncate_downloads = truncate_downloads
        self.truncate_first_download = truncate_first_download
        self.fail_identifiers = frozenset(fail_identifiers)
        self.create_gateway_timeouts = create_gateway_timeouts
        self.indicator_gateway_timeouts = 0
        self.create_gateway_status = create_gateway_status
        self.single_active_token = single_active_token
        self.echo_wrong_job_id = echo_wrong_job_id
        self.colliding_file_names = colliding_file_names
        self.generation_slots = generation_slots
        self.job_seconds_range = job_seconds_range
        self._slot_free: list[float] = []
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
        self._statement: dict[
            tuple[str, str], list[int]
        ] = {}  # (day, path) -> [calls, units]: not reset by reset_stats
        self._tokens: dict[str, tuple[str, float]] = {}
        self._windows: dict[str, deque[float]] = {}
        self._outages: list[_Outage] = []
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
        """Return an Airflow connection URI (``auth`` is ``"oauth"`` or ``"api_key"``). Its download
        links are on loopback, so the connection allows links there (``allow_private_addresses``)."""
        extra = {"allow_private_addresses": LOOPBACK_NETWORKS, **extra}
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
        """Return the connection as JSON, e.g. for ``AIRFLOW_CONN_PATSNAP_DEFAULT`` (links allowed on loopback)."""
        extra = {"allow_private_addresses": LOOPBACK_NETWORKS, **extra}
        conn: dict[str, Any] = {"conn_type": "patsnap", "host": self.url}
        if auth == "oauth":
            conn.update(login=self.client_id, password=self.client_secret, extra=dict(extra))
        elif auth == "api_key":
            conn["extra"] = {"api_key": self.api_key, **extra}
        else:
            raise ValueError(f"auth must be 'oauth' or 'api_key', not {auth!r}")
        return json.dumps(conn)

    # ----- inspection ----------------------------------------------------------------------

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
            # Epoch seconds the report is (or was) done, when the queue model knows it in advance.
            "done_at": None if job.done_mono is None else job.created_at + (job.done_mono - job.created_mono),
            "generation_seconds": None if job.done_mono is None else job.done_mono - (job.started_mono or 0),
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

    def _pause(self) -> None:
        delay = self.latency
        if delay and delay > 0:
            self._stopping.wait(delay)
