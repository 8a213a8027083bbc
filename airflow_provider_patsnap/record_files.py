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
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from airflow_provider_patsnap.errors import PatsnapInputError
from airflow_provider_patsnap.valuation import BOOL, FETCHED_AT, FLOAT, INT, TEXT, TEXTS, TIMESTAMP

#: output_format -> the file name's extension.
FORMATS = {"jsonl": ".jsonl", "jsonl.gz": ".jsonl.gz", "parquet": ".parquet"}
CHUNK = 1 << 20
#: Records per Parquet row group: fixed, so the same records are the same bytes.
ROW_GROUP = 10_000


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


def encode(records: Iterable[dict[str, Any]], columns: Sequence[tuple[str, str]], fmt: str) -> Iterator[bytes]:
    """``records`` in ``fmt``, as byte chunks, streamed: memory holds one row group, never the file."""
    if fmt == "parquet":
        return _parquet(records, columns)
    lines = _json_lines(records)
    return _gzipped(lines) if fmt == "jsonl.gz" else lines


def _json_lines(records: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    for record in records:
        yield (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8", "replace")


def _gzipped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks`` as one gzip member, streamed; its header carries no time, so the same records are the
    same bytes (with the same zlib)."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= CHUNK:  # one call per MiB, not per line
            packed = packer.compress(b"".join(pending))
            pending, size = [], 0
            if packed:
                yield packed
    yield packer.compress(b"".join(pending)) + packer.flush()


class _Spool:
    """The file object pyarrow writes to: bytes kept until drained (one row group at a time)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def _parquet(records: Iterable[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> Iterator[bytes]:
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
    spool = _Spool()
    writer = pq.ParquetWriter(spool, schema)
    rows: list[dict[str, Any]] = []

    def row_group() -> bytes:
        writer.write_table(pa.Table.from_pylist(rows, schema=schema), row_group_size=ROW_GROUP)
        rows.clear()
        return spool.drain()

    for record in records:
        rows.append({**record, FETCHED_AT: _instant(record.get(FETCHED_AT))})
        if len(rows) >= ROW_GROUP:
            yield row_group()
    if rows or not spool.position:
        yield row_group()
    writer.close()
    yield spool.drain()


def _instant(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
