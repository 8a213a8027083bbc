"""Daily: yesterday's PatSnap statement of account, reconciled with the ledger.

PatSnap bills per report created and per indicator result returned; its statement of account says,
per endpoint and period, how many units it charged. This DAG reads yesterday's (a closed day in
China's time zone, where PatSnap's days are counted) and compares it with what the ledger recorded
for the same day (needs a ledger on the PatSnap connection: extra ``ledger_url``; see the README's
"Cost control"). Calls the ledger could not settle (sent, no answer) are settled where the statement
can; a difference left fails the task, so somebody looks. The reconciliation is kept as JSON beside
the archive.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from airflow_provider_patsnap.operators.usage import PatsnapUsageOperator

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

ARCHIVE_URI = os.environ.get("PATSNAP_ARCHIVE_URI", "file:///tmp/patsnap-archive").rstrip("/")
ARCHIVE_CONN_ID = os.environ.get("PATSNAP_ARCHIVE_CONN_ID") or None


def yesterday_in_china(dag_run: Any) -> str:
    """The day before the run, in PatSnap's time zone (UTC+8): a day its statement has closed."""
    when = getattr(dag_run, "run_after", None) or dag_run.logical_date
    return (when.astimezone(ZoneInfo("Asia/Shanghai")) - timedelta(days=1)).strftime("%Y%m%d")


with DAG(
    dag_id="patsnap_usage_reconciliation",
    description="Yesterday's PatSnap statement of account, reconciled with the ledger",
    schedule="0 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["patsnap", "cost"],
    default_args={"owner": "finops", "retries": 2, "retry_delay": timedelta(minutes=10)},
    user_defined_macros={"yesterday_in_china": yesterday_in_china},
) as dag:
    PatsnapUsageOperator(
        task_id="reconcile",
        start="{{ yesterday_in_china(dag_run) }}",
        end="{{ yesterday_in_china(dag_run) }}",
        destination=ARCHIVE_URI + "/usage/",
        destination_conn_id=ARCHIVE_CONN_ID,
        fail_on_mismatch=True,
    )
