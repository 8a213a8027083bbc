"""Every PatSnap valuation indicator for a patent portfolio, one flat record per patent, in the lake.

P035 valuation, P036 technology, P037 legal, P038 market, P039 strategic and P040 economic
indicators, 100 patents per request and a few requests at a time under the account's rate limit,
merged into one typed record per patent and streamed as Parquet (typed columns and a ``fetched_at``
timestamp, ready for Athena, Trino, Spark or DuckDB) to
``<lake>/patsnap/portfolio_valuation/dt=<run date>/patent_indicators.parquet``; without the
``parquet`` extra (pyarrow), as gzip-compressed JSON Lines, so the example runs on any install. The portfolio is
read from ``PATSNAP_PORTFOLIO_FILE`` (``.txt``, ``.csv`` or ``.parquet``, a path or URI) by the task
itself, once per run: a retry buys the list its first attempt read. Completed batches are
checkpointed beside the output, so a retry after an outage fetches (and pays for) only the rest.
The write emits an Asset event (its ``extra`` carries the file's ``uri``) for downstream modelling.
"""

from __future__ import annotations

import importlib.util
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_provider_patsnap.operators.indicators import PatsnapPatentIndicatorsOperator

try:  # Airflow 3
    from airflow.sdk import DAG, Asset
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.datasets import Dataset as Asset

# --- Configuration -------------------------------------------------------------------------
LAKE_URI = os.environ.get("PATSNAP_LAKE_URI", "file:///tmp/patsnap-lake").rstrip("/")
LAKE_CONN_ID = os.environ.get("PATSNAP_LAKE_CONN_ID") or None
PORTFOLIO_FILE = os.environ.get("PATSNAP_PORTFOLIO_FILE", str(Path(__file__).with_name("sample_portfolio.txt")))
PORTFOLIO_CONN_ID = os.environ.get("PATSNAP_PORTFOLIO_CONN_ID") or None
OUTPUT_FORMAT = "parquet" if importlib.util.find_spec("pyarrow") else "jsonl.gz"
INDICATORS = ["valuation", "technology", "legal", "market", "strategic", "economic"]
PORTFOLIO_VALUATION = Asset(f"{LAKE_URI}/patsnap/portfolio_valuation")


def run_date(dag_run: Any) -> str:
    """The run's date for partition names: Airflow 3 runs always have ``run_after`` (``ds`` is undefined
    for runs without a logical date); Airflow 2 runs always have a logical date."""
    when = getattr(dag_run, "run_after", None) or dag_run.logical_date
    return when.strftime("%Y-%m-%d")


with DAG(
    dag_id="patsnap_portfolio_valuation_to_lake",
    description="All six PatSnap valuation indicators for the portfolio, as Parquet (or gzip JSON Lines)",
    schedule="@monthly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["patsnap", "indicators", "lake"],
    default_args={
        "owner": "data-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        # The pool that caps concurrent PatSnap tasks (README, "Running at scale").
        "pool": os.environ.get("PATSNAP_POOL", "default_pool"),
    },
    user_defined_macros={"run_date": run_date},
) as dag:
    PatsnapPatentIndicatorsOperator(
        task_id="portfolio_valuation",
        patents_from=PORTFOLIO_FILE,  # read by the task at run time, never at DAG parse time
        patents_from_conn_id=PORTFOLIO_CONN_ID,
        indicators=INDICATORS,
        output_format=OUTPUT_FORMAT,
        destination=LAKE_URI + "/patsnap/portfolio_valuation/dt={{ run_date(dag_run) }}/",
        destination_conn_id=LAKE_CONN_ID,
        # A re-run of the day rewrites its partition (outputs are kept unless told otherwise).
        overwrite=True,
        outlets=[PORTFOLIO_VALUATION],
    )
