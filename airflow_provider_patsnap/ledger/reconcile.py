"""PatSnap's statement of account against the ledger: per endpoint, what was billed and what we recorded.

The statement gives, per billed endpoint over a period, the chargeable times (``fee_times``). The
ledger's side is, for the same days (in the budget time zone) and account, the units of every
answered unit (settled to what PatSnap billed) and, apart, those of ambiguous ones (sent, no answer
proved nothing was billed). A closed period settles the ambiguous units where the statement can:
when the difference is exactly their units they were billed, when there is no difference they were
not. A period that includes today is reconciled too, flagged ``partial`` (PatSnap's statement may lag
a day), and never settles anything.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from airflow_provider_patsnap.ledger.store import AMBIGUOUS, ANSWERED, PatsnapLedger


def day_text(day: dt.date) -> str:
    return day.strftime("%Y-%m-%d")


def reconcile(
    ledger: PatsnapLedger | None, statement: dict[str, Any], start: dt.date, end: dt.date, today: dt.date
) -> dict[str, Any]:
    """``{"period", "endpoints": [{"path", "serial", "fee_times", "ledger_units", "difference", ...}],
    "matched"}`` (without a ledger, ``ledger_units`` and ``difference`` are None)."""
    partial = end >= today
    usage = [row for row in statement.get("usage") or [] if isinstance(row, dict) and row.get("request_path")]
    billed: dict[str, int] = defaultdict(int)
    unsure: dict[str, list[tuple[int, int]]] = defaultdict(list)  # path -> [(unit id, units)]
    serials: dict[str, str] = {}
    if ledger is not None:
        for row in ledger.rows(day_text(start), day_text(end)):
            path = row["endpoint"]
            serials.setdefault(path, row["serial"])
            if row["state"] == ANSWERED:
                billed[path] += int(row["units_billed"] or 0)
            elif row["state"] == AMBIGUOUS:
                unsure[path].append((int(row["id"]), int(row["units_reserved"])))
    by_path = {str(row["request_path"]): row for row in usage}
    endpoints = []
    for path in sorted(set(by_path) | set(billed) | set(unsure)):
        row = by_path.get(path, {})
        fee = _int(row.get("fee_times"))
        entry: dict[str, Any] = {
            "path": path,
            "serial": str(row.get("serial_number") or serials.get(path, "")),
            "fee_times": fee,
            "ledger_units": None,
            "difference": None,
            "partial": partial,
        }
        if ledger is not None:
            ambiguous = sum(units for _, units in unsure[path])
            difference = fee - billed[path]
            entry.update(ledger_units=billed[path], ambiguous_units=ambiguous, difference=difference)
            if ambiguous and not partial and difference in (0, ambiguous):
                was_billed = difference == ambiguous
                ledger.resolve_ambiguous([unit for unit, _ in unsure[path]], billed=was_billed)
                entry.update(
                    ledger_units=billed[path] + (ambiguous if was_billed else 0),
                    difference=0,
                    resolved={"units": ambiguous, "billed": was_billed},
                    ambiguous_units=0,
                )
        endpoints.append(entry)
    return {
        "period": [day_text(start), day_text(end)],
        "endpoints": endpoints,
        "matched": ledger is not None and all(e["difference"] == 0 for e in endpoints),
    }


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
