"""Batch patent indicators (P035-P040) for any number of patents, to XCom or to JSON Lines in storage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

from airflow_provider_patsnap import metrics, record_files, validation, valuation
from airflow_provider_patsnap.billing import TaskRun, open_book, request_digest
from airflow_provider_patsnap.errors import PatsnapInputError
from airflow_provider_patsnap.hooks._purchase import Scope, quietly
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.ledger.model import Purchase
from airflow_provider_patsnap.links import PatsnapApiDocsLink, PatsnapOutputLink
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        numbers, ids = validation.patents(self.patent_numbers, self.patent_ids)
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
        self._requested = len(numbers) + len(ids)
        if final is None and self._requested > self.max_xcom_records:
            raise PatsnapInputError(
                "max_xcom_records",
                f"{self._requested} patents could return {self._requested} records, more than the "
                f"{self.max_xcom_records} XCom may carry (it lives in Airflow's metadata database): give "
                "destination= to write them to storage, or raise max_xcom_records",
            )
        run = TaskRun(context, self.log)
        book = open_book(run, final, self._requested, self.hook.config.max_ambiguous_replays)
        # A file of another format is another request (the default keeps the digests of earlier releases).
        formats = [] if self.output_format == "jsonl" else [f"format:{self.output_format}"]
        digest = request_digest([*(spec.code for spec in specs), *formats], numbers, ids)
        done = book.finished(digest)
        if done is not None:
            # "execute returned but success was not recorded" (a lost worker, a failed XCom push).
            self.log.info(
                "An earlier attempt of this run already wrote %s (same request, same bytes): no call.", done["uri"]
            )
            return self._published(context, done)
        cached, pages_from_cache = self._reuse(specs, numbers, ids, where)
        planned = [
            batch
            for spec in specs
            for batch in valuation.plan_batches([spec], *_still_needed(spec, numbers, ids, cached))
        ]
        pages = book.completed(planned)
        if pages:
            self.log.info(
                "Resuming: %d of %d batch(es) were fetched by an earlier attempt (%s); fetching the other %d.",
                len(pages),
                len(planned),
                book.kind,
                len(planned) - len(pages),
            )
        todo = [batch for batch in planned if batch.key not in pages]
        pages.update(self.hook.fetch_batches(todo, on_batch=self._keeper(book), budget=book))
        pages.update(pages_from_cache)
        planned = [*planned, *cached]
        if book.total:
            self.log.warning(
                "%d batch(es) were sent again after a lost answer (each may have been billed).", book.total
            )
        records, missing = merge(specs, planned, pages, numbers, ids)
        self._log_missing(missing)
        if final is None:
            book.finish(digest, None)
            self.log.info("%d record(s): %d unit(s) bought, %d reused.", len(records), where.billed, where.reused)
            return records  # XCom mode: the records themselves (what they cost is in the log line above)
        chunks = record_files.encode(records, valuation.record_columns(specs), self.output_format)
        size = write_lines_atomically(final, chunks, key="indicators", overwrite=self.overwrite)
        result = {"uri": user_uri(final), "records": len(records), "requested": self._requested}
        result["missing"] = self.missing_value(missing)
        result["ambiguous_replays"] = book.total
        result = spent(result, where)
        book.finish(digest, result)
        self.log.info("Wrote %d record(s), %d bytes, to %s", len(records), size, result["uri"])
        return self._published(context, result)

    def _keeper(self, book: Any) -> Callable[[valuation.Batch, list[Any]], None]:
        """What happens to each answered batch: stamped with when it was fetched, checkpointed, and
        kept in the ledger's result cache (what ``reuse_within`` serves to later runs)."""
        ledger = self.hook.ledger

        def keep(batch: valuation.Batch, items: list[Any]) -> None:
            now = utcnow()
            stamp = now.isoformat(timespec="seconds")
            for item in items:
                if isinstance(item, dict):
                    item[FETCHED_AT] = stamp  # ours: a key of that name in PatSnap's item is not trusted
            book.save(batch, items)
            if ledger is not None:
                by_key = {}
                for item in items:
                    flat = valuation.flatten(batch.indicator, item)
                    key = _input_key(batch.param, flat)
                    if key is not None:
                        by_key[key] = {k: v for k, v in item.items() if k != FETCHED_AT}
                quietly(ledger.store_results, batch.indicator.code, by_key, now)

        return keep

    def _reuse(
        self, specs: Sequence[valuation.Indicator], numbers: list[str], ids: list[str], where: Scope
    ) -> tuple[list[valuation.Batch], dict[str, list[Any]]]:
        """With ``reuse_within``: the results the ledger holds for these patents, fetched in the window,
        as batches already answered (PatSnap is not asked, nor paid, for them)."""
        window = reuse_window(self.reuse_within)
        if window is None:
            return [], {}
        ledger = require_ledger(self.hook, "reuse_within")
        since = utcnow() - window
        batches: list[valuation.Batch] = []
        pages: dict[str, list[Any]] = {}
        for spec in specs:
            for param, values in (("patent_number", numbers), ("patent_id", ids)):
                keyed = {_normal(param, value): value for value in values}
                found = ledger.cached_results(spec.code, list(keyed), since)
                if not found:
                    continue
                batch = valuation.Batch(spec, param, tuple(keyed[key] for key in keyed if key in found))
                batches.append(batch)
                pages[batch.key] = [{**item, FETCHED_AT: fetched_at} for item, fetched_at in found.values()]
                reused = len(found)
                where.add(reused=reused)
                metrics.count(
                    "units.reused", reused, serial=spec.code, dag_id=where.task.dag_id if where.task else None
                )
                ledger.record_reuse(
                    Purchase(spec.path, spec.code, f"cache:{batch.key}", reused),
                    {"id": None, "job_id": None},
                    where.task,
                )
                self.log.info(
                    "%s: %d result(s) fetched within %s reused from the ledger: not bought.", spec.code, reused, window
                )
        return batches, pages

    def _published(self, context: Any, result: dict[str, Any]) -> dict[str, Any]:
        annotate_outlet_events(self.outlets, context, result)
        self._written_uri = result["uri"]
        return result

    def missing_value(self, missing: dict[str, list[str]]) -> Any:
        return missing

    def _log_missing(self, missing: dict[str, list[str]]) -> None:
        for name, inputs in missing.items():
            if inputs:
                preview = ", ".join(inputs[:10]) + (" ..." if len(inputs) > 10 else "")
                self.log.warning(
                    "PatSnap returned no %s indicators for %d of %d patent(s): %s",
                    name,
                    len(inputs),
                    self._requested,
                    preview,
                )

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

    template_fields: Sequence[str] = ("patent_numbers", "patent_ids", "destination", "destination_conn_id")
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


