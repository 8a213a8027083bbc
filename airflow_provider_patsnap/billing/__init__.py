"""The one owner of billable state: what a task instance's run has bought, across its attempts.

``run`` holds the lifecycle of single billable units (creates, billable generic calls) and the
failure rules that follow from it; ``batches`` the indicator batches billed per result;
``identity`` which run an attempt belongs to; ``backends`` where the records are kept.
"""

from __future__ import annotations

from airflow_provider_patsnap.billing.batches import BatchBook, open_book, request_digest
from airflow_provider_patsnap.billing.identity import RunIdentity
from airflow_provider_patsnap.billing.run import TaskRun, UnitState, surely_not_bought

__all__ = ["BatchBook", "RunIdentity", "TaskRun", "UnitState", "open_book", "request_digest", "surely_not_bought"]
