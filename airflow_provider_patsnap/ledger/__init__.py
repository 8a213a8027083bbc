"""The ledger: every PatSnap unit recorded, budgeted, reused and reconciled (a SQL database).

Configured per PatSnap connection (extras ``ledger_url`` or ``ledger_conn_id``, ``budget_daily_units``,
``budget_monthly_units``, ``budget_timezone``); unset means no ledger. ``PatsnapLedger.for_connection``
gives the one a connection uses. The CLI: ``python -m airflow_provider_patsnap.ledger report``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_patsnap.ledger.model import Budget, BudgetExceeded, Purchase, TaskRef

if TYPE_CHECKING:
    from airflow_provider_patsnap.ledger.store import PatsnapLedger

__all__ = ["Budget", "BudgetExceeded", "PatsnapLedger", "Purchase", "TaskRef"]


def __getattr__(name: str) -> Any:
    # The database layer (SQLAlchemy) is imported when a ledger is used, not when a DAG is parsed.
    if name == "PatsnapLedger":
        from airflow_provider_patsnap.ledger.store import PatsnapLedger

        return PatsnapLedger
    raise AttributeError(name)
