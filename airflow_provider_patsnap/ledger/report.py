"""What the ledger says a team spent, grouped by DAG, endpoint or day (the CLI's ``report``)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Sequence
from typing import Any

from airflow_provider_patsnap.ledger.store import AMBIGUOUS, ANSWERED, REFUSED, REUSED, SENT, PatsnapLedger

GROUPINGS = ("dag", "endpoint", "day")
FORMATS = ("table", "csv", "json")
COLUMNS = ("billed_units", "reused_units", "ambiguous_units", "calls", "refused_calls")


def since_day(text: str, ledger: PatsnapLedger, now: dt.datetime | None = None) -> str:
    """``7d``, ``12h`` or a date (``2026-12-01``) as the first day, in the ledger's time zone."""
    now = now or dt.datetime.now(dt.timezone.utc)
    match = re.fullmatch(r"\s*(\d+)\s*([dh])\s*", text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        delta = dt.timedelta(days=amount) if unit == "d" else dt.timedelta(hours=amount)
        return ledger.periods(now - delta)[0]
    try:
        return dt.date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise ValueError(f"--since: give 7d, 12h or a date like 2026-12-01, not {text!r}") from None


def summarise(rows: Sequence[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """One line per DAG, endpoint (serial) or day, with its units; the largest spend first."""
    if by not in GROUPINGS:
        raise ValueError(f"--by: one of {', '.join(GROUPINGS)}, not {by!r}")
    lines: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = {"dag": row.get("dag_id") or "(outside a DAG)", "endpoint": row["serial"], "day": row["day"]}[by]
        line = lines.setdefault(key, {by: key, **dict.fromkeys(COLUMNS, 0)})
        line["calls"] += 1
        if row["state"] == ANSWERED:
            line["billed_units"] += int(row["units_billed"] or 0)
        elif row["state"] == REUSED:
            line["reused_units"] += int(row["units_reused"] or 0)
        elif row["state"] in (AMBIGUOUS, SENT):
            line["ambiguous_units"] += int(row["units_reserved"] or 0)
        elif row["state"] == REFUSED:
            line["refused_calls"] += 1
    ordered = sorted(lines.values(), key=lambda line: (-line["billed_units"], str(line[by])))
    return sorted(ordered, key=lambda line: line[by]) if by == "day" else ordered


def render(lines: list[dict[str, Any]], by: str, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"--format: one of {', '.join(FORMATS)}, not {fmt!r}")
    header = (by, *COLUMNS)
    if fmt == "json":
        return json.dumps(lines, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(lines)
        return out.getvalue()
    totals = {by: "total", **{c: sum(int(line[c]) for line in lines) for c in COLUMNS}}
    table = [header, *[tuple(str(line[c]) for c in header) for line in [*lines, totals]]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    text = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in table
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text) + "\n"
