"""Indicator records as files for a lake: JSON Lines, gzip-compressed JSON Lines, or Parquet.

Every format is produced as a stream of byte chunks for ``staging.write_lines_atomically`` (the
same no-clobber, atomic publish as reports) and gives the same bytes for the same records with the
same libraries (zlib; pyarrow, whose version a Parquet file names), so a retry after the publish is
recognised. Parquet declares the catalogue's types
(``valuation.record_columns``: ``int64``, ``double``, ``string``, ``bool``, ``list<string>``, and
``fetched_at`` as a UTC timestamp); it needs pyarrow (the ``parquet`` extra).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from airflow_provider_patsnap.errors import PatsnapInputError
from airflow_provider_patsnap.valuation import BOOL, FETCHED_AT, FLOAT, INT, TEXT, TEXTS, TIMESTAMP

#: output_format -> the file name's extension.
FORMATS = {"jsonl": ".jsonl", "jsonl.gz": ".jsonl.gz", "parquet": ".parquet"}
CHUNK = 1 << 20


NEEDS_PYARROW = "'parquet' needs pyarrow: pip install 'airflow-provider-patsnap[parquet]'"


def output_format(value: Any) -> str:
    """``value`` checked: a known format whose library is installed (at DAG parse time, before any call)."""
    if value not in FORMATS:
        raise PatsnapInputError("output_format", f"one of {', '.join(map(repr, FORMATS))}, not {value!r}")
    if value == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise PatsnapInputError("output_format", NEEDS_PYARROW)
    return str(value)


def ready(fmt: str) -> None:
    """Load what ``fmt`` writes with, in the task before any call (an installed but broken pyarrow
    must not fail the write after everything was bought)."""
    if fmt == "parquet":
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError as exc:
            raise PatsnapInputError("output_format", f"{NEEDS_PYARROW} ({exc})") from None


def encode(records: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], fmt: str) -> Iterator[bytes]:
    """``records`` in ``fmt``, as byte chunks."""
    if fmt == "parquet":
        return _parquet(records, columns)
    lines = _json_lines(records)
    return _gzipped(lines) if fmt == "jsonl.gz" else lines


def _json_lines(records: Sequence[dict[str, Any]]) -> Iterator[bytes]:
    for record in records:
        yield (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8", "replace")


def _gzipped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks`` as one gzip member, streamed; its header carries no time, so the same records are the
    same bytes (with the same zlib)."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    for chunk in chunks:
        packed = packer.compress(chunk)
        if packed:
            yield packed
    yield packer.flush()


def _parquet(records: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        INT: pa.int64(),
        FLOAT: pa.float64(),
        TEXT: pa.string(),
        BOOL: pa.bool_(),
        TEXTS: pa.list_(pa.string()),
        TIMESTAMP: pa.timestamp("ms", tz="UTC"),  # Parquet has no seconds unit
    }
    schema = pa.schema([pa.field(name, types[kind]) for name, kind in columns])
    rows = [{**record, FETCHED_AT: _instant(record.get(FETCHED_AT))} for record in records]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink)
    view = memoryview(sink.getvalue())
    for start in range(0, len(view), CHUNK):
        yield bytes(view[start : start + CHUNK])


def _instant(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