def merge(
    specs: Sequence[valuation.Indicator],
    planned: Sequence[valuation.Batch],
    pages: dict[str, list[Any]],
    numbers: list[str],
    ids: list[str],
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """One record per patent found (in input order) with every indicator's fields, and what is missing."""
    clashes = valuation.clashing_fields(specs)
    by_input: dict[str, dict[str, Any]] = {}
    found: dict[str, set[str]] = {spec.name: set() for spec in specs}
    now = utcnow().isoformat(timespec="seconds")
    for batch in planned:
        spec = batch.indicator
        for item in pages.get(batch.key, []):
            flat = valuation.flatten(spec, item)
            ident = _input_key(batch.param, flat)
            if ident is None:
                continue
            found[spec.name].add(ident)
            record = by_input.setdefault(ident, {"pn": flat["pn"], "patent_id": flat["patent_id"]})
            record["pn"] = record["pn"] or flat["pn"]
            record["patent_id"] = record["patent_id"] or flat["patent_id"]
            # When PatSnap computed it: the oldest of its indicators (a reused result keeps its own time).
            fetched = str(item.get(FETCHED_AT) or now) if isinstance(item, dict) else now
            record[FETCHED_AT] = min(record.get(FETCHED_AT, fetched), fetched)
            for name in spec.fields:
                record[valuation.column_name(spec, name, clashes)] = flat[name]
    inputs = [("patent_number", n) for n in numbers] + [("patent_id", i) for i in ids]
    # Input order first; then anything PatSnap returned under a spelling no input matches (paid for: kept).
    ordered = [by_input[k] for k in (_normal(p, v) for p, v in inputs) if k in by_input]
    records: list[dict[str, Any]] = []
    emitted: set[int] = set()
    for record in [*ordered, *by_input.values()]:
        if id(record) in emitted:
            continue
        emitted.add(id(record))
        for spec in specs:
            for name in spec.fields:
                record.setdefault(valuation.column_name(spec, name, clashes), _empty(spec.fields[name]))
        records.append(record)
    missing = {
        spec.name: [value for param, value in inputs if _normal(param, value) not in found[spec.name]] for spec in specs
    }
    return records, missing


def _normal(param: str, value: str) -> str:
    # PatSnap compares numbers case-insensitively; ids are UUIDs.
    return f"n:{value.upper()}" if param == "patent_number" else f"i:{value.lower()}"


def _input_key(param: str, flat: dict[str, Any]) -> str | None:
    value = flat["pn"] if param == "patent_number" else flat["patent_id"]
    return _normal(param, value) if value else None


FETCHED_AT = valuation.FETCHED_AT


def utcnow() -> dt.datetime:
    """The clock that stamps ``fetched_at`` (one place, so a test can hold it still)."""
    return dt.datetime.now(dt.timezone.utc)


def _still_needed(
    spec: valuation.Indicator, numbers: list[str], ids: list[str], cached: list[valuation.Batch]
) -> tuple[list[str], list[str]]:
    """The inputs of ``spec`` that no reused batch answers."""
    served = {(b.param, _normal(b.param, p)) for b in cached if b.indicator == spec for p in b.patents}
    return (
        [n for n in numbers if ("patent_number", _normal("patent_number", n)) not in served],
        [i for i in ids if ("patent_id", _normal("patent_id", i)) not in served],
    )


def _empty(kind: str) -> Any:
    return [] if kind == valuation.TEXTS else None


def _record_cap(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PatsnapInputError("max_xcom_records", f"a whole number of records, 0 or more, not {value!r}")
    return value
