"""The emulator's counters: calls per endpoint, creates, billing per endpoint, faults, downloads."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from .protocol import ENTERPRISE, INDICATORS, PATENT_VALUE, R001_BASE, R002_BASE

#: China Standard Time (UTC+8, no daylight saving): the statement's days.
CHINA_OFFSET = 8 * 3600
#: Endpoint path -> PatSnap's serial number, as the statement names them.
SERIALS: dict[str, str] = {
    **{
        f"{base}/task/{suffix}": code
        for base, code in ((R001_BASE, "R001"), (R002_BASE, "R002"))
        for suffix in ("create", "create-no-logo")
    },
    **{path: code for code, path, _ in INDICATORS.values()},
}
#: An invented price per unit (the statement's used_money): reports and indicator results.
PRICES = {"R": 20.0, "P": 0.1}


def _empty_stats() -> dict[str, Any]:
    return {
        "calls": {},  # "METHOD /path" (the CDN: "GET /download") -> calls received, answered or not
        "tokens_issued": 0,
        "creates": 0,  # jobs created (billed), whatever the client was answered
        "creates_by_kind": {ENTERPRISE: 0, PATENT_VALUE: 0},
        "creates_by_subject": {},  # e.g. "R001 company_name=Example Robotics Ltd" -> jobs created
        "status_polls": 0,
        "downloads_started": 0,
        "downloads_completed": 0,
        "bytes_served": 0,
        "billable_units": 0,  # total of "billed"
        "billed": {},  # endpoint path -> units billed (1 per job created, 1 per indicator result returned)
        "faults": 0,
        "gateway_timeouts": 0,  # creates answered with a gateway page after creating the job
        "outage_answers": 0,  # calls answered with an error by an outage window
        "rate_limited": 0,
        "auth_rejected": 0,
        "rejected_auth_header_downloads": 0,
        "internal_errors": 0,
    }


class _Counters:
    """The stats half of :class:`PatsnapEmulator` (a mixin: the state it uses is set up there)."""

    _lock: threading.RLock
    _stats: dict[str, Any]
    _statement: dict[tuple[str, str], list[int]]
    errors: list[str]

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot (a deep copy) of the counters: see ``_empty_stats`` in ``stats.py`` for the keys."""
        with self._lock:
            return copy.deepcopy(self._stats)

    def reset_stats(self) -> None:
        """Zero every counter (jobs, tokens and knobs are kept)."""
        with self._lock:
            self._stats = _empty_stats()

    def statement(self, time_start: str, time_end: str) -> dict[str, Any]:
        """PatSnap's statement of account (``POST /open-user/statement/v2``'s ``data``) for the days
        ``time_start``..``time_end`` (``YYYYMMDD``, both included): per billed endpoint over the period."""
        with self._lock:
            rows = [(path, usage) for (day, path), usage in self._statement.items() if time_start <= day <= time_end]
        totals: dict[str, list[int]] = {}
        for path, (calls, fees) in rows:
            total = totals.setdefault(path, [0, 0])
            total[0] += calls
            total[1] += fees
        usage: list[dict[str, Any]] = []
        money = 0.0
        for path, (calls, fees) in sorted(totals.items()):
            serial = SERIALS.get(path, "")
            usage.append(
                {
                    "request_path": path,
                    "serial_number": serial,
                    "request_path_name": f"<cn>[{serial}]</cn><us>[{serial}]</us>",
                    "usage_times": calls,
                    "fee_times": fees,
                    "used_money": round(fees * PRICES.get(serial[:1], 0.1), 2),
                }
            )
            money += fees * PRICES.get(serial[:1], 0.1)
        return {
            "usage": usage,
            "usage_money": round(money, 2),
            "combo_usage": [],
            "combo_use_num": 0,
            "combo_usage_num": 0,
        }

    def billed(self, endpoint_suffix: str | None = None) -> int:
        """Units billed so far on endpoints whose path ends with ``endpoint_suffix`` (None: all of them).

        E.g. ``billed("/legal_indicators")``, ``billed("/task/create-no-logo")``, ``billed()``.
        """
        with self._lock:
            billed: dict[str, int] = self._stats["billed"]
            return sum(
                units for path, units in billed.items() if endpoint_suffix is None or path.endswith(endpoint_suffix)
            )

    def _record_error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)
            self._stats["internal_errors"] += 1

    def _bump(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._stats[name] += amount

    def _count_call(self, key: str) -> None:
        with self._lock:
            calls = self._stats["calls"]
            calls[key] = calls.get(key, 0) + 1

    def _bill(self, path: str, units: int) -> None:
        """Bill ``units`` on the endpoint ``path`` (also added to the ``billable_units`` total), and write
        the call into the statement of account (per day in China's time zone, as PatSnap's is)."""
        day = time.strftime("%Y%m%d", time.gmtime(time.time() + CHINA_OFFSET))
        with self._lock:
            usage = self._statement.setdefault((day, path), [0, 0])
            usage[0] += 1
            usage[1] += max(units, 0)
        if units <= 0:
            return
        with self._lock:
            billed = self._stats["billed"]
            billed[path] = billed.get(path, 0) + units
            self._stats["billable_units"] += units
