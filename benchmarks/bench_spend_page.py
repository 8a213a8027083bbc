"""The spend page on a large ledger: how long its figures and HTML take, and which indexes serve them.

A ledger of ``--units`` rows (100,000 by default) over 90 days, 8 endpoints, 200 DAG tasks, 1 % of
the calls ambiguous and a share of reused units, in a SQLite file and, when Debian's ``postgresql``
is installed, a throwaway PostgreSQL cluster on 127.0.0.1. Prints, per database:

* ``spend_page.build_p50_ms`` / ``spend_page.build_max_ms``: the page's figures for 30 days
  (``ledger.spend.spend``) plus its HTML and SVG (``plugins.spend_html.page``), over ``--runs`` runs
  after one warm-up. Goal: under 1,000 ms at 100,000 units (what the page needs to load in a second).
* ``spend_page.rows_per_ms``: ledger rows per millisecond of page build (how the cost scales).
* the query plan of the day-by-endpoint query (SQLite: ``EXPLAIN QUERY PLAN``), naming the index.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

SERIALS = ("R001", "R002", "P035", "P036", "P037", "P038", "P039", "P040")
ACCOUNT = "https://connect.patsnap.com#0123456789abcdef"


def fill(ledger: Any, count: int) -> None:
    from airflow_provider_patsnap.ledger.schema import units

    rng = random.Random(7)
    now = dt.datetime.now(dt.timezone.utc)
    rows = []
    for n in range(count):
        when = now - dt.timedelta(minutes=rng.randrange(90 * 24 * 60))
        day, month = ledger.periods(when)
        serial = SERIALS[n % len(SERIALS)]
        state = "ambiguous" if n % 100 == 0 else "reused" if n % 10 == 1 else "answered"
        batch = 100 if serial.startswith("P") else 1
        rows.append(
            {
                "account": ACCOUNT,
                "endpoint": f"/{serial}",
                "serial": serial,
                "subject": f"batch:{n}",
                "variant": "",
                "state": state,
                "units_reserved": batch,
                "units_billed": batch if state == "answered" else 0,
                "units_reused": batch if state == "reused" else 0,
                "dag_id": f"dag_{n % 40}",
                "run_id": f"scheduled__{day}",
                "task_id": f"task_{n % 5}",
                "map_index": -1,
                "created_at": when,
                "sent_at": when,
                "day": day,
                "month": month,
            }
        )
    with ledger.engine.begin() as connection:
        for start in range(0, len(rows), 5_000):
            connection.execute(units.insert(), rows[start : start + 5_000])


def measure(url: str, label: str, count: int, runs: int) -> None:
    from airflow_provider_patsnap.ledger import Budget
    from airflow_provider_patsnap.ledger.spend import spend
    from airflow_provider_patsnap.ledger.store import PatsnapLedger
    from airflow_provider_patsnap.plugins.spend_html import page

    ledger = PatsnapLedger(url, ACCOUNT, Budget(daily=50_000, monthly=1_000_000))
    fill(ledger, count)
    timings = []
    for run in range(runs + 1):
        started = time.perf_counter()
        now = dt.datetime.now(dt.timezone.utc)
        summary = spend(ledger, days=30, now=now)
        html = page("", [{"conn_id": "patsnap_default", "host": "https://connect.patsnap.com", **summary}], 30, now)
        if run:  # the first run warms the connection pool and the database's cache
            timings.append((time.perf_counter() - started) * 1000)
    p50 = statistics.median(timings)
    detail = f"{count:,} units, {len(html):,} bytes of HTML, {runs} runs"
    _common.figure(f"spend_page.build_p50_ms[{label}]", p50, f"{detail}; goal < 1000 ms", p50 < 1000, ".1f")
    _common.figure(f"spend_page.build_max_ms[{label}]", max(timings), detail, max(timings) < 1000, ".1f")
    _common.figure(f"spend_page.rows_per_ms[{label}]", count / p50, "ledger rows per ms of page build", None, ".0f")
    if url.startswith("sqlite"):
        from sqlalchemy import text

        with ledger.engine.connect() as connection:
            plan = connection.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT day, serial, sum(units_billed) FROM patsnap_units "
                    "WHERE account = :a AND day >= :d AND state = 'answered' GROUP BY day, serial"
                ),
                {"a": ACCOUNT, "d": summary["first_day"]},
            ).all()
        print(f"spend_page.plan[{label}] = {' | '.join(str(row[-1]) for row in plan)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        measure(f"sqlite:///{Path(folder) / 'ledger.db'}", "sqlite", args.units, args.runs)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:
        from tests.ledger_support import PostgresCluster

        cluster = PostgresCluster()
    except Exception as exc:
        print(f"(no PostgreSQL figures: {type(exc).__name__}: {exc})")
        return
    try:
        measure(cluster.fresh_database("spend_bench"), "postgres", args.units, args.runs)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
