"""The weekly enterprise-report refresh in three tasks per company: see, and retry, each step on its own.

``patsnap_enterprise_report_refresh`` does the same with one task per company
(``PatsnapEnterpriseReportOperator``). This form shows each step in the UI: for every company in
COMPANIES: create the report job -> wait for PatSnap to generate it (in the
triggerer, so no worker slot is held for the 1-10 minutes it takes) -> stream the file into
``<archive>/enterprise/<run date>/<company index>/``: one folder per company, so two companies'
reports can never replace each other even if PatSnap gives them the same file name. Each company
is its own mapped task group, so one company PatSnap cannot report on does not hold back the
others. The archive task emits an Asset event that downstream DAGs can schedule on.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_patsnap.operators.reports import (
    PatsnapCreateEnterpriseReportOperator,
    PatsnapDownloadReportOperator,
)
from airflow_provider_patsnap.sensors.report_job import PatsnapReportJobSensor

try:  # Airflow 3
    from airflow.sdk import DAG, Asset, task_group
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.datasets import Dataset as Asset
    from airflow.decorators import task_group

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
ENTERPRISE_REPORTS = Asset(f"{ARCHIVE_URI}/enterprise_stepwise")


def run_date(dag_run: Any) -> str:
    """The run's date for folder names: Airflow 3 runs always have ``run_after`` (``ds`` is undefined
    for runs without a logical date, e.g. REST/UI triggers with ``logical_date: null`` or asset
    triggers); Airflow 2 runs always have a logical date."""
    when = getattr(dag_run, "run_after", None) or dag_run.logical_date
    return when.strftime("%Y-%m-%d")


with DAG(
    dag_id="patsnap_enterprise_report_refresh_stepwise",
    description="Weekly PatSnap enterprise innovation reports, three visible steps per company",
    schedule=None,  # run on demand; patsnap_enterprise_report_refresh is the scheduled one
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["patsnap", "reports"],
    user_defined_macros={"run_date": run_date},
    default_args={
        "owner": "data-platform",
        # Safe: a retried create reattaches to the job it already made (Airflow 3.3+) and is never
        # replayed when PatSnap may have run it; permanent errors (bad input, quota, balance) fail
        # at once without using these retries. Downloads and waits retry through outages.
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        # Cap concurrent PatSnap calls across all workers with an Airflow pool sized to the
        # account's QPS (see the README); "default_pool" keeps the demo self-contained.
        "pool": os.environ.get("PATSNAP_POOL", "default_pool"),
    },
) as dag:

    @task_group(group_id="company_report")
    def company_report(company_name: str) -> None:
        create = PatsnapCreateEnterpriseReportOperator(
            task_id="create",
            company_name=company_name,
            report_type="pdf",
        )
        wait = PatsnapReportJobSensor(
            task_id="wait",
            job_id=create.output,
            report_kind="enterprise",
            deferrable=True,  # wait in the triggerer, not in a worker slot
            poke_interval=float(os.environ.get("PATSNAP_POKE_INTERVAL", "30")),
            timeout=60 * 60,
        )
        archive = PatsnapDownloadReportOperator(
            task_id="archive",
            job_id=create.output,
            report_kind="enterprise",
            # One folder per run date and company (its place in COMPANIES): names cannot collide.
            destination=ARCHIVE_URI + "/enterprise_stepwise/{{ run_date(dag_run) }}/{{ ti.map_index }}/",
            destination_conn_id=ARCHIVE_CONN_ID,
            # A re-run for the same date and company (a new report) replaces the old one; a retry of
            # the same job re-publishes the same bytes.
            overwrite=True,
            outlets=[ENTERPRISE_REPORTS],
        )
        wait >> archive

    company_report.expand(company_name=COMPANIES)
