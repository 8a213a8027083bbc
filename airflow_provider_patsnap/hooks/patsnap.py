"""PatsnapHook: connection, authentication, HTTP, retries, rate limit and the PatSnap endpoints."""

from __future__ import annotations

import hashlib
import logging
import re
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import requests
from tenacity import retry_if_exception_type
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from airflow_provider_patsnap import validation
from airflow_provider_patsnap.errors import (
    API_KEY_REFUSED,
    CHECK_BEFORE_RERUN,
    TOKEN_REFUSED_TWICE,
    PatsnapAmbiguousCreateError,
    PatsnapAuthError,
    PatsnapConnectionError,
    PatsnapDownloadError,
    PatsnapDownloadRejectedError,
    PatsnapError,
    PatsnapPermanentError,
    PatsnapTokenError,
    credentials_refused,
    error_from_http_status,
)
from airflow_provider_patsnap.hooks._async import AsyncPatsnapMixin
from airflow_provider_patsnap.hooks._config import PatsnapConfig, config_from_connection
from airflow_provider_patsnap.hooks._envelope import parse_answer, token_or_error
from airflow_provider_patsnap.hooks._ratelimit import RateLimiter, limiter_for
from airflow_provider_patsnap.hooks._retry import policy_args, retrying
from airflow_provider_patsnap.hooks._token_cache import TOKEN_CACHE, Token
from airflow_provider_patsnap.models import (
    LegalIndicatorRecord,
    ReportJob,
    ReportKind,
    flatten_legal_indicator,
    normalize_job_id,
)
from airflow_provider_patsnap.storage import (
    Destination,
    filename_from_link,
    sanitize_filename,
    staged_write,
    user_uri,
)
from airflow_provider_patsnap.version_compat import BaseHook, mask_secret

TOKEN_PATH = "/oauth/token"
LEGAL_INDICATORS_PATH = "/patent-valuation-data/legal_indicators"
USER_AGENT = "airflow-provider-patsnap"
DOWNLOAD_CHUNK = 1024 * 1024
_MEDIA_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


_SECRET_QUERY = re.compile(r"([?&](?:sign|apikey|api_key|access_token|token)=)[^&\s\"']+", re.IGNORECASE)


