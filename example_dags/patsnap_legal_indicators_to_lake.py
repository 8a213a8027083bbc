"""P037 legal indicators for a whole patent portfolio, as JSON Lines in the data lake.

The portfolio (any size: the operator batches 100 patents per request and paces itself) is read
from a text file, one publication number per line. The result lands in
``<lake>/patsnap/legal_indicators/dt=<run date>/legal_indicators.jsonl`` and emits an Asset event
whose ``extra`` carries the file's ``uri``; ``patsnap_legal_indicators_consumer`` below is
scheduled on that Asset and reads exactly the file the event names. Completed batches are
checkpointed beside the output, so a retry after an outage fetches (and pays for) only the rest.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_provider_patsnap.operators.indicators import PatsnapLegalIndicatorsOperator

try:  # Airflow 3
    from airflow.sdk import DAG, Asset, ObjectStoragePath, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.datasets import Dataset as Asset
    from airflow.decorators import task
    from airflow.io.path import ObjectStoragePath

# --- Configuration -------------------------------------------------------------------------
LAKE_URI = os.environ.get("PATSNAP_LAKE_URI", "file:///tmp/patsnap-lake").rstrip("/")
LAKE_CONN_ID = os.environ.get("PATSNAP_LAKE_CONN_ID") or None
# One publication number per line; the bundled sample portfolio by default.
PORTFOLIO_FILE = os.environ.get("PATSNAP_PORTFOLIO_FILE", str(Path(__file__).with_name("sample_portfolio.txt")))
LEGAL_INDICATORS = Asset(f"{LAKE_URI}/patsnap/legal_indicators")

default_args = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    # The pool that caps concurrent PatSnap tasks (README, "Running at scale").
    "pool": os.environ.get("PATSNAP_POOL", "default_pool"),
}


def run_date(dag_run: Any) -> str:
    """The run's date for partition names: Airflow 3 runs always have ``run_after`` (``ds`` is undefined
    for runs without a logical date, e.g. REST/UI triggers with ``logical_date: null`` or asset
    triggers); Airflow 2 runs always have a logical date."""
    when = getattr(dag_run, "run_after", None) or dag_run.logical_date
    return when.strftime("%Y-%m-%d")


with DAG(
    dag_id="patsnap_legal_indicators_to_lake",
    description="Weekly P037 legal indicators for the patent portfolio, as JSON Lines",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["patsnap", "indicators", "lake"],
    default_args=default_args,
    user_defined_macros={"run_date": run_date},
) as dag:

    @task
    def load_portfolio() -> list[str]:
        """Read the portfolio at run time (never at DAG parse time)."""
        lines = Path(PORTFOLIO_FILE).read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    PatsnapLegalIndicatorsOperator(
        task_id="legal_indicators",
        patent_numbers=load_portfolio(),
        destination=LAKE_URI + "/patsnap/legal_indicators/dt={{ run_date(dag_run) }}/",
        destination_conn_id=LAKE_CONN_ID,
        # A re-run of the day rewrites its partition (outputs are kept unless told otherwise).
        overwrite=True,
        outlets=[LEGAL_INDICATORS],
    )


with DAG(
    dag_id="patsnap_legal_indicators_consumer",
    description="Runs whenever fresh legal indicators land in the lake",
    schedule=[LEGAL_INDICATORS],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["patsnap", "indicators", "lake"],
    default_args=default_args,
) as consumer:

    @task
    def summarise_latest(**context: Any) -> dict[str, int]:
        """Count patents per legal status in the file the triggering event names (a stand-in for real
        modelling). A manual run, with no event, reads the newest partition."""
        events = context.get("triggering_asset_events") or context.get("triggering_dataset_events") or {}
        uris = [e.extra["uri"] for batch in events.values() for e in batch if (e.extra or {}).get("uri")]
        if uris:
            path = ObjectStoragePath(uris[-1], conn_id=LAKE_CONN_ID)
        else:
            root = ObjectStoragePath(f"{LAKE_URI}/patsnap/legal_indicators/", conn_id=LAKE_CONN_ID)
            path = sorted(p for p in root.iterdir() if p.name.startswith("dt="))[-1] / "legal_indicators.jsonl"
        counts: dict[str, int] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            status = json.loads(line).get("legal_status") or "unknown"
            counts[status] = counts.get(status, 0) + 1
        return counts

    summarise_latest()
