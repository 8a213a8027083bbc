"""A portfolio of patents read from a file or URI (``patents_from``), checked before any call.

* ``.txt``: one patent number per line; blank lines and lines starting with ``#`` are skipped.
* ``.csv`` (UTF-8, a BOM allowed) and ``.parquet`` (pyarrow, the ``parquet`` extra): a
  ``patent_number`` and/or ``patent_id`` column (names matched without case). Each row is one
  patent: its ``patent_id`` when it has one (exact), else its ``patent_number``, never both (both
  would be billed); rows with neither are skipped and counted in the log.

Every value passes the same gate as a list argument (``validation.patent_value``), duplicates are
dropped (first wins, case-insensitive) and a portfolio is at most ``MAX_PATENTS``. The file is read as
a stream, so only the checked list is held. A task reads it once per run: ``billing.batches`` pins the
list its first attempt read, so a retry does not buy a list the file was changed to in between.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_patsnap.errors import PatsnapInputError
from airflow_provider_patsnap.validation import UniquePatents, patent_value, rendered_text

PARAMETER = "patents_from"
KINDS = (".txt", ".csv", ".parquet")
COLUMNS = ("patent_number", "patent_id")
MAX_PATENTS = 10_000_000
#: A text line longer than this is no patent (the value gate allows 100 characters).
MAX_LINE = 1024


@dataclass(frozen=True)
class Source:
    """A checked ``patents_from``: where to read, and which kind of file it is."""

    uri: str
    kind: str
    conn_id: str | None = None

    @classmethod
    def parse(cls, value: Any, conn_id: str | None = None) -> Source:
        if hasattr(value, "protocol") and hasattr(value, "open"):  # an ObjectStoragePath
            uri, conn_id = str(value), getattr(value, "conn_id", None) or conn_id
        elif isinstance(value, (str, os.PathLike)):
            uri = rendered_text(PARAMETER, os.fspath(value)).strip()
        else:
            raise PatsnapInputError(PARAMETER, f"a file path or URI, got {type(value).__name__}")
        if "://" in uri and _has_password(uri):  # checked first: the URI is named in messages and the pin
            raise PatsnapInputError(
                PARAMETER, "a URI with a password would be logged and kept: put credentials in patents_from_conn_id"
            )
        kind = os.path.splitext(uri.split("?", 1)[0].rstrip("/"))[1].lower()
        if not uri or kind not in KINDS:
            raise PatsnapInputError(
                PARAMETER, f"a .txt, .csv or .parquet file of patents, got {uri[:200]!r}: rename it, or convert it"
            )
        return cls(uri=uri, kind=kind, conn_id=conn_id or None)

    def read(self, log: Any = None) -> tuple[list[str], list[str]]:
        """The portfolio: patent numbers and patent ids, in file order, checked and without duplicates."""
        found = {"patent_number": UniquePatents(), "patent_id": UniquePatents()}
        skipped = 0
        try:
            with self._open() as handle:
                rows = _text_rows(handle) if self.kind == ".txt" else _table_rows(handle, self.kind)
                for where, param, raw in rows:
                    if param is None:
                        skipped += 1
                        continue
                    found[param].add(patent_value(PARAMETER, where, raw))
                    if len(found["patent_number"].values) + len(found["patent_id"].values) > MAX_PATENTS:
                        raise PatsnapInputError(
                            PARAMETER, f"more than {MAX_PATENTS:,} patents; split the portfolio across tasks"
                        )
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
            raise PatsnapInputError(PARAMETER, f"cannot read {self.uri[:200]!r}: {type(exc).__name__}") from None
        except UnicodeDecodeError as exc:
            raise PatsnapInputError(PARAMETER, f"{self.uri[:200]!r} is not UTF-8 text ({exc.reason})") from None
        if skipped and log is not None:
            log.warning("%s: %d row(s) with neither patent_number nor patent_id were skipped.", PARAMETER, skipped)
        numbers, ids = found["patent_number"].values, found["patent_id"].values
        if not numbers and not ids:
            raise PatsnapInputError(PARAMETER, f"{self.uri[:200]!r} holds no patents")
        return numbers, ids

    def _open(self) -> Any:
        if "://" not in self.uri:
            return open(os.path.expanduser(self.uri), "rb")
        from airflow_provider_patsnap.version_compat import object_storage_path

        return object_storage_path(self.uri, conn_id=self.conn_id).open("rb")


Row = tuple[str, "str | None", Any]


def _has_password(uri: str) -> bool:
    try:
        return urlsplit(uri).password is not None
    except ValueError:  # a netloc no parser agrees on: treated as hiding one
        return True


def _text_rows(handle: Any) -> Iterator[Row]:
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline=None)
    # Read with a bound: a hostile file with one endless line is refused, never held whole.
    for number, line in enumerate(iter(lambda: text.readline(MAX_LINE + 1), ""), start=1):
        if len(line) > MAX_LINE:
            raise PatsnapInputError(PARAMETER, f"line {number} is longer than {MAX_LINE} characters: not a patent")
        value = line.strip()
        if value and not value.startswith("#"):
            yield f"line {number}", "patent_number", value


def _table_rows(handle: Any, kind: str) -> Iterator[Row]:
    if kind == ".csv":
        reader = csv.reader(io.TextIOWrapper(handle, encoding="utf-8-sig", newline=""))
        try:
            index = _columns(next(reader, []))
            for row in reader:  # a field is at most csv.field_size_limit() (128 KiB) long, a line any
                cells = {name: row[i] if i < len(row) else "" for name, i in index.items()}
                yield _row(f"line {reader.line_num}", cells)
        except csv.Error as exc:
            raise PatsnapInputError(PARAMETER, f"not a readable CSV file at line {reader.line_num}: {exc}") from None
        return
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise PatsnapInputError(
            PARAMETER, "a .parquet portfolio needs pyarrow: pip install 'airflow-provider-patsnap[parquet]'"
        ) from None
    import pyarrow as pa

    try:
        table = pq.ParquetFile(handle)
        index = _columns(table.schema_arrow.names)
        number = 0
        names = [table.schema_arrow.names[i] for i in index.values()]
        for chunk in table.iter_batches(batch_size=65_536, columns=names):
            columns = {name: chunk.column(position).to_pylist() for position, name in enumerate(index)}
            for offset in range(chunk.num_rows):
                number += 1
                yield _row(f"row {number}", {name: values[offset] for name, values in columns.items()})
    except pa.ArrowException as exc:
        raise PatsnapInputError(PARAMETER, f"not a readable Parquet file: {type(exc).__name__}") from None


def _columns(names: list[str]) -> dict[str, int]:
    """Which of ``COLUMNS`` the table has, and where (names matched without case or spaces)."""
    lowered = [str(name).strip().lower() for name in names]
    index = {name: lowered.index(name) for name in COLUMNS if name in lowered}
    if not index:
        raise PatsnapInputError(
            PARAMETER, f"needs a patent_number or patent_id column; its columns are {[str(n)[:40] for n in names[:20]]}"
        )
    return index


def _row(where: str, cells: dict[str, Any]) -> Row:
    for param in ("patent_id", "patent_number"):  # the exact identifier first
        value = cells.get(param)
        if value is not None and str(value).strip():
            return where, param, value
    return where, None, None
