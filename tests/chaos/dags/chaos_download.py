"""A one-task DAG for tests/chaos/test_killed_worker.py: download one finished report.

Configured from the environment at parse time (``PATSNAP_CHAOS_*``); not meant for production.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow_provider_patsnap.operators.reports import PatsnapDownloadReportOperator

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

with DAG("chaos_download", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["test"]):
    PatsnapDownloadReportOperator(
        task_id="download",
        job_id=os.environ.get("PATSNAP_CHAOS_JOB_ID", "0"),
        report_kind=os.environ.get("PATSNAP_CHAOS_REPORT_KIND", "enterprise"),
        destination=os.environ.get("PATSNAP_CHAOS_DESTINATION", "file:///tmp/patsnap-chaos-archive/"),
        retries=1,
        retry_delay=timedelta(seconds=0),
    )
