"""PatSnap's statement of account against the ledger: per endpoint, what was billed and what we recorded.

The statement gives, per billed endpoint over a period of PatSnap's days (China time: Asia/Shanghai),
the chargeable times (``fee_times``). The ledger's side is every unit *sent* in the same days (by when
it was sent, in the statement's time zone, whatever the budget's), apart: the answered units, settled
to what PatSnap billed, and the unsure ones (ambiguous: sent, no answer proved nothing was billed;
or still *sent*: its process died before the answer was recorded).

A period is *closed* once its last day ended more than ``lag`` ago (PatSnap's statement may lag up to
a day); only then does it settle anything: unsure units are billed when the difference is exactly
theirs, not billed when there is none, and a unit still *intent* (its process died before sending:
the sent mark always comes first) gives its reservation back. A period not closed is reconciled all
the same, flagged ``partial``, and settles nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from airflow_provider_patsnap.ledger.model import STATEMENT_LAG, STATEMENT_TIMEZONE
from airflow_provider_patsnap.ledger.store import AMBIGUOUS, ANSWERED, INTENT, SENT, PatsnapLedger


def day_text(day: dt.date) -> str:
    return day.strftime("%Y-%m-%d")


def period_bounds(start: dt.date, end: dt.date, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """``[start 00:00, the day after end 00:00)`` in ``zone``."""
    tz = ZoneInfo(zone)
    return dt.datetime.combine(start, dt.time(), tz), dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tz)


def reconcile(
    ledger: PatsnapLedger | None,
    statement: dict[str, Any],
    start: dt.date,
    end: dt.date,
    *,
    now: dt.datetime,
    zone: str = STATEMENT_TIMEZONE,
    lag: dt.timedelta = STATEMENT_LAG,
) -> dict[str, Any]:
    """``{"period", "closed", "endpoints": [{"path", "serial", "fee_times", "ledger_units", "difference",
    "partial", ...}], "matched"}`` (without a ledger, ``ledger_units`` and ``difference`` are None)."""
    begin, finish = period_bounds(start, end, zone)
    partial = now < finish + lag
    usage = [row for row in statement.get("usage") or [] if isinstance(row, dict) and row.get("request_path")]
    billed: dict[str, int] = defaultdict(int)
    unsure: dict[str, list[tuple[int, int]]] = defaultdict(list)  # path -> [(unit id, units)]
    serials: dict[str, str] = {}
    released = 0
    if ledger is not None:
        for row in ledger.rows_between(begin, finish):
            path, state = row["endpoint"], row["state"]
            if state == INTENT:
                if not partial:
                    ledger.refuse(int(row["id"]))
                    released += int(row["units_reserved"])
                continue
            serials.setdefault(path, row["serial"])
            if state == ANSWERED:
                billed[path] += int(row["units_billed"] or 0)
            elif state in (AMBIGUOUS, SENT):
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
        "timezone": zone,
        "closed": not partial,
        "released_intent_units": released,
        "endpoints": endpoints,
        "matched": ledger is not None and all(e["difference"] == 0 for e in endpoints),
    }


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
