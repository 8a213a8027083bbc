"""Weekly refresh of PatSnap enterprise innovation reports (R001), archived to object storage.

One ``PatsnapEnterpriseReportOperator`` per company in COMPANIES (dynamic task mapping): create the
report job -> wait for PatSnap to generate it (deferred to the triggerer, so no worker slot is held
for the 1-10 minutes it takes) -> stream the file into ``<archive>/enterprise/<run date>/<company
index>/``: one folder per company, so two companies' reports can never replace each other even if
PatSnap gives them the same file name. One company PatSnap cannot report on does not hold back the
others, and a retry never creates (and pays for) a second report. The archive emits an Asset event
downstream DAGs can schedule on. ``patsnap_enterprise_report_refresh_stepwise`` is the same
pipeline as three visible tasks per company.

Cost control (needs a ledger on the PatSnap connection: extra ``ledger_url``; see the README's "Cost
control"): a report bought for the same company within six days is reused, not bought again (so a
re-run of the week's refresh costs nothing), and each company's task may buy one report at most.
Daily and monthly budgets are the connection's (``budget_daily_units``, ``budget_monthly_units``).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_patsnap.operators.reports import PatsnapEnterpriseReportOperator

try:  # Airflow 3
    from airflow.sdk import DAG, Asset
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.datasets import Dataset as Asset

# --- Configuration -------------------------------------------------------------------------
# Where reports are archived: any ObjectStoragePath URI (file://, s3://, gs://, ...).
ARCHIVE_URI = os.environ.get("PATSNAP_ARCHIVE_URI", "file:///tmp/patsnap-archive").rstrip("/")
# Airflow connection for the archive (e.g. an aws connection for s3://); None for local files.
ARCHIVE_CONN_ID = os.environ.get("PATSNAP_ARCHIVE_CONN_ID") or None
# The companies to report on. Names work; a unified social credit code is unambiguous.
COMPANIES = [
    "Example Robotics Ltd",
    "Acme Semiconductor Co",
    "Nordic Battery AB",
]
ENTERPRISE_REPORTS = Asset(f"{ARCHIVE_URI}/enterprise")


def run_date(dag_run: Any) -> str:
    """The run's date for folder names: Airflow 3 runs always have ``run_after`` (``ds`` is undefined
    for runs without a logical date, e.g. REST/UI triggers with ``logical_date: null`` or asset
    triggers); Airflow 2 runs always have a logical date."""
    when = getattr(dag_run, "run_after", None) or dag_run.logical_date
    return when.strftime("%Y-%m-%d")


with DAG(
    dag_id="patsnap_enterprise_report_refresh",
    description="Weekly PatSnap enterprise innovation reports, archived per run date",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["patsnap", "reports"],
    user_defined_macros={"run_date": run_date},
    default_args={
        "owner": "data-platform",
        # Safe: a retry reattaches to the report it already created (Airflow 3.3+; on older Airflow
        # it fails naming the job instead of creating another), and permanent errors (bad input,
        # quota, balance) fail at once without using these retries.
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        # Cap concurrent PatSnap tasks across all workers with an Airflow pool (see the README's
        # "Running at scale"); "default_pool" keeps the demo self-contained.
        "pool": os.environ.get("PATSNAP_POOL", "default_pool"),
    },
) as dag:
    PatsnapEnterpriseReportOperator.partial(
        task_id="enterprise_report",
        report_type="pdf",
        # One folder per run date and company (its place in COMPANIES): names cannot collide.
        destination=ARCHIVE_URI + "/enterprise/{{ run_date(dag_run) }}/{{ ti.map_index }}/",
        destination_conn_id=ARCHIVE_CONN_ID,
        # A re-run for the same date and company (a new report) replaces the old one; a retry of
        # the same job re-publishes the same bytes.
        overwrite=True,
        deferrable=True,  # wait in the triggerer, not in a worker slot
        poll_interval=float(os.environ.get("PATSNAP_POKE_INTERVAL", "30")),
        timeout=60 * 60,
        outlets=[ENTERPRISE_REPORTS],
        reuse_within=timedelta(days=6),  # last week's report, archived or re-fetched: 0 units
        max_billable_units=1,  # one report per company and run, whatever happens
    ).expand(company_name=COMPANIES)
