"""P037 legal indicators for a whole patent portfolio, as JSON Lines in the data lake.

The portfolio (any size: the operator batches 100 patents per request and paces itself) is read
from a text file, one publication number per line. The result lands in
``<lake>/patsnap/legal_indicators/dt=<ds>/legal_indicators.jsonl`` and emits an Asset event;
``patsnap_legal_indicators_consumer`` below is scheduled on that Asset.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

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

default_args = {"owner": "data-platform", "retries": 2, "retry_delay": timedelta(minutes=5)}

with DAG(
    dag_id="patsnap_legal_indicators_to_lake",
    description="Weekly P037 legal indicators for the patent portfolio, as JSON Lines",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["patsnap", "indicators", "lake"],
    default_args=default_args,
) as dag:

    @task
    def load_portfolio() -> list[str]:
        """Read the portfolio at run time (never at DAG parse time)."""
        lines = Path(PORTFOLIO_FILE).read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    PatsnapLegalIndicatorsOperator(
        task_id="legal_indicators",
        patent_numbers=load_portfolio(),
        destination=LAKE_URI + "/patsnap/legal_indicators/dt={{ ds }}/",
        destination_conn_id=LAKE_CONN_ID,
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
    def summarise_latest() -> dict[str, int]:
        """Count patents per legal status in the newest partition (a stand-in for real modelling)."""
        root = ObjectStoragePath(f"{LAKE_URI}/patsnap/legal_indicators/", conn_id=LAKE_CONN_ID)
        newest = sorted(p for p in root.iterdir() if p.name.startswith("dt="))[-1]
        counts: dict[str, int] = {}
        for line in (newest / "legal_indicators.jsonl").read_text(encoding="utf-8").splitlines():
            status = json.loads(line).get("legal_status") or "unknown"
            counts[status] = counts.get(status, 0) + 1
        return counts

    summarise_latest()