class _RedactSecretQuery(logging.Filter):
    """urllib3 logs each request line (URL with query) at DEBUG: redact credential values in it.

    Registering them with Airflow's masker is not enough: ``dags test`` output is not masked.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_SECRET_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


# urllib3 (sync path) logs request lines at DEBUG; httpx (triggers) at INFO on Airflow 2.11.
for _logger in (logging.getLogger("urllib3.connectionpool"), logging.getLogger("httpx")):
    if not any(isinstance(f, _RedactSecretQuery) for f in _logger.filters):
        _logger.addFilter(_RedactSecretQuery())


def safe_link(url: str) -> str:
    """A signed link as host + path: what may be logged (the query carries the signature)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class PatsnapHook(AsyncPatsnapMixin, BaseHook):
    """Talks to PatSnap's Open Platform with the credentials of an Airflow connection.

    :param patsnap_conn_id: connection of type ``patsnap``.
    :param timeout: request timeout in seconds (overrides the connection's ``timeout`` extra).
    :param max_retries: retry budget for transient errors (overrides ``max_retries``).
    :param qps: client-side requests-per-second cap (overrides ``qps``; 0 disables it).
    :param retry_wait_min: first backoff in seconds; :param retry_wait_max: backoff cap in seconds.
    """

    conn_name_attr = "patsnap_conn_id"
    default_conn_name = "patsnap_default"
    conn_type = "patsnap"
    hook_name = "PatSnap"

    def __init__(
        self,
        patsnap_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        qps: float | None = None,
        retry_wait_min: float | None = None,
        retry_wait_max: float | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        super().__init__()
        self.patsnap_conn_id = patsnap_conn_id
        self._overrides: dict[str, Any] = {
            "timeout": timeout,
            "max_retries": max_retries,
            "qps": qps,
            "retry_wait_min": retry_wait_min,
            "retry_wait_max": retry_wait_max,
            "max_concurrency": max_concurrency,
        }

    # ------------------------------------------------------------------ connection form

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields for the connection form (Airflow < 3.2; newer versions read provider info)."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import PasswordField, StringField

        return {
            "api_key": PasswordField(lazy_gettext("API key (sk-...)"), widget=BS3PasswordFieldWidget()),
            "timeout": StringField(lazy_gettext("Timeout (s)"), widget=BS3TextFieldWidget()),
            "max_retries": StringField(lazy_gettext("Max retries"), widget=BS3TextFieldWidget()),
            "qps": StringField(lazy_gettext("Requests per second"), widget=BS3TextFieldWidget()),
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The provider info's declarative form behaviour, in the older hook-method spelling."""
        from airflow_provider_patsnap.get_provider_info import get_provider_info

        (conn_type,) = get_provider_info()["connection-types"]
        declared = conn_type["ui-field-behaviour"]
        return {
            "hidden_fields": declared["hidden-fields"],
            "relabeling": declared["relabeling"],
            "placeholders": {
                **declared["placeholders"],
                "api_key": "sk-... (instead of client id/secret)",
                "timeout": "30",
                "max_retries": "5",
                "qps": "2",
            },
        }

    # ------------------------------------------------------------------ configuration

    @cached_property
    def config(self) -> PatsnapConfig:
        conn = self.get_connection(self.patsnap_conn_id)
        return self.config_from(conn)

    def config_from(self, conn: Any, *, mask: bool = True) -> PatsnapConfig:
        """Settings from a connection object (the trigger fetches it asynchronously, then calls this
        with ``mask=False`` and masks the secrets the async way)."""
        config = config_from_connection(conn, self._overrides)
        if mask:
            for secret in (config.client_secret, config.api_key):
                if secret:
                    mask_secret(secret)
        return config

    @cached_property
    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        session.trust_env = True
        return session

    def get_conn(self) -> requests.Session:
        return self.session

    @property
    def _limiter(self) -> RateLimiter:
        return limiter_for(self.config.base_url, self.config.principal, self.config.qps)

    @property
    def _timeout(self) -> tuple[float, float]:
        return (min(10.0, self.config.timeout), self.config.timeout)

    @property
    def _token_key(self) -> tuple[str, str]:
        return (self.config.base_url, self.config.client_id or "")

    # ------------------------------------------------------------------ authentication

    def _fetch_token(self) -> Token:
        config = self.config
        endpoint = f"POST {TOKEN_PATH}"
        try:
            response = self.session.post(
                config.base_url + TOKEN_PATH,
                data={"grant_type": "client_credentials"},
                auth=(config.client_id or "", config.client_secret or ""),
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise _transport_error(exc, endpoint, billable=False) from None
        token, expires_in = token_or_error(endpoint, response.status_code, response.headers, response.content)
        mask_secret(token)
        self.log.info("Fetched a PatSnap access token for client %s (valid %.0f s).", config.client_id, expires_in)
        return Token(value=token, expires_at=time.monotonic() + expires_in, lifetime=expires_in)

    def _token(self) -> Token:
        key = self._token_key
        token = TOKEN_CACHE.get(key)
        if token is None:
            with TOKEN_CACHE.lock(key):
                token = TOKEN_CACHE.get(key)
                if token is None:
                    token = self._fetch_token()
                    TOKEN_CACHE.put(key, token)
        return token

    def _auth(self) -> tuple[dict[str, str], dict[str, str], str | None]:
        """Headers, query parameters and the OAuth token value used (for invalidation)."""
        config = self.config
        if config.api_key:
            params = {"apikey": config.api_key} if config.api_key_in_query else {}
            return {"Authorization": f"Bearer {config.api_key}"}, params, None
        token = self._token()
        return {"Authorization": f"Bearer {token.value}"}, {"apikey": config.client_id or ""}, token.value

    # ------------------------------------------------------------------ HTTP

    def _send_once(
        self, method: str, path: str, params: dict[str, Any] | None, body: dict[str, Any] | None, billable: bool
    ) -> Any:
        endpoint = f"{method} {path}"
        headers, auth_params, token_value = self._auth()
        self._limiter.acquire()
        try:
            response = self.session.request(
                method,
                self.config.base_url + path,
                params={**(params or {}), **auth_params},
                json=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise _transport_error(exc, endpoint, billable=billable) from None
        return parse_answer(endpoint, response.status_code, response.headers, response.content, token_value)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        billable: bool = False,
    ) -> Any:
        """One PatSnap call with token refresh-and-replay and tenacity retries.

        ``billable`` marks creates: they are replayed only after errors that prove PatSnap did
        not run them, so one intended report is one job (and one charge).
        """
        policy = retrying(**policy_args(self.config, self.log, f"PatSnap {method} {path}", billable=billable))
        return policy(self._call_with_token_replay, method, path, params, body, billable)

    def _call_with_token_replay(
        self, method: str, path: str, params: dict[str, Any] | None, body: dict[str, Any] | None, billable: bool
    ) -> Any:
        try:
            return self._send_once(method, path, params, body, billable)
        except PatsnapTokenError as first:
            if not self.config.uses_oauth:
                raise credentials_refused(first, API_KEY_REFUSED) from None
            TOKEN_CACHE.invalidate(self._token_key, getattr(first, "token_value", None) or "")
            self.log.info("PatSnap refused the cached token (%s); fetching a new one and replaying.", first.code)
        try:
            return self._send_once(method, path, params, body, billable)
        except PatsnapTokenError as second:
            raise credentials_refused(second, TOKEN_REFUSED_TWICE) from None

    # ------------------------------------------------------------------ reports

    def create_enterprise_report(
        self,
        report_type: str = "pdf",
        company_name: str | None = None,
        credit_code: str | None = None,
        org_number: str | None = None,
        logo: bool = True,
    ) -> str:
        """R001: create an enterprise innovation report job; return its id as a string."""
        body = {"report_type": validation.report_type(report_type)}
        body.update(validation.enterprise_identifiers(company_name, credit_code, org_number))
        return self._create(ReportKind.ENTERPRISE, body, logo)

    def create_patent_value_report(
        self,
        report_type: str = "pdf",
        patent_id: str | None = None,
        patent_number: str | None = None,
        logo: bool = False,
    ) -> str:
        """R002: create a patent value report job (no-logo by default); return its id as a string."""
        body = {"report_type": validation.report_type(report_type)}
        body.update(validation.patent_identifier(patent_id, patent_number))
        return self._create(ReportKind.PATENT_VALUE, body, logo)

    def _create(self, kind: ReportKind, body: dict[str, str], logo: bool) -> str:
        path = kind.create_path(logo)
        try:
            data = self._call("POST", path, body=body, billable=True)
        except PatsnapError as exc:
            if exc.may_have_executed and not isinstance(exc, PatsnapAmbiguousCreateError):
                raise PatsnapAmbiguousCreateError(
                    f"{exc.message}; the report job may have been created. {CHECK_BEFORE_RERUN}",
                    endpoint=exc.endpoint,
                    code=exc.code,
                    http_status=exc.http_status,
                ) from None
            raise
        raw = data.get("job_id") if isinstance(data, dict) else None
        if isinstance(raw, bool) or not isinstance(raw, (str, int)) or not str(raw).strip():
            raise PatsnapAmbiguousCreateError(
                f"PatSnap accepted the create but sent no usable job_id ({raw!r}); the job may exist. "
                f"{CHECK_BEFORE_RERUN}",
                endpoint=f"POST {path}",
            )
        job_id = normalize_job_id(raw)
        self.log.info(
            "Created %s report job %s (%s).", kind.code, job_id, ", ".join(f"{k}={v}" for k, v in body.items())
        )
        return job_id

    def get_report_job(self, report_kind: ReportKind | str, job_id: str | int) -> ReportJob:
        """Current state of an R001/R002 job (the signed link, when present, is on the result)."""
        kind = ReportKind.parse(report_kind)
        job_id = normalize_job_id(job_id)
        data = self._call("GET", kind.status_path, params={"job_id": job_id})
        return ReportJob.from_api(data, kind, job_id, f"GET {kind.status_path}")

    # ------------------------------------------------------------------ download

    @cached_property
    def download_session(self) -> requests.Session:
        """A session with no PatSnap credentials: signed CDN links must not see our auth header."""
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        # Size and sha256 must describe the stored bytes: no transparent decompression.
        session.headers["Accept-Encoding"] = "identity"
        return session

    def download_report(
        self,
        report_kind: ReportKind | str,
        job_id: str | int,
        destination: str,
        *,
        destination_conn_id: str | None = None,
        overwrite: bool = False,
        chunk_size: int = DOWNLOAD_CHUNK,
    ) -> dict[str, Any]:
        """Stream a finished report to ``destination`` (path or ObjectStoragePath URI, folder if it ends in /).

        Each attempt asks the status endpoint for a fresh signed link, streams the file in chunks to
        a staging file, checks size and type, and only then publishes it under its final name.
        """
        kind = ReportKind.parse(report_kind)
        job_id = normalize_job_id(job_id)
        target = Destination.parse(destination, destination_conn_id)
        # Only the transfer is retried here: the status call inside retries itself (nesting would multiply).
        policy = retrying(**policy_args(self.config, self.log, f"Download of {kind.code} job {job_id}")).copy(
            retry=retry_if_exception_type(PatsnapDownloadError)
        )
        return policy(self._download_once, kind, job_id, target, overwrite, chunk_size)

    def _download_once(
        self, kind: ReportKind, job_id: str, target: Destination, overwrite: bool, chunk_size: int
    ) -> dict[str, Any]:
        job = self.get_report_job(kind, job_id)
        if not job.is_done():
            raise PatsnapPermanentError(
                f"{job.describe()}: the report is not ready yet; wait for it (PatsnapReportJobSensor) first",
                endpoint=f"GET {kind.status_path}",
            )
        url = job.download_url or ""
        link = safe_link(url)
        endpoint = f"GET {link}"
        scheme = urlsplit(url).scheme
        if scheme not in ("https", "http") or (
            scheme == "http" and urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1")
        ):
            raise PatsnapDownloadRejectedError(f"refusing a non-https download link ({link})", endpoint=endpoint)
        try:
            response = self.download_session.get(url, stream=True, timeout=self._timeout, allow_redirects=True)
        except requests.RequestException as exc:
            raise PatsnapDownloadError(f"download failed: {type(exc).__name__}", endpoint=endpoint) from None
        with response:
            if response.status_code != 200:
                raise _download_http_error(response.status_code, endpoint)
            fallback = f"{kind.value}_{job_id}"
            filename = sanitize_filename(filename_from_link(url, response.headers.get("Content-Disposition")), fallback)
            final = target.resolve(filename)
            if not overwrite and final.exists():
                raise PatsnapDownloadRejectedError(
                    f"{user_uri(final)} already exists; set overwrite=True to replace it", endpoint=endpoint
                )
            expected = response.headers.get("Content-Length")
            self.log.info("Downloading %s report %s from %s to %s", kind.code, job_id, link, user_uri(final))
            digest = hashlib.sha256()
            size = 0
            head = b""
            with staged_write(final) as (handle, local_path):
                try:
                    for chunk in response.iter_content(chunk_size=chunk_size):
                        if len(head) < 8:
                            head += chunk[:8]
                        digest.update(chunk)
                        handle.write(chunk)
                        size += len(chunk)
                except (requests.RequestException, OSError) as exc:
                    if isinstance(exc, OSError) and not isinstance(exc, requests.RequestException):
                        raise
                    raise PatsnapDownloadError(
                        f"download cut short after {size} bytes ({type(exc).__name__})", endpoint=endpoint
                    ) from None
                if expected is not None and expected.isdigit() and int(expected) != size:
                    raise PatsnapDownloadError(f"download cut short: got {size} of {expected} bytes", endpoint=endpoint)
                handle.flush()
                extension = _check_report_type(head, local_path, filename, response.headers, endpoint)
        result = {
            "uri": user_uri(final),
            "filename": filename,
            "size": size,
            "sha256": digest.hexdigest(),
            "media_type": _MEDIA_TYPES[extension],
            "job_id": job_id,
            "report_kind": kind.value,
        }
        self.log.info("Stored %s (%d bytes, sha256 %s).", result["uri"], size, result["sha256"])
        return result

    # ------------------------------------------------------------------ indicators

    def get_legal_indicators(
        self,
        patent_numbers: list[str] | str | None = None,
        patent_ids: list[str] | str | None = None,
    ) -> list[LegalIndicatorRecord]:
        """P037 legal indicators for any number of patents (100 per request), as flat typed records.

        Input order is kept and duplicates are asked for once. Patents PatSnap knows nothing about
        are simply absent from the result.
        """
        numbers, ids = validation.patents(patent_numbers, patent_ids)
        requests_to_make = [("patent_number", b) for b in validation.batches(numbers)]
        requests_to_make += [("patent_id", b) for b in validation.batches(ids)]
        workers = min(self.config.max_concurrency, len(requests_to_make))

        def fetch(item: tuple[str, list[str]]) -> list[Any]:
            param, batch = item
            data = self._call("GET", LEGAL_INDICATORS_PATH, params={param: ",".join(batch)})
            if data is None:
                return []
            if not isinstance(data, list):
                raise PatsnapPermanentError(
                    "expected a list of indicator records in 'data'", endpoint=f"GET {LEGAL_INDICATORS_PATH}"
                )
            return data

        if workers <= 1:
            pages = [fetch(item) for item in requests_to_make]
        else:
            # The shared rate limiter still paces the calls; threads only overlap their latency.
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="patsnap-p037") as pool:
                pages = list(pool.map(fetch, requests_to_make))
        records = [flatten_legal_indicator(item) for page in pages for item in page]
        self.log.info(
            "P037: %d record(s) for %d patent(s) in %d request(s).",
            len(records),
            len(numbers) + len(ids),
            len(requests_to_make),
        )
        return records

    # ------------------------------------------------------------------ connection test

    def test_connection(self) -> tuple[bool, str]:
        """OAuth: fetch a fresh token. API key: one free authenticated status call."""
        try:
            config = self.config
            if config.uses_oauth:
                token = self._fetch_token()
                TOKEN_CACHE.put(self._token_key, token)
                return True, f"Connection to {config.base_url} works: token issued for client {config.client_id}."
            try:
                self._call("GET", ReportKind.ENTERPRISE.status_path, params={"job_id": "0"})
            except PatsnapPermanentError as exc:
                # An unknown job id is a parameter error: authentication itself passed.
                if isinstance(exc, PatsnapAuthError) or (exc.code or 0) // 100000 == 672:
                    raise
            return True, f"Connection to {config.base_url} works: the API key was accepted."
        except (PatsnapError, ValueError) as exc:
            return False, str(exc)


def _transport_error(exc: requests.RequestException, endpoint: str, *, billable: bool) -> PatsnapError:
    """Map a requests exception without echoing its URL (which may carry an api key)."""
    name = type(exc).__name__
    # requests wraps urllib3's MaxRetryError; its reason says whether a connection was ever made
    # (NewConnectionError covers refused connections and, as NameResolutionError, DNS failures).
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    not_sent = isinstance(exc, requests.ConnectTimeout) or isinstance(reason, (NewConnectionError, ConnectTimeoutError))
    if billable and not not_sent:
        return PatsnapAmbiguousCreateError(
            f"the request was sent but no answer arrived ({name}); the report job may have been created. "
            f"{CHECK_BEFORE_RERUN}",
            endpoint=endpoint,
        )
    return PatsnapConnectionError(f"{name} talking to PatSnap", endpoint=endpoint, replay_safe=True)


def _download_http_error(status: int, endpoint: str) -> PatsnapError:
    if status in (403, 404, 408, 410, 429) or status >= 500:
        # Expired or not-yet-propagated links and CDN hiccups: a new attempt gets a fresh link.
        return PatsnapDownloadError(f"download link answered HTTP {status}", endpoint=endpoint, http_status=status)
    return error_from_http_status(endpoint=endpoint, http_status=status, is_json=False)


def _check_report_type(head: bytes, local_path: str, filename: str, headers: Any, endpoint: str) -> str:
    """``pdf`` or ``docx`` when the bytes are one; raise otherwise (HTML error pages, junk)."""
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(local_path) as archive:
                if "word/document.xml" in archive.namelist():
                    return "docx"
        except zipfile.BadZipFile:
            pass
    content_type = headers.get("Content-Type", "unknown")
    raise PatsnapDownloadRejectedError(
        f"downloaded {filename!r} is not a PDF or DOCX report (Content-Type {content_type}, "
        f"starts with {head[:8]!r}); nothing was stored",
        endpoint=endpoint,
    )
