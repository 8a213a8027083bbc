"""DAGs for the attempts nobody scripts: a deploy between retries, a kill after the work was done, a timeout
while the create waits for its rate-limit slot. Test DAGs, nothing here is meant for production.

``RETRIES`` is rewritten by the test while a task is up for retry (a deploy); keep it on its own line.
"""

from __future__ import annotations

import contextlib
import os
import signal
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_patsnap.operators.indicators import PatsnapLegalIndicatorsOperator
from airflow_provider_patsnap.operators.reports import PatsnapCreateEnterpriseReportOperator

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

RETRIES = 2
LAKE = os.environ.get("PATSNAP_LAKE_URI", "file:///tmp/patsnap-attempts-lake")
PORTFOLIO = [f"CN{400000 + i}A" for i in range(250)]  # three P037 batches
PORTFOLIO_FILE = os.environ.get("PATSNAP_PORTFOLIO_FILE", "/tmp/patsnap-attempts-portfolio.txt")


def die() -> None:
    """The worker is lost here: no exception, no clean-up, Airflow records nothing."""
    os.kill(os.getpid(), signal.SIGKILL)


class CreateThenDie(PatsnapCreateEnterpriseReportOperator):
    """PatSnap answers the create; the first try's worker dies before Airflow records success."""

    def execute(self, context: Any) -> str:
        job_id = super().execute(context)
        if context["ti"].try_number == 1:
            die()
        return job_id


class IndicatorsThenDie(PatsnapLegalIndicatorsOperator):
    """``execute`` returns (the output is published); the first try's worker dies before success is recorded."""

    def execute(self, context: Any) -> Any:
        result = super().execute(context)
        if context["ti"].try_number == 1:
            die()
        return result


class IndicatorsDieMidway(PatsnapLegalIndicatorsOperator):
    """The first try's worker dies once two of its batches were answered and checkpointed."""

    def execute(self, context: Any) -> Any:
        self.try_number = context["ti"].try_number
        return super().execute(context)

    def _keeper(self, book: Any) -> Any:
        keep = super()._keeper(book)
        kept: list[str] = []

        def keep_then_die(batch: Any, items: list[Any]) -> None:
            keep(batch, items)
            kept.append(batch.key)
            if len(kept) == 2 and self.try_number == 1:
                die()

        return keep_then_die


class BusyThenCreate(PatsnapCreateEnterpriseReportOperator):
    """The first try spends the process's rate-limit slot on a read, so its create queues for the next one."""

    def execute(self, context: Any) -> str:
        if context["ti"].try_number == 1:
            with contextlib.suppress(Exception):
                self.hook.get_report_job("enterprise", "1")
        return super().execute(context)


def dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["test"])


with dag("attempts_deploy_between_retries"):
    # Long enough between tries for the test to deploy a new version of this file.
    CreateThenDie(
        task_id="create", company_name="Deploy Between Retries Ltd", retries=RETRIES, retry_delay=timedelta(seconds=8)
    )

with dag("attempts_killed_after_execute"):
    IndicatorsThenDie(
        task_id="indicators",
        patent_numbers=PORTFOLIO,
        destination=LAKE + "/legal/",
        retries=2,
        retry_delay=timedelta(seconds=1),
    )

with dag("attempts_portfolio_changed"):
    # Long enough between tries for the test to rewrite the portfolio file.
    IndicatorsDieMidway(
        task_id="indicators",
        patents_from=PORTFOLIO_FILE,
        destination=LAKE + "/portfolio/",
        patsnap_conn_id="patsnap_serial",
        retries=2,
        retry_delay=timedelta(seconds=8),
    )

with dag("attempts_timeout_in_the_limiter"):
    BusyThenCreate(
        task_id="create",
        company_name="Queued Create Co",
        patsnap_conn_id="patsnap_slow",  # 0.1 QPS: the create waits 10 s for its slot
        execution_timeout=timedelta(seconds=3),
        retries=2,
        retry_delay=timedelta(seconds=1),
    )
