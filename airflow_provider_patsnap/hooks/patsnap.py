"""PatsnapHook: the public surface over PatSnap's Open Platform (endpoints, connection form, test).

How a call is made (auth, rate limit, retries, token refresh) lives in ``_core``; the transports
that carry it in ``_drivers``; report downloads in ``_download``; what an error means in ``errors``.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Generator, Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from tenacity import retry_if_exception_type

from airflow_provider_patsnap import validation, valuation
from airflow_provider_patsnap.errors import (
    Outcome,
    PatsnapAuthError,
    PatsnapDownloadError,
    PatsnapError,
    PatsnapInputError,
    PatsnapPermanentError,
    PatsnapResponseError,
    PatsnapRetryableError,
    ambiguous_create,
    classify_code,
)
from airflow_provider_patsnap.hooks import _drivers, _purchase, _retry
from airflow_provider_patsnap.hooks._batches import ReplayBudget, stream_batches
from airflow_provider_patsnap.hooks._config import PatsnapConfig, config_from_connection
from airflow_provider_patsnap.hooks._core import TOKEN_PATH, CallCore
from airflow_provider_patsnap.hooks._download import DOWNLOAD_CHUNK, ReportDownloader
from airflow_provider_patsnap.hooks._purchase import batch_purchase, report_purchase, request_subject
from airflow_provider_patsnap.hooks._redact import install_log_redaction
from airflow_provider_patsnap.hooks._retry import retry_policy
from airflow_provider_patsnap.hooks._token_cache import TOKEN_CACHE
from airflow_provider_patsnap.ledger.model import Budget, Purchase
from airflow_provider_patsnap.models import LegalIndicatorRecord, ReportJob, ReportKind, normalize_job_id
from airflow_provider_patsnap.redaction import register_basic_credentials, register_secret, remote_text
from airflow_provider_patsnap.storage import Destination
from airflow_provider_patsnap.version_compat import BaseHook, aget_connection, amask_secret, mask_secret

if TYPE_CHECKING:
    from airflow_provider_patsnap.ledger.store import PatsnapLedger

LEGAL_INDICATORS_PATH = valuation.INDICATORS["legal"].path
STATEMENT_PATH = "/open-user/statement/v2"

__all__ = ["DOWNLOAD_CHUNK", "LEGAL_INDICATORS_PATH", "TOKEN_PATH", "PatsnapHook"]


class PatsnapHook(BaseHook):
    """Talks to PatSnap's Open Platform with the credentials of an Airflow connection.

    :param patsnap_conn_id: connection of type ``patsnap``.
    :param timeout: request timeout in seconds (overrides the connection's ``timeout`` extra).
    :param max_retries: retry budget for transient errors (overrides ``max_retries``).
    :param qps: client-side requests-per-second cap (overrides ``qps``; 0 disables it).
    :param retry_wait_min: first backoff in seconds; :param retry_wait_max: backoff cap in seconds.
    :param max_concurrency: parallel batch requests for indicator calls (overrides ``max_concurrency``).
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
        install_log_redaction()
        self.patsnap_conn_id = patsnap_conn_id
        self._overrides: dict[str, Any] = {
            "timeout": timeout,
            "max_retries": max_retries,
            "qps": qps,
            "retry_wait_min": retry_wait_min,
            "retry_wait_max": retry_wait_max,
            "max_concurrency": max_concurrency,
        }
        self._config: PatsnapConfig | None = None

    # ------------------------------------------------------------------ connection form

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields for the connection form (Airflow < 3.2; newer versions read provider info)."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, PasswordField, StringField

        from airflow_provider_patsnap.get_provider_info import get_provider_info

        (conn_type,) = get_provider_info()["connection-types"]
        fields: dict[str, Any] = {}
        for name, spec in conn_type["conn-fields"].items():
            label = lazy_gettext(spec["label"])
            kinds = spec["schema"]["type"]
            if "boolean" in kinds:
                fields[name] = BooleanField(label)
            elif spec["schema"].get("format") == "password":
                fields[name] = PasswordField(label, widget=BS3PasswordFieldWidget())
            else:
                fields[name] = StringField(label, widget=BS3TextFieldWidget())
        return fields

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
                **{
                    name: str(spec["schema"]["default"])
                    for name, spec in conn_type["conn-fields"].items()
                    if "default" in spec["schema"]
                },
            },
        }

    # ------------------------------------------------------------------ configuration

    @property
    def config(self) -> PatsnapConfig:
        """Connection settings (fetched on first use; secrets registered with the masker)."""
        if self._config is None:
            config = config_from_connection(self.get_connection(self.patsnap_conn_id), self._overrides)
            for secret in _register_secrets(config):
                mask_secret(secret)
            self._config = config
        return self._config

    async def aconfig(self) -> PatsnapConfig:
        """``config`` for the triggerer: the connection is fetched without blocking the event loop."""
        if self._config is None:
            config = config_from_connection(await aget_connection(self.patsnap_conn_id), self._overrides)
            for secret in _register_secrets(config):
                await amask_secret(secret)
            self._config = config
        return self._config

    @cached_property
    def session(self) -> requests.Session:
        return _drivers.new_session()

    def get_conn(self) -> requests.Session:
        return self.session

    @cached_property
    def _downloader(self) -> ReportDownloader:
        config = self.config
        return ReportDownloader(
            self.log,
            (min(10.0, config.timeout), config.timeout),
            max_bytes=config.max_download_bytes,
            deadline=config.download_timeout,
            allow_private=config.allow_private_addresses,
        )

    def _core(self, config: PatsnapConfig) -> CallCore:
        return CallCore(config, self.log)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        billable: bool = False,
        stop: threading.Event | None = None,
        on_send: Callable[[], None] | None = None,
    ) -> Any:
        """One PatSnap call (the envelope's ``data``) with the connection's auth, limiter and retries;
        ``stop`` (set by another thread) ends it before its next step; ``on_send`` is called just
        before the request is handed to the transport (each time it is)."""
        steps = self._core(self.config).call(method, path, params=params, json=body, billable=billable, on_send=on_send)
        return _drivers.run(steps, self.session, stop)

    async def _acall(self, method: str, path: str, *, params: dict[str, Any] | None = None) -> Any:
        """``_call`` on the running event loop (triggers); reads only."""
        return await _drivers.arun(self._core(await self.aconfig()).call(method, path, params=params))

    def run(
        self,
        method: str,
        endpoint: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        billable: bool | None = None,
        on_send: Callable[[], None] | None = None,
    ) -> Any:
        """Call any PatSnap endpoint with the connection's auth, rate limit and retry rules; return the
        envelope's ``data`` (numbers exact: decimals come back as ``Decimal``).

        ``endpoint`` is a path on the connection's host (``/search/patent/...``). ``billable`` (default:
        True for POST and for the products PatSnap bills: indicator paths, report creates) means the
        call is replayed only when PatSnap surely did not run it, and a doubtful outcome raises
        ``PatsnapAmbiguousCreateError`` instead of risking a second charge. A product PatSnap bills is
        recorded in the ledger whatever ``billable`` says. ``on_send`` is called just before the
        request is handed to the transport.
        """
        verb = validation.http_method(method)
        path = validation.endpoint_path(endpoint)
        query = validation.query(params)
        known = _purchase.known_purchase(path, query, json)  # a product PatSnap bills, whatever the verb
        billable = _purchase.billed_product(verb, path) if billable is None else bool(billable)

        def send(mark: Callable[[], None] | None) -> Any:
            try:
                return self._call(verb, path, params=query, body=json, billable=billable, on_send=mark)
            except PatsnapError as exc:
                if billable and exc.outcome is Outcome.MAY_HAVE_RUN:
                    raise ambiguous_create(exc, what="the call may have run (and been billed)") from None
                raise

        if known is not None:
            purchase, billed = known
            return _purchase.buy(self.ledger, purchase, send, billed=billed, on_send=on_send)
        if not billable:
            return send(on_send)
        # What a generic call bills is PatSnap's to say: the ledger counts one unit per call.
        purchase = Purchase(endpoint=path, serial=path, subject=request_subject(query, json), units=1)
        return _purchase.buy(self.ledger, purchase, send, billed=lambda _: 1, on_send=on_send)

    # ------------------------------------------------------------------ reports

    def create_enterprise_report(
        self,
        report_type: str = "pdf",
        company_name: str | None = None,
        credit_code: str | None = None,
        org_number: str | None = None,
        logo: bool = True,
        *,
        on_send: Callable[[], None] | None = None,
    ) -> str:
        """R001: create an enterprise innovation report job; return its id as a string.

        ``on_send`` is called just before the create is handed to the transport (billing records "sent").
        """
        body = {"report_type": validation.report_type(report_type)}
        body.update(validation.enterprise_identifiers(company_name, credit_code, org_number))
        return self._create(ReportKind.ENTERPRISE, body, logo, on_send)

    def create_patent_value_report(
        self,
        report_type: str = "pdf",
        patent_id: str | None = None,
        patent_number: str | None = None,
        logo: bool = False,
        *,
        on_send: Callable[[], None] | None = None,
    ) -> str:
        """R002: create a patent value report job (no-logo by default); return its id as a string."""
        body = {"report_type": validation.report_type(report_type)}
        body.update(validation.patent_identifier(patent_id, patent_number))
        return self._create(ReportKind.PATENT_VALUE, body, logo, on_send)

    def _create(self, kind: ReportKind, body: dict[str, str], logo: bool, on_send: Callable[[], None] | None) -> str:
        return _purchase.buy(
            self.ledger,
            report_purchase(kind, body, logo),
            lambda mark: self._send_create(kind, body, logo, mark),
            billed=lambda _: 1,
            job_id=lambda job_id: job_id,
            on_send=on_send,
        )

    def _send_create(
        self, kind: ReportKind, body: dict[str, str], logo: bool, on_send: Callable[[], None] | None
    ) -> str:
        path = kind.create_path(logo)
        try:
            data = self._call("POST", path, body=body, billable=True, on_send=on_send)
        except PatsnapError as exc:
            if exc.outcome is Outcome.MAY_HAVE_RUN:
                raise ambiguous_create(exc) from None
            raise
        raw = data.get("job_id") if isinstance(data, dict) else None
        try:
            if isinstance(raw, bool) or not isinstance(raw, (str, int)):
                raise PatsnapInputError("job_id", f"a {type(raw).__name__}, not a digit string")
            job_id = normalize_job_id(raw)
        except PatsnapInputError as exc:
            raise ambiguous_create(
                f"PatSnap accepted the create but sent no usable job_id ({exc}); the job may exist",
                endpoint=f"POST {path}",
            ) from None
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

    async def aget_report_job(self, report_kind: ReportKind | str, job_id: str | int) -> ReportJob:
        """``get_report_job`` on the running event loop (used by the trigger)."""
        kind = ReportKind.parse(report_kind)
        job_id = normalize_job_id(job_id)
        data = await self._acall("GET", kind.status_path, params={"job_id": job_id})
        return ReportJob.from_api(data, kind, job_id, f"GET {kind.status_path}")

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
        policy = retry_policy(self.config, self.log, f"Download of {kind.code} job {job_id}").copy(
            retry=retry_if_exception_type(PatsnapDownloadError)
        )
        result: dict[str, Any] = policy(
            lambda: self._downloader.fetch(
                self.get_report_job(kind, job_id), target, overwrite=overwrite, chunk_size=chunk_size
            )
        )
        if self.ledger is not None:  # where the report now is: what a later run may reuse
            _purchase.quietly(
                self.ledger.attach_result, serial=kind.code, job_id=job_id, uri=result["uri"], sha256=result["sha256"]
            )
        return result

    # ------------------------------------------------------------------ indicators

    def get_patent_indicators(
        self,
        indicator: str,
        patent_numbers: list[str] | str | None = None,
        patent_ids: list[str] | str | None = None,
    ) -> list[dict[str, Any]]:
        """One batch indicator (``valuation``, ``technology``, ``legal``, ``market``, ``strategic`` or
        ``economic``: P035-P040) for any number of patents, 100 per request, as flat typed records.

        Input order is kept and duplicates are asked for once. Patents PatSnap knows nothing about
        are simply absent from the result.
        """
        spec = valuation.indicator(indicator, "indicator")
        numbers, ids = validation.patents(patent_numbers, patent_ids)
        planned = valuation.plan_batches([spec], numbers, ids)
        pages = self.fetch_batches(planned)
        records = [valuation.flatten(spec, item) for batch in planned for item in pages[batch.key]]
        self.log.info(
            "%s: %d record(s) for %d patent(s) in %d request(s).",
            spec.code,
            len(records),
            len(numbers) + len(ids),
            len(planned),
        )
        return records

    def get_legal_indicators(
        self,
        patent_numbers: list[str] | str | None = None,
        patent_ids: list[str] | str | None = None,
    ) -> list[LegalIndicatorRecord]:
        """P037 legal indicators for any number of patents (``get_patent_indicators("legal", ...)``)."""
        return self.get_patent_indicators("legal", patent_numbers, patent_ids)  # type: ignore[return-value]

    def fetch_batches(
        self,
        batches: Sequence[valuation.Batch],
        *,
        on_batch: Callable[[valuation.Batch, list[Any]], None] | None = None,
        budget: ReplayBudget | None = None,
    ) -> dict[str, list[Any]]:
        """PatSnap's raw items per batch key (``stream_batches``, collected)."""
        return {batch.key: items for batch, items in self.stream_batches(batches, on_batch=on_batch, budget=budget)}

    def stream_batches(
        self,
        batches: Iterable[valuation.Batch],
        *,
        on_batch: Callable[[valuation.Batch, list[Any]], None] | None = None,
        budget: ReplayBudget | None = None,
        known: Callable[[valuation.Batch], list[Any] | None] | None = None,
    ) -> Generator[tuple[valuation.Batch, list[Any]], None, None]:
        """``(batch, PatSnap's raw items)`` in the order of ``batches`` (read lazily), a few requests at
        a time under the rate limit (``_batches.stream_batches``: on the first error or an interruption
        the rest stop at once, and every batch PatSnap answered is still handed to ``on_batch``; a batch
        ``known`` answers is not sent). Batches are billable: one whose answer was lost is sent again
        only while ``budget`` allows (default: the connection's ``max_ambiguous_replays`` per batch,
        within this call)."""
        budget = budget if budget is not None else ReplayBudget(self.config.max_ambiguous_replays)
        if budget.pause is None:
            budget.pause = self._replay_pause
        where = _purchase.current_scope()  # taken here: the batches run in other threads
        ledger = self.ledger

        def fetch(batch: valuation.Batch, stop: threading.Event) -> list[Any]:
            return _purchase.buy(
                ledger,
                batch_purchase(batch),
                lambda mark: self._fetch_batch(batch, stop, mark),
                billed=len,
                where=where,
            )

        concurrency = self.config.max_concurrency
        return stream_batches(fetch, batches, concurrency, on_batch, budget, self.log, known=known)

    def _replay_pause(self, replay: int) -> None:
        """Back off before sending a batch again: a lost answer is often an outage that has not ended."""
        config = self.config
        _retry.sleep(min(config.retry_wait_min * 2 ** (replay - 1), config.retry_wait_max))

    def _fetch_batch(
        self, batch: valuation.Batch, stop: threading.Event | None = None, on_send: Callable[[], None] | None = None
    ) -> list[Any]:
        path = batch.indicator.path
        # Billed per result returned: replayed here only when PatSnap surely did not run it.
        data = self._call(
            "GET", path, params={batch.param: ",".join(batch.patents)}, billable=True, stop=stop, on_send=on_send
        )
        if data is None:
            return []
        if not isinstance(data, list):
            raise PatsnapResponseError("expected a list of indicator records in 'data'", endpoint=f"GET {path}")
        return data

    # ------------------------------------------------------------------ ledger and statement

    @cached_property
    def ledger(self) -> PatsnapLedger | None:
        """The ledger this connection records its units in (extras ``ledger_url``/``ledger_conn_id``), or None."""
        config = self.config
        if not config.has_ledger:
            return None
        from airflow_provider_patsnap.ledger.engine import safe_url
        from airflow_provider_patsnap.ledger.store import PatsnapLedger

        url = self._ledger_url()
        try:
            return PatsnapLedger(url, config.account, self._budget())
        except Exception as exc:
            raise PatsnapRetryableError(
                f"the ledger at {safe_url(url)} cannot be opened ({type(exc).__name__}: {remote_text(str(exc), 200)}); "
                "nothing was sent",
                outcome=Outcome.NOT_SENT,
            ) from None

    def ledger_reader(self) -> PatsnapLedger | None:
        """This connection's ledger opened to read only (the spend page): nothing is created, migrated or
        written, and no write lock is taken. A SQLite file missing here raises ``LedgerMissing``."""
        config = self.config
        if not config.has_ledger:
            return None
        from airflow_provider_patsnap.ledger.store import PatsnapLedger

        return PatsnapLedger(self._ledger_url(), config.account, self._budget(), read_only=True)

    def _ledger_url(self) -> str:
        config = self.config
        if config.ledger_url is not None:
            return config.ledger_url
        from sqlalchemy.engine import make_url

        from airflow_provider_patsnap.ledger.engine import url_of_connection

        url = url_of_connection(self.get_connection(str(config.ledger_conn_id)))
        password = make_url(url).password
        for secret in (url, str(password) if password else None):
            register_secret(secret)
            if secret:
                mask_secret(secret)
        return url

    def _budget(self) -> Budget:
        config = self.config
        return Budget(config.budget_daily_units, config.budget_monthly_units, config.budget_timezone)

    def get_usage_statement(self, start: Any, end: Any) -> dict[str, Any]:
        """PatSnap's statement of account (``POST /open-user/statement/v2``) for ``start``..``end`` (dates or
        ``YYYYMMDD``, both included): the envelope's ``data``. Needs client credentials or an API key; the
        request carries the client secret, so it is never logged."""
        config = self.config
        body = {
            "apikey": config.api_key or config.client_id or "",
            "client_secret": config.client_secret or "",
            "time_start": validation.statement_day("start", start),
            "time_end": validation.statement_day("end", end),
        }
        data = self._call("POST", STATEMENT_PATH, body=body)
        if not isinstance(data, dict):
            raise PatsnapResponseError("the statement has no 'data' object", endpoint=f"POST {STATEMENT_PATH}")
        return data

    # ------------------------------------------------------------------ connection test

    def test_connection(self) -> tuple[bool, str]:
        """OAuth: fetch a fresh token. API key: one free authenticated status call."""
        try:
            config = self.config
            core = self._core(config)
            if config.uses_oauth:
                TOKEN_CACHE.put(core.token_key, _drivers.run(core.fetch_token(), self.session))
                return True, f"Connection to {config.base_url} works: token issued for client {config.client_id}."
            try:
                self._call("GET", ReportKind.ENTERPRISE.status_path, params={"job_id": "0"})
            except PatsnapPermanentError as exc:
                # A business error about the unknown job id means authentication itself passed.
                if isinstance(exc, PatsnapAuthError) or exc.code is None or classify_code(exc.code).is_platform:
                    raise
            return True, f"Connection to {config.base_url} works: the API key was accepted."
        except (PatsnapError, ValueError) as exc:
            return False, str(exc)


def _register_secrets(config: PatsnapConfig) -> tuple[str, ...]:
    """Teach the provider's redactor the connection's credentials (and the Basic form the token request
    sends); return what Airflow's masker should learn too."""
    for secret in config.secrets:
        register_secret(secret)
    register_basic_credentials(config.client_id, config.client_secret)
    basic = f"{config.client_id}:{config.client_secret}" if config.client_id and config.client_secret else None
    return (*config.secrets, *((basic, base64.b64encode(basic.encode()).decode()) if basic else ()))
