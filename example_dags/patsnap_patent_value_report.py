"""On-demand PatSnap patent value report (R002) for one patent, triggered with parameters.

Trigger it from the UI or CLI with ``{"patent_number": "CN108977442B", "report_type": "pdf"}``:
create the job (no-logo version by default) -> wait -> download into the archive.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_patsnap.operators.reports import (
    PatsnapCreatePatentValueReportOperator,
    PatsnapDownloadReportOperator,
)
from airflow_provider_patsnap.sensors.report_job import PatsnapReportJobSensor

try:  # Airflow 3
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.models.param import Param

# --- Configuration -------------------------------------------------------------------------
ARCHIVE_URI = os.environ.get("PATSNAP_ARCHIVE_URI", "file:///tmp/patsnap-archive").rstrip("/")
ARCHIVE_CONN_ID = os.environ.get("PATSNAP_ARCHIVE_CONN_ID") or None


def run_date(dag_run: Any) -> str:
    """The run's date for folder names: Airflow 3 runs always have ``run_after`` (``ds`` is undefined
    for runs without a logical date, e.g. REST/UI triggers with ``logical_date: null`` or asset
    triggers); Airflow 2 runs always have a logical date."""
    when = getattr(dag_run, "run_after", None) or dag_run.logical_date
    return when.strftime("%Y-%m-%d")


with DAG(
    dag_id="patsnap_patent_value_report",
    description="PatSnap patent value report for one patent, on demand",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["patsnap", "reports", "on-demand"],
    user_defined_macros={"run_date": run_date},
    params={
        "patent_number": Param("CN108977442B", type="string", minLength=3, description="Publication number"),
        "report_type": Param("pdf", enum=["pdf", "word"], description="pdf or word (docx)"),
    },
    default_args={
        "owner": "data-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        # The pool that caps concurrent PatSnap tasks (README, "Running at scale").
        "pool": os.environ.get("PATSNAP_POOL", "default_pool"),
    },
) as dag:
    create = PatsnapCreatePatentValueReportOperator(
        task_id="create",
        patent_number="{{ params.patent_number }}",
        report_type="{{ params.report_type }}",
    )
    wait = PatsnapReportJobSensor(
        task_id="wait",
        job_id=create.output,
        report_kind="patent_value",
        # Reschedule mode frees the worker slot between pokes where no triggerer runs.
        mode="reschedule",
        deferrable=os.environ.get("PATSNAP_DEFERRABLE", "true").lower() == "true",
        poke_interval=float(os.environ.get("PATSNAP_POKE_INTERVAL", "30")),
        timeout=60 * 60,
    )
    download = PatsnapDownloadReportOperator(
        task_id="download",
        job_id=create.output,
        report_kind="patent_value",
        # One folder per run: re-running the same day does not overwrite another run's file.
        destination=ARCHIVE_URI + "/patent_value/{{ run_date(dag_run) }}/{{ run_id | replace(':', '_') }}/",
        destination_conn_id=ARCHIVE_CONN_ID,
    )
    wait >> download
