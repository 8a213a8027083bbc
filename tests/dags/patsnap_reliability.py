"""DAGs the reliability tests run with real Airflow: crashes and timeouts around billable steps.

Configured from the environment at parse time (``PATSNAP_TEST_*``), so each test parses them with
its own settings; nothing here is meant for production.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_patsnap.operators.indicators import PatsnapLegalIndicatorsOperator
from airflow_provider_patsnap.operators.reports import (
    PatsnapCreateEnterpriseReportOperator,
    PatsnapCreatePatentValueReportOperator,
)

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

RETRIES = {"retries": 3, "retry_delay": timedelta(seconds=0)}
PATENTS = [p for p in os.environ.get("PATSNAP_TEST_PATENTS", "CN108977442B").split(",") if p]


class CreateThenLoseTheWorker(PatsnapCreateEnterpriseReportOperator):
    """The create succeeds, then the first attempt dies before Airflow records its XCom."""

    def execute(self, context: Any) -> str:
        job_id = super().execute(context)
        if context["ti"].try_number == 1:
            raise RuntimeError(f"worker lost after creating job {job_id}")
        return job_id


def dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["test"])


with dag("reliability_create_worker_lost"):
    CreateThenLoseTheWorker(task_id="create", company_name="Example Robotics Ltd", **RETRIES)

with dag("reliability_create_timeout"):
    PatsnapCreateEnterpriseReportOperator(
        task_id="create",
        company_name="Example Robotics Ltd",
        execution_timeout=timedelta(seconds=float(os.environ.get("PATSNAP_TEST_EXECUTION_TIMEOUT", "2"))),
        **RETRIES,
    )

with dag("reliability_create_gateway_timeout"):
    PatsnapCreateEnterpriseReportOperator(task_id="create", company_name="Example Robotics Ltd", **RETRIES)

with dag("reliability_indicators_to_file"):
    PatsnapLegalIndicatorsOperator(
        task_id="indicators",
        patent_numbers=PATENTS,
        destination=os.environ.get("PATSNAP_TEST_DESTINATION", "file:///tmp/patsnap-test-lake/"),
        **RETRIES,
    )

with dag("reliability_indicators_to_xcom"):
    PatsnapLegalIndicatorsOperator(task_id="indicators", patent_numbers=PATENTS, **RETRIES)


# Templates gone wrong under Airflow's default (string) rendering: nothing may be billed for them.
TEMPLATED = {"company": None, "patent": None, "patents": None, "portfolio": ["CN108977442B", "US5012236A"]}

with DAG(
    "reliability_templated_input", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=TEMPLATED
):
    PatsnapCreateEnterpriseReportOperator(task_id="r001_none", company_name="{{ params.company }}")
    PatsnapCreatePatentValueReportOperator(task_id="r002_none", patent_number="{{ params.patent }}")
    PatsnapLegalIndicatorsOperator(task_id="p037_none", patent_numbers="{{ params.patents }}")
    PatsnapLegalIndicatorsOperator(task_id="p037_list_as_text", patent_numbers="{{ params.portfolio }}")

with DAG(
    "reliability_templated_native",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params=TEMPLATED,
    render_template_as_native_obj=True,
):
    PatsnapLegalIndicatorsOperator(task_id="p037_list", patent_numbers="{{ params.portfolio }}")
