"""Indicator records for a portfolio of any size, streamed block by block.

The portfolio is cut into blocks of 100 patents (one request per indicator per block, the same
batches, and so the same checkpoint keys, as planning the whole list at once). Blocks are planned
lazily, their batches fetched a bounded window ahead of the block being written, and each block is
merged into records and handed on as soon as all its indicators are in: memory holds that window,
never the portfolio's results.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Any

from airflow_provider_patsnap import valuation
from airflow_provider_patsnap.validation import MAX_BATCH

FETCHED_AT = valuation.FETCHED_AT
Stream = Callable[
    [Iterable[valuation.Batch], Callable[[valuation.Batch], "list[Any] | None"]],
    Generator[tuple[valuation.Batch, list[Any]], None, None],
]
#: ``(indicator, param, block)`` -> the patents of the block a reused result answers, and its items.
Reuse = Callable[[valuation.Indicator, str, tuple[str, ...]], "tuple[tuple[str, ...], list[Any]] | None"]


class Missing:
    """Per indicator, the inputs PatSnap returned nothing for: every one counted, the first ``limit`` listed."""

    def __init__(self, specs: Sequence[valuation.Indicator], limit: int) -> None:
        self.limit = limit
        self.listed: dict[str, list[str]] = {spec.name: [] for spec in specs}
        self.counts: dict[str, int] = dict.fromkeys(self.listed, 0)

    def add(self, name: str, inputs: list[str]) -> None:
        self.counts[name] += len(inputs)
        room = self.limit - len(self.listed[name])
        if room > 0:
            self.listed[name].extend(inputs[:room])

    @property
    def truncated(self) -> bool:
        return any(self.counts[name] > len(listed) for name, listed in self.listed.items())


def indicator_records(
    specs: Sequence[valuation.Indicator],
    numbers: list[str],
    ids: list[str],
    *,
    stream: Stream,
    checkpoint: Callable[[valuation.Batch], list[Any] | None],
    missing: Missing,
    reuse: Reuse | None = None,
) -> Generator[dict[str, Any], None, None]:
    """One flat record per patent found, in input order, block by block (``merge``)."""
    blocks: deque[tuple[str, tuple[str, ...], int]] = deque()
    reused: dict[str, list[Any]] = {}

    def plan() -> Iterator[valuation.Batch]:
        for param, values in (("patent_number", numbers), ("patent_id", ids)):
            for start in range(0, len(values), MAX_BATCH):
                block = tuple(values[start : start + MAX_BATCH])
                batches = []
                for spec in specs:
                    rest = block
                    served = reuse(spec, param, block) if reuse is not None else None
                    if served:
                        patents, items = served
                        cached = valuation.Batch(spec, param, patents)
                        reused[cached.key] = items
                        batches.append(cached)
                        taken = set(patents)
                        rest = tuple(p for p in block if p not in taken)
                    if rest:
                        batches.append(valuation.Batch(spec, param, rest))
                blocks.append((param, block, len(batches)))  # before its batches: the consumer needs it first
                yield from batches

    def known(batch: valuation.Batch) -> list[Any] | None:
        items = reused.pop(batch.key, None)
        return items if items is not None else checkpoint(batch)

    current: list[tuple[valuation.Batch, list[Any]]] = []
    # Closed with this generator: the fetch's own clean-up (checkpoint what was answered, count what
    # was in flight) runs at once, whoever stops reading.
    with contextlib.closing(stream(plan(), known)) as answers:
        for answered in answers:
            current.append(answered)
            param, block, count = blocks[0]
            if len(current) < count:
                continue
            blocks.popleft()
            inputs = list(block)
            records, lacking = merge(
                specs,
                [batch for batch, _ in current],
                {batch.key: items for batch, items in current},
                inputs if param == "patent_number" else [],
                inputs if param == "patent_id" else [],
            )
            current = []
            for name, values in lacking.items():
                missing.add(name, values)
            yield from records
    if current or blocks:  # never a silently short output
        raise RuntimeError(f"the batch stream ended with {len(blocks)} block(s) of the portfolio unanswered")


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
            ident = input_key(batch.param, flat)
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
    ordered = [by_input[k] for k in (normal(p, v) for p, v in inputs) if k in by_input]
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
        spec.name: [value for param, value in inputs if normal(param, value) not in found[spec.name]] for spec in specs
    }
    return records, missing


def normal(param: str, value: str) -> str:
    # PatSnap compares numbers case-insensitively; ids are UUIDs.
    return f"n:{value.upper()}" if param == "patent_number" else f"i:{value.lower()}"


def input_key(param: str, flat: dict[str, Any]) -> str | None:
    value = flat["pn"] if param == "patent_number" else flat["patent_id"]
    return normal(param, value) if value else None


def utcnow() -> dt.datetime:
    """The clock that stamps ``fetched_at`` (one place, so a test can hold it still)."""
    return dt.datetime.now(dt.timezone.utc)


def _empty(kind: str) -> Any:
    return [] if kind == valuation.TEXTS else None
