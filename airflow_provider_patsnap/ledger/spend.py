"""What one account spent over the last days, read from the ledger for the spend page.

Every figure is an aggregate computed by the database over an index (``account, day`` for the days,
``account, state`` for the open questions), so the page costs the same few queries whatever the
ledger's size. Days are the ledger's budget days (its time zone, Asia/Shanghai unless set).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import and_, desc, func, or_, select

from airflow_provider_patsnap.ledger.schema import SCHEMA_VERSION, reconciliations, units
from airflow_provider_patsnap.ledger.store import AMBIGUOUS, ANSWERED, REUSED, SENT, PatsnapLedger, _iso

#: A unit still *sent* this long after it was sent has lost its answer (its process died): an open question.
UNANSWERED_AFTER = dt.timedelta(minutes=15)
TOP = 10
OPEN_LIMIT = 50


def spend(
    ledger: PatsnapLedger,
    *,
    days: int,
    now: dt.datetime,
    visible: Callable[[str | None], bool] = lambda _dag_id: True,
) -> dict[str, Any]:
    """``{"timezone", "first_day", "last_day", "days", "budget", "top", "reused_units", "open"}`` for the
    ``days`` budget days ending today; ``visible`` says which DAGs the reader may see by name."""
    today, month = ledger.periods(now)
    first_day = (dt.date.fromisoformat(today) - dt.timedelta(days=days - 1)).isoformat()
    written = getattr(ledger, "version", SCHEMA_VERSION) is not None  # a reader may open an empty database
    per_day: Sequence[Any] = []
    top: list[Any] = []
    differences: list[Any] = []
    open_units: list[dict[str, Any]] = []
    latest: dict[int, dict[str, Any]] = {}
    reused: Any = 0
    window = and_(units.c.account == ledger.account, units.c.day >= first_day, units.c.day <= today)
    with ledger.engine.connect() as connection:
        if written:
            per_day = connection.execute(
                select(units.c.day, units.c.serial, func.sum(units.c.units_billed))
                .where(window, units.c.state == ANSWERED)
                .group_by(units.c.day, units.c.serial)
                .order_by(units.c.day, units.c.serial)
            ).all()
            reused = connection.execute(
                select(func.coalesce(func.sum(units.c.units_reused), 0)).where(window, units.c.state == REUSED)
            ).scalar()
            tasks = connection.execute(
                select(
                    units.c.dag_id,
                    units.c.task_id,
                    func.sum(units.c.units_billed),
                    func.count(),
                    func.max(units.c.id),
                )
                .where(window, units.c.state == ANSWERED, units.c.dag_id.is_not(None))
                .group_by(units.c.dag_id, units.c.task_id)
            ).all()
            readable = [row for row in tasks if visible(row[0])]
            top = sorted(readable, key=lambda row: (-int(row[2] or 0), row[0], row[1]))[:TOP]
            latest = _runs_of(connection, [row[4] for row in top])
            open_units = _open_units(connection, ledger.account, now)
            differences = _differences(connection, ledger, first_day)
    return {
        "timezone": ledger.budget.timezone,
        "first_day": first_day,
        "last_day": today,
        "days": [{"day": day, "endpoint": serial, "units": int(total or 0)} for day, serial, total in per_day],
        "budget": _budget(ledger, today, month, counted=written),
        "top": [
            {
                "dag_id": dag_id,
                "task_id": task_id,
                "units": int(total or 0),
                "calls": int(calls),
                **latest.get(last, {}),
            }
            for dag_id, task_id, total, calls, last in top
        ],
        "reused_units": int(reused or 0),
        "open": [*(_hidden(item, visible) for item in open_units), *(_difference(row, visible) for row in differences)],
    }


def _differences(connection: Any, ledger: PatsnapLedger, first_day: str) -> list[Any]:
    """The last reconciliations that found a difference, for periods ending in the window (none before
    schema version 2, which added them)."""
    if (getattr(ledger, "version", SCHEMA_VERSION) or 0) < 2:
        return []
    query = (
        select(reconciliations)
        .where(
            reconciliations.c.account == ledger.account,
            reconciliations.c.period_end >= first_day,
            reconciliations.c.difference.is_not(None),
            reconciliations.c.difference != 0,
        )
        .order_by(desc(reconciliations.c.period_end), reconciliations.c.endpoint)
        .limit(OPEN_LIMIT)
    )
    return list(connection.execute(query).all())


def _budget(ledger: PatsnapLedger, today: str, month: str, *, counted: bool) -> dict[str, Any]:
    """Today's and this month's units (the caps' own counters) against the caps."""
    budget = ledger.budget
    return {
        "timezone": budget.timezone,
        "day": today,
        "day_units": ledger.reserved(f"day:{today}") if counted else 0,
        "daily_cap": budget.daily,
        "month": month,
        "month_units": ledger.reserved(f"month:{month}") if counted else 0,
        "monthly_cap": budget.monthly,
    }


def _runs_of(connection: Any, ids: list[int]) -> dict[int, dict[str, Any]]:
    """The task instance each of these units was bought for (a top task's latest run)."""
    if not ids:
        return {}
    rows = connection.execute(select(units.c.id, units.c.run_id, units.c.map_index).where(units.c.id.in_(ids)))
    return {row[0]: {"run_id": row[1], "map_index": row[2]} for row in rows}


def _open_units(connection: Any, account: str, now: dt.datetime) -> list[dict[str, Any]]:
    """Calls that may have been billed without an answer: ambiguous, or sent and never answered."""
    stale = now.astimezone(dt.timezone.utc) - UNANSWERED_AFTER
    query = (
        select(units)
        .where(
            units.c.account == account,
            or_(units.c.state == AMBIGUOUS, and_(units.c.state == SENT, units.c.sent_at < stale)),
        )
        .order_by(desc(units.c.id))
        .limit(OPEN_LIMIT)
    )
    return [
        {
            "kind": "may have run" if row.state == AMBIGUOUS else "no answer recorded",
            "when": _iso(row.sent_at or row.created_at),
            "endpoint": row.serial,
            "subject": row.subject,
            "units": int(row.units_reserved),
            "job_id": row.job_id,
            "dag_id": row.dag_id,
            "run_id": row.run_id,
            "task_id": row.task_id,
            "map_index": row.map_index,
        }
        for row in connection.execute(query)
    ]


def _difference(row: Any, visible: Callable[[str | None], bool]) -> dict[str, Any]:
    item = {
        "kind": "statement differs" if row.closed else "statement differs (period not closed)",
        "when": f"{row.period_start}..{row.period_end}",
        "endpoint": row.serial or row.endpoint,
        "subject": f"PatSnap billed {row.fee_times}, the ledger has {row.ledger_units}",
        "units": int(row.difference),
        "job_id": None,
        "dag_id": row.dag_id,
        "run_id": row.run_id,
        "task_id": row.task_id,
        "map_index": row.map_index,
    }
    return _hidden(item, visible)


def _hidden(item: dict[str, Any], visible: Callable[[str | None], bool]) -> dict[str, Any]:
    """An open question about a DAG the reader may not see keeps its units but not its names."""
    if item["dag_id"] is None or visible(item["dag_id"]):
        return item
    return {**item, "dag_id": None, "run_id": None, "task_id": None, "map_index": None, "subject": "(hidden)"}
