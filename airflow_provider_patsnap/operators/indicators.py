"""Batch patent indicators (P035-P040) for any number of patents, to XCom or to JSON Lines in storage."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from typing import Any

from airflow_provider_patsnap import metrics, portfolio, record_files, validation, valuation
from airflow_provider_patsnap.billing import BatchBook, TaskRun, open_book, request_digest
from airflow_provider_patsnap.billing.batches import StoredBook
from airflow_provider_patsnap.errors import PatsnapInputError
from airflow_provider_patsnap.hooks._purchase import Scope, quietly
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.ledger.model import Purchase
from airflow_provider_patsnap.links import PatsnapApiDocsLink, PatsnapOutputLink
from airflow_provider_patsnap.operators import _indicator_stream
from airflow_provider_patsnap.operators._common import (
    airflow_failure_semantics,
    annotate_outlet_events,
    lineage_of,
    require_ledger,
    reuse_window,
    spending,
    spent,
    units_cap,
)
from airflow_provider_patsnap.operators._indicator_stream import (
    FETCHED_AT,
    Missing,
    Reuse,
    indicator_records,
    input_key,
    normal,
)
from airflow_provider_patsnap.staging import write_lines_atomically
from airflow_provider_patsnap.storage import Destination, user_uri
from airflow_provider_patsnap.version_compat import BaseOperator

#: The most records XCom mode returns (XCom lives in Airflow's metadata database): beyond, a destination.
DEFAULT_MAX_XCOM_RECORDS = 10_000


class PatsnapPatentIndicatorsOperator(BaseOperator):
    """Fetches any of PatSnap's batch patent indicators for any number of patents.

    ``indicators``: any of ``valuation`` (P035), ``technology`` (P036), ``legal`` (P037), ``market``
    (P038), ``strategic`` (P039), ``economic`` (P040). Each is asked for 100 patents per request, a
    few requests at a time under the connection's ``qps``. The result is one flat, typed record per
    patent found, with every requested indicator's fields at top level (named as PatSnap names
    them; a name two indicators share is prefixed with the indicator, e.g. ``market_cites_no``).

    Without ``destination`` the records are the XCom (at most ``max_xcom_records``, default 10,000:
    more patents than that fail before any call, pointing at ``destination``). With it (a file path or
    URI; a value ending in ``/`` is a folder) they are written there (``output_format``: ``"jsonl"``,
    ``"jsonl.gz"`` or ``"parquet"`` with the catalogue's types; see ``record_files``), atomically, and the XCom is
    ``{"uri", "records", "requested", "missing"}`` with ``missing`` per indicator. As for reports, an
    existing file is kept unless ``overwrite=True`` (the same bytes again, a retry, is success).

    Batches are billable units of the task's run (``billing.batches``): completed ones are
    checkpointed as they arrive (beside the destination; in XCom mode in the task state store on
    Airflow 3.3+), so an Airflow retry fetches, and PatSnap bills, only the batches still missing; a
    batch whose answer was lost is sent again at most ``max_ambiguous_replays`` times (connection
    extra, default 1) across all attempts; and a retry after the output was published returns it
    without a call. Numbers are plain ``int``/``float`` (never ``Decimal``).
    """

    template_fields: Sequence[str] = (
        "patent_numbers",
        "patent_ids",
        "patents_from",
        "patents_from_conn_id",
        "indicators",
        "destination",
        "destination_conn_id",
    )
    operator_extra_links = (PatsnapApiDocsLink(), PatsnapOutputLink())
    ui_color = "#f3e8d0"
    default_filename = "patent_indicators.jsonl"

    def __init__(
        self,
        *,
        patent_numbers: list[str] | str | None = None,
        patent_ids: list[str] | str | None = None,
        indicators: Sequence[str] | str = ("legal",),
        destination: str | None = None,
        destination_conn_id: str | None = None,
        overwrite: bool = False,
        patsnap_conn_id: str = PatsnapHook.default_conn_name,
        max_billable_units: int | None = None,
        reuse_within: dt.timedelta | int | None = None,
        output_format: str = "jsonl",
        max_xcom_records: int = DEFAULT_MAX_XCOM_RECORDS,
        patents_from: Any = None,
        patents_from_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(patents_from, str) and patents_from and "{{" not in patents_from:
            portfolio.Source.parse(patents_from)  # a wrong kind of file fails at DAG parse time
        units_cap(max_billable_units)
        reuse_window(reuse_within)
        self.output_format = record_files.output_format(output_format)
        self.max_xcom_records = _record_cap(max_xcom_records)
        self.overwrite = overwrite
        self.max_billable_units = max_billable_units
        self.reuse_within = reuse_within
        if not (isinstance(indicators, str) and "{{" in indicators):
            valuation.indicators(indicators)  # a typo fails at DAG parse time
        self.patent_numbers = patent_numbers
        self.patent_ids = patent_ids
        self.patents_from = patents_from
        self.patents_from_conn_id = patents_from_conn_id
        self.indicators = indicators
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.patsnap_conn_id = patsnap_conn_id

    @property
    def api_docs_path(self) -> str:
        try:
            return valuation.indicators(self.indicators)[0].path
        except (ValueError, TypeError):
            return ""

    def execute(self, context: Any) -> list[dict[str, Any]] | dict[str, Any]:
        with airflow_failure_semantics(), spending(context, self.max_billable_units) as where:
            return self._execute(context, where)

    def _execute(self, context: Any, where: Scope) -> list[dict[str, Any]] | dict[str, Any]:
        specs = valuation.indicators(self.indicators)
        source = self._source()
        target = Destination.parse(self.destination, self.destination_conn_id) if self.destination else None
        if target is None and self.output_format != "jsonl":
            raise PatsnapInputError(
                "output_format", f"{self.output_format!r} is a file format: give destination=, or leave it out"
            )
        record_files.ready(self.output_format)
        suffix = {"jsonl.gz": ".gz", "parquet": ".parquet"}.get(self.output_format)
        if suffix and target and not target.is_folder and not target.raw.lower().endswith(suffix):
            raise PatsnapInputError(
                "destination", f"output_format {self.output_format!r} writes a file named *{suffix}, or into a folder"
            )
        extension = record_files.FORMATS[self.output_format]
        final = target.resolve(self.default_filename.removesuffix(".jsonl") + extension) if target else None
        run = TaskRun(context, self.log)
        replays = self.hook.config.max_ambiguous_replays
        book = open_book(run, final, 0, replays) if final is not None else None
        # A file of another format is another request (the default keeps the digests of earlier releases).
        # A list read from a file is pinned to the run, so there the request is the argument: a retry
        # after the publish is recognised before the file is read (it may have changed, or be gone).
        codes = [
            *(spec.code for spec in specs),
            *([] if self.output_format == "jsonl" else [f"format:{self.output_format}"]),
        ]
        digest = request_digest(codes, [f"from:{source.uri}"], []) if source is not None else None
        done = book.finished(digest) if book is not None and digest is not None else None
        if done is None:
            numbers, ids, kept = self._patents(source, book, run, final is None, replays)
            digest = digest or request_digest(codes, numbers, ids)
            done = kept.finished(digest)
            if done is None:
                return self._fetch(context, where, specs, final, kept, digest, numbers, ids)
        # "execute returned but success was not recorded" (a lost worker, a failed XCom push).
        self.log.info(
            "An earlier attempt of this run already wrote %s (same request, same bytes): no call.", done["uri"]
        )
        return self._published(context, done)

    def _fetch(
        self,
        context: Any,
        where: Scope,
        specs: Sequence[valuation.Indicator],
        final: Any,
        book: BatchBook,
        digest: str,
        numbers: list[str],
        ids: list[str],
    ) -> list[dict[str, Any]] | dict[str, Any]:
        """Fetch what the run still needs, streamed into the output (or the XCom), and mark the run done."""
        missing = Missing(specs, self.max_xcom_records)
        resumed = [0]
        kept = book.checkpointed()
        if kept:
            self.log.info("Resuming: an earlier attempt of this run kept %d answered batch(es) (%s).", kept, book.kind)

        def checkpoint(batch: valuation.Batch) -> list[Any] | None:
            items = book.load(batch)
            resumed[0] += items is not None
            return items

        records = indicator_records(
            specs,
            numbers,
            ids,
            stream=lambda batches, known: self.hook.stream_batches(
                batches, on_batch=self._keeper(book), budget=book, known=known
            ),
            checkpoint=checkpoint,
            missing=missing,
            reuse=self._reuser(where),
        )
        # Closed on every way out: a writer that fails (a full disk, a timeout while a block is written)
        # must still have every answered batch checkpointed and those in flight counted, now.
        with contextlib.closing(records):
            if final is None:
                rows = list(records)
            else:
                counted = _Counter(records)
                chunks = record_files.encode(counted, valuation.record_columns(specs), self.output_format)
                size = write_lines_atomically(final, chunks, key="indicators", overwrite=self.overwrite)
        if final is None:
            self._log_outcome(book, resumed[0], missing)
            book.finish(digest, None)
            self.log.info("%d record(s): %d unit(s) bought, %d reused.", len(rows), where.billed, where.reused)
            return rows  # XCom mode: the records themselves (what they cost is in the log line above)
        self._log_outcome(book, resumed[0], missing)
        result = {"uri": user_uri(final), "records": counted.count, "requested": self._requested}
        result["missing"] = self.missing_value(missing.listed)
        if missing.truncated:
            result["missing_counts"] = missing.counts
        result["ambiguous_replays"] = book.total
        result = spent(result, where)
        book.finish(digest, result)
        self.log.info("Wrote %d record(s), %d bytes, to %s", counted.count, size, result["uri"])
        return self._published(context, result)

    def _patents(
        self, source: portfolio.Source | None, book: Any, run: TaskRun, to_xcom: bool, replays: int
    ) -> tuple[list[str], list[str], BatchBook]:
        """The run's patents (checked; from a file: as its first attempt read them), and its book."""
        if book is None and source is not None and run.durable:
            book = StoredBook(run, replays)  # where XCom mode pins a list (it fits there, or it was not pinned)
        pinned = book.pinned(source.uri) if book is not None and source is not None else None
        if pinned is None and isinstance(book, StoredBook):
            book = None  # nothing pinned: the book is chosen by the size of the list read
        if pinned is not None:
            numbers, ids = pinned
        elif source is not None:
            numbers, ids = source.read(self.log)
        else:
            numbers, ids = validation.patents(self.patent_numbers, self.patent_ids)
        requested = len(numbers) + len(ids)
        if to_xcom and requested > self.max_xcom_records:
            raise PatsnapInputError(
                "max_xcom_records",
                f"{requested} patents could return {requested} records, more than the "
                f"{self.max_xcom_records} XCom may carry (it lives in Airflow's metadata database): give "
                "destination= to write them to storage, or raise max_xcom_records",
            )
        book = book if book is not None else open_book(run, None, requested, replays)
        if source is not None and pinned is None:
            numbers, ids = book.pin(source.uri, numbers, ids)
        self._requested = len(numbers) + len(ids)
        return numbers, ids, book

    def _source(self) -> portfolio.Source | None:
        if self.patents_from is None or self.patents_from == "":
            return None
        if self.patent_numbers or self.patent_ids:
            raise PatsnapInputError(
                "patents_from", "give the patents either in a file (patents_from) or as patent_numbers/patent_ids"
            )
        return portfolio.Source.parse(self.patents_from, self.patents_from_conn_id)

    def _log_outcome(self, book: Any, resumed: int, missing: Missing) -> None:
        if resumed:
            self.log.info("Resumed: %d batch(es) came from an earlier attempt's checkpoint (%s).", resumed, book.kind)
        if book.total:
            self.log.warning(
                "%d batch(es) were sent again after a lost answer (each may have been billed).", book.total
            )
        for name, inputs in missing.listed.items():
            if missing.counts[name]:
                preview = ", ".join(inputs[:10]) + (" ..." if missing.counts[name] > 10 else "")
                self.log.warning(
                    "PatSnap returned no %s indicators for %d of %d patent(s): %s",
                    name,
                    missing.counts[name],
                    self._requested,
                    preview,
                )
        if missing.truncated:
            self.log.warning("The result lists the first %d missing input(s) per indicator.", missing.limit)

    def _keeper(self, book: Any) -> Callable[[valuation.Batch, list[Any]], None]:
        """What happens to each answered batch: stamped with when it was fetched, checkpointed, and
        kept in the ledger's result cache (what ``reuse_within`` serves to later runs)."""
        ledger = self.hook.ledger

        def keep(batch: valuation.Batch, items: list[Any]) -> None:
            now = _indicator_stream.utcnow()
            stamp = now.isoformat(timespec="seconds")
            for item in items:
                if isinstance(item, dict):
                    item[FETCHED_AT] = stamp  # ours: a key of that name in PatSnap's item is not trusted
            book.save(batch, items)
            if ledger is not None:
                by_key = {}
                for item in items:
                    flat = valuation.flatten(batch.indicator, item)
                    key = input_key(batch.param, flat)
                    if key is not None:
                        by_key[key] = {k: v for k, v in item.items() if k != FETCHED_AT}
                quietly(ledger.store_results, batch.indicator.code, by_key, now)

        return keep

    def _reuser(self, where: Scope) -> Reuse | None:
        """With ``reuse_within``: per block, the results the ledger holds for its patents, fetched in the
        window, served as an answered batch (PatSnap is not asked, nor paid, for them)."""
        window = reuse_window(self.reuse_within)
        if window is None:
            return None
        ledger = require_ledger(self.hook, "reuse_within")
        since = _indicator_stream.utcnow() - window
        logged: set[str] = set()

        def reuse(spec: valuation.Indicator, param: str, block: tuple[str, ...]) -> Any:
            keyed = {normal(param, value): value for value in block}
            found = ledger.cached_results(spec.code, list(keyed), since)
            if not found:
                return None
            patents = tuple(keyed[key] for key in keyed if key in found)
            batch = valuation.Batch(spec, param, patents)
            reused = len(found)
            where.add(reused=reused)
            metrics.count("units.reused", reused, serial=spec.code, dag_id=where.task.dag_id if where.task else None)
            ledger.record_reuse(
                Purchase(spec.path, spec.code, f"cache:{batch.key}", reused), {"id": None, "job_id": None}, where.task
            )
            if spec.code not in logged:
                logged.add(spec.code)
                self.log.info(
                    "%s: results fetched within %s are reused from the ledger (not bought).", spec.code, window
                )
            return patents, [{**item, FETCHED_AT: fetched_at} for item, fetched_at in found.values()]

        return reuse

    def _published(self, context: Any, result: dict[str, Any]) -> dict[str, Any]:
        annotate_outlet_events(self.outlets, context, result)
        self._written_uri = result["uri"]
        return result

    def missing_value(self, missing: dict[str, list[str]]) -> Any:
        return missing

    @cached_property
    def hook(self) -> PatsnapHook:
        return PatsnapHook(self.patsnap_conn_id)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        try:
            paths = [spec.path for spec in valuation.indicators(self.indicators)]
        except (ValueError, TypeError):
            paths = []
        return lineage_of(self.hook, paths, getattr(self, "_written_uri", None))


class PatsnapLegalIndicatorsOperator(PatsnapPatentIndicatorsOperator):
    """P037 legal indicators for any number of patents (batched 100 per request).

    Without ``destination`` it returns the list of flat, typed records (one per patent found).
    With ``destination`` (a file path or URI; a value ending in ``/`` is a folder, where
    ``legal_indicators.jsonl`` is written) it writes JSON Lines there, atomically, and returns
    ``{"uri", "records", "requested", "missing"}``; ``missing`` lists the inputs PatSnap
    returned nothing for. (Not called ``output``: that name is Airflow's own XComArg property.)
    """

    template_fields: Sequence[str] = (
        "patent_numbers",
        "patent_ids",
        "patents_from",
        "patents_from_conn_id",
        "destination",
        "destination_conn_id",
    )
    default_filename = "legal_indicators.jsonl"

    def __init__(
        self,
        *,
        patent_numbers: list[str] | str | None = None,
        patent_ids: list[str] | str | None = None,
        destination: str | None = None,
        destination_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            patent_numbers=patent_numbers,
            patent_ids=patent_ids,
            indicators=("legal",),
            destination=destination,
            destination_conn_id=destination_conn_id,
            **kwargs,
        )

    def missing_value(self, missing: dict[str, list[str]]) -> Any:
        return missing["legal"]


class _Counter:
    """Records passed through, counted."""

    def __init__(self, records: Iterator[dict[str, Any]]) -> None:
        self.records = records
        self.count = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for record in self.records:
            self.count += 1
            yield record


def _record_cap(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PatsnapInputError("max_xcom_records", f"a whole number of records, 0 or more, not {value!r}")
    return value
