"""What the ledger records, as plain values (no database here: the hook imports these cheaply)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

DEFAULT_TIMEZONE = "Asia/Shanghai"
#: PatSnap's days (its statement's), per its documentation's examples.
STATEMENT_TIMEZONE = "Asia/Shanghai"
#: How long after a day ends PatSnap's statement is taken as final for it (it may lag up to a day).
STATEMENT_LAG = dt.timedelta(days=1)


class BudgetExceeded(Exception):
    """A cap would be passed: nothing was sent. ``period`` names the cap, ``spent`` and ``cap`` its units."""

    def __init__(self, message: str, *, period: str, spent: int, cap: int) -> None:
        self.period, self.spent, self.cap = period, spent, cap
        super().__init__(message)


@dataclass(frozen=True)
class Purchase:
    """What a billable call would buy."""

    endpoint: str
    serial: str
    subject: str
    units: int
    variant: str = ""


@dataclass(frozen=True)
class TaskRef:
    """The task instance (and run of it) a unit is bought for."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    task_run: int
    try_number: int


@dataclass(frozen=True)
class Budget:
    """An account's caps (None: no cap) and the time zone its days are counted in."""

    daily: int | None = None
    monthly: int | None = None
    timezone: str = DEFAULT_TIMEZONE
