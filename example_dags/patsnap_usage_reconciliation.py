"""Daily: PatSnap's statement of account for the last closed day, reconciled with the ledger.

PatSnap bills per report created and per indicator result returned; its statement of account says,
per endpoint and period, how many units it charged. PatSnap counts days in China's time zone and its
statement may lag up to a day, so a day is closed once the next one is over too: each run reads the
day before yesterday (China time) and compares it with what the ledger recorded as sent that day
(needs a ledger on the PatSnap connection: extra ``ledger_url``; see the README's "Cost control").
Calls the ledger could not settle (sent, no answer) are settled where the statement can; a
difference left fails the task, so somebody looks. The reconciliation is kept as JSON beside the
archive.
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


def closed_day_in_china(dag_run: Any) -> str:
    """Two days before the run, in PatSnap's time zone (UTC+8): over, and past the statement's lag."""
    when = getattr(dag_run, "run_after", None) or dag_run.logical_date
    return (when.astimezone(ZoneInfo("Asia/Shanghai")) - timedelta(days=2)).strftime("%Y%m%d")


with DAG(
    dag_id="patsnap_usage_reconciliation",
    description="PatSnap's statement of account for the last closed day, reconciled with the ledger",
    schedule="0 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["patsnap", "cost"],
    default_args={
        "owner": "finops",
        "retries": 2,
        "retry_delay": timedelta(minutes=10),
        # The pool that caps concurrent PatSnap tasks (README, "Running at scale").
        "pool": os.environ.get("PATSNAP_POOL", "default_pool"),
    },
    user_defined_macros={"closed_day_in_china": closed_day_in_china},
) as dag:
    PatsnapUsageOperator(
        task_id="reconcile",
        start="{{ closed_day_in_china(dag_run) }}",
        end="{{ closed_day_in_china(dag_run) }}",
        destination=ARCHIVE_URI + "/usage/",
        destination_conn_id=ARCHIVE_CONN_ID,
        fail_on_mismatch=True,
    )
