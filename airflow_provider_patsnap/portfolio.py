"""A patent portfolio read from storage: what ``patents_from`` names (a path or any ObjectStoragePath URI).

- ``.txt``: one patent number per line (blank lines and ``#`` comments skipped);
- ``.csv``: a ``patent_number`` or ``patent_id`` column (a header row);
- ``.parquet``: the same columns (the ``parquet`` extra).

Read before any PatSnap call; every problem is a ``PatsnapInputError`` naming ``patents_from``. The
patents then go through the same checks as ``patent_numbers`` / ``patent_ids``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from airflow_provider_patsnap.errors import PatsnapInputError
from airflow_provider_patsnap.validation import rendered_text
from airflow_provider_patsnap.version_compat import object_storage_path

PARAMETER = "patents_from"
COLUMNS = ("patent_number", "patent_id")
SUFFIXES = (".txt", ".csv", ".parquet")


def read_portfolio(source: Any) -> tuple[list[str], list[str]]:
    """(patent numbers, patent ids) listed in the file ``source`` names, in file order."""
    text = rendered_text(PARAMETER, str(source or "")).strip()
    if not text:
        raise PatsnapInputError(PARAMETER, "give a path or URI of a .txt, .csv or .parquet portfolio")
    suffix = next((s for s in SUFFIXES if text.lower().rsplit("?", 1)[0].endswith(s)), None)
    if suffix is None:
        raise PatsnapInputError(PARAMETER, f"{text!r}: name a .txt, .csv or .parquet file")
    path = object_storage_path(text if "://" in text else Path(text).resolve().as_uri())
    try:
        with path.open("rb") as handle:
            if suffix == ".txt":
                return _text_lines(handle), []
            if suffix == ".csv":
                return _csv_columns(handle, text)
            return _parquet_columns(handle, text)
    except FileNotFoundError:
        raise PatsnapInputError(PARAMETER, f"{text!r} does not exist") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PatsnapInputError(PARAMETER, f"{text!r} cannot be read as {suffix} ({exc})") from None


def _text_lines(handle: Any) -> list[str]:
    lines = io.TextIOWrapper(handle, encoding="utf-8-sig")
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _csv_columns(handle: Any, text: str) -> tuple[list[str], list[str]]:
    rows = csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8-sig", newline=""))
    found = [c for c in COLUMNS if c in (rows.fieldnames or [])]
    if not found:
        raise PatsnapInputError(PARAMETER, f"{text!r} has no {' or '.join(COLUMNS)} column (it has {rows.fieldnames})")
    numbers: list[str] = []
    ids: list[str] = []
    for row in rows:
        for column, out in (("patent_number", numbers), ("patent_id", ids)):
            value = (row.get(column) or "").strip() if column in found else ""
            if value:
                out.append(value)
    return numbers, ids


def _parquet_columns(handle: Any, text: str) -> tuple[list[str], list[str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise PatsnapInputError(PARAMETER, "a .parquet portfolio needs pyarrow: pip install '...[parquet]'") from None
    table_file = pq.ParquetFile(handle)
    found = [c for c in COLUMNS if c in table_file.schema_arrow.names]
    if not found:
        raise PatsnapInputError(PARAMETER, f"{text!r} has no {' or '.join(COLUMNS)} column")
    table = table_file.read(columns=found)
    values = {column: table.column(column).to_pylist() for column in found}
    return (
        [str(v).strip() for v in values.get("patent_number", []) if v is not None and str(v).strip()],
        [str(v).strip() for v in values.get("patent_id", []) if v is not None and str(v).strip()],
    )
