"""The ledger: what recording every unit costs, whether a budget holds under a race, what reuse saves.

Against the bundled emulator (own process, 127.0.0.1), a SQLite file and, when Debian's
``postgresql`` is installed, a throwaway PostgreSQL cluster on 127.0.0.1:

* ``ledger.overhead_p50_ms`` / ``ledger.overhead_p99_ms`` (per database): the time the ledger adds to
  one billable call: reserve (day and month counters locked, task cap checked), mark sent, settle,
  through the hook's ``buy`` with a send that does nothing; a daily and monthly budget set. Goal p99
  <= 10 ms.
* ``ledger.p037_wall_vs_rate_bound``: P037 for 10,000 patents with the ledger on (SQLite, a budget,
  results cached for reuse), wall time / ceil(N/100)/qps, as in ``bench_legal_indicators``. Goal <= 1.15.
* ``ledger.budget_race_billed_per_cap`` (per database): 4 processes create R002 reports as fast as
  they can against one daily cap; creates PatSnap billed / the cap. Goal = 1.00 exactly.
* ``ledger.reuse_second_run_billed``: a 200-report refresh (one-task operator per company) run twice,
  the second with ``reuse_within=7 days``: units the second run bought / 200. Goal 0.

Sizes: ``--patents`` / ``BENCH_PATENTS`` (10,000), ``--reports`` / ``BENCH_REPORTS`` (200),
``--calls`` (2,000 overhead samples per database), ``--cap`` (60 units for the race).
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

QPS = 20.0
LATENCY = 0.2
MAX_CONCURRENCY = 8
BATCH = 100
RACERS = 4


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def postgres() -> Any:
    """A throwaway cluster (tests' helper), or None when PostgreSQL is not installed here."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:
        from tests.ledger_support import PostgresCluster

        return PostgresCluster()
    except Exception as exc:
        print(f"(no PostgreSQL figures: {type(exc).__name__}: {exc})", flush=True)
        return None


# ------------------------------------------------------------------ overhead per billable call


def overhead(url: str, calls: int) -> list[float]:
    """Seconds the ledger adds to each of ``calls`` billable calls (reserve, sent, settle)."""
    from airflow_provider_patsnap.hooks._purchase import buy, scope
    from airflow_provider_patsnap.ledger.model import Budget, Purchase, TaskRef
    from airflow_provider_patsnap.ledger.store import PatsnapLedger

    ledger = PatsnapLedger(url, "bench-account", Budget(daily=10 * calls, monthly=10 * calls))
    task = TaskRef("bench", "run", "create", -1, 1, 1)
    spent: list[float] = []
    with scope(task, task_cap=10 * calls):
        for index in range(calls + 50):
            purchase = Purchase("/enterprise-report/task/create", "R001", f"company_name=Co {index}", 1, "pdf/logo")
            started = time.perf_counter()
            buy(ledger, purchase, lambda mark: mark() or "1579434053399035905", billed=lambda _: 1, job_id=str)
            if index >= 50:  # the first calls warm the connection pool
                spent.append(time.perf_counter() - started)
    ledger.engine.dispose()
    return spent


# ------------------------------------------------------------------ P037 at scale with the ledger on


def p037_with_ledger(count: int, ledger_url: str) -> None:
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    numbers = [f"CN{10000000 + i}A" for i in range(count)]
    ideal = _common.ceil_div(count, BATCH)
    bound = ideal / QPS
    with _common.EmulatorProcess(latency=LATENCY, job_seconds=1.0) as emu:
        _common.use_connection(
            emu.connection_json(
                qps=QPS, max_concurrency=MAX_CONCURRENCY, ledger_url=ledger_url, budget_daily_units=10 * count
            )
        )
        _common.reset_process_state()
        started = time.perf_counter()
        records = PatsnapHook().get_legal_indicators(patent_numbers=numbers)
        wall = time.perf_counter() - started
        billed = emu.call("billed", "/legal_indicators")
    if len(records) != count:
        raise SystemExit(f"expected {count} records, got {len(records)}")
    _common.figure(
        "ledger.p037_wall_vs_rate_bound",
        wall / bound,
        f"{wall:.2f} s / {bound:.2f} s = {ideal} requests at qps={QPS:g}, latency {LATENCY} s, SQLite ledger with "
        f"a daily budget and the result cache; {billed} results billed; goal <= 1.15",
        wall / bound <= 1.15,
    )


# ------------------------------------------------------------------ the budget race


def _racer(conn_json: str, start: multiprocessing.synchronize.Event, index: int, out: Any) -> None:
    import os

    os.environ[_common.CONN_ENV] = conn_json
    from airflow_provider_patsnap.errors import PatsnapBudgetExceededError
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    hook = PatsnapHook()
    hook.ledger  # noqa: B018 - schema and engine ready before the start line
    made = 0
    start.wait()
    try:
        while True:
            hook.create_patent_value_report(patent_number=f"CN{index}{made:06d}B")
            made += 1
    except PatsnapBudgetExceededError:
        out.put(("ok", made))
    except Exception as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def budget_race(url: str, cap: int, name: str) -> None:
    with _common.EmulatorProcess(job_seconds=1.0) as emu:
        conn_json = emu.connection_json(qps=0, ledger_url=url, budget_daily_units=cap)
        context = multiprocessing.get_context("spawn")
        start, out = context.Event(), context.Queue()
        racers = [context.Process(target=_racer, args=(conn_json, start, i, out)) for i in range(RACERS)]
        for racer in racers:
            racer.start()
        time.sleep(3)  # every racer imported and connected: they leave the line together
        start.set()
        answers = [out.get(timeout=300) for _ in racers]
        for racer in racers:
            racer.join(timeout=30)
        creates = emu.stats["creates"]
    errors = [detail for status, detail in answers if status != "ok"]
    if errors:
        raise SystemExit(f"a racer failed: {errors[0]}")
    made = sorted(detail for _, detail in answers)
    _common.figure(
        f"ledger.budget_race_billed_per_cap[{name}]",
        creates / cap,
        f"{creates} creates billed / cap {cap}; {RACERS} processes made {made}; goal = 1.00",
        creates == cap,
    )


# ------------------------------------------------------------------ reuse across runs


class _TI:
    def __init__(self, run_id: str, index: int) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = "refresh", run_id, "report", index
        self.max_tries, self.try_number = 2, 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def reuse(reports: int, ledger_url: str, archive: Path) -> None:
    from airflow_provider_patsnap.operators.reports import PatsnapEnterpriseReportOperator

    def refresh(run_id: str, window: dt.timedelta | None) -> tuple[int, int, float]:
        billed = reused = 0
        started = time.perf_counter()
        for index in range(reports):
            result = PatsnapEnterpriseReportOperator(
                task_id="report",
                company_name=f"Company {index:04d}",
                destination=f"{archive}/{run_id}/{index}/",
                poll_interval=0.05,
                timeout=60,
                deferrable=False,
                reuse_within=window,
            ).execute({"ti": _TI(run_id, index)})
            billed += result["billed_units"]
            reused += result["reused_units"]
        return billed, reused, time.perf_counter() - started

    with _common.EmulatorProcess(job_seconds=0.05) as emu:
        _common.use_connection(emu.connection_json(qps=0, ledger_url=ledger_url))
        _common.reset_process_state()
        first, _, first_wall = refresh("week1", None)
        creates_first = emu.stats["creates"]
        second, reused, second_wall = refresh("week2", dt.timedelta(days=7))
        creates_second = emu.stats["creates"] - creates_first
    _common.figure(
        "ledger.reuse_second_run_billed",
        creates_second / reports,
        f"second run: {creates_second} creates at PatSnap ({second} billed units in the results, {reused} reused) "
        f"/ {reports} reports; first run {creates_first} creates ({first} billed); walls {first_wall:.1f} s / "
        f"{second_wall:.1f} s; goal 0",
        creates_second == 0 and second == 0 and reused == reports,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patents", type=int, default=int(_common.env_number("BENCH_PATENTS", 10_000)))
    parser.add_argument("--reports", type=int, default=int(_common.env_number("BENCH_REPORTS", 200)))
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--cap", type=int, default=60)
    args = parser.parse_args()

    from airflow_provider_patsnap.ledger.engine import dispose_all

    work = Path(tempfile.mkdtemp(prefix="patsnap-bench-ledger-"))
    cluster = postgres()
    databases = {"sqlite": lambda name: f"sqlite:///{work / name}.db"}
    if cluster is not None:
        databases["postgresql"] = cluster.fresh_database
    try:
        for name, database in databases.items():
            spent = overhead(database("overhead"), args.calls)
            p50, p99 = percentile(spent, 0.50) * 1000, percentile(spent, 0.99) * 1000
            _common.figure(
                f"ledger.overhead_p50_ms[{name}]", p50, f"mean {statistics.fmean(spent) * 1000:.2f} ms", None
            )
            _common.figure(
                f"ledger.overhead_p99_ms[{name}]",
                p99,
                f"{len(spent)} billable calls: reserve + sent + settle, budget set; goal <= 10",
                p99 <= 10,
            )
        for name, database in databases.items():
            budget_race(database("race"), args.cap, name)
        dispose_all()
        p037_with_ledger(args.patents, databases["sqlite"]("p037"))
        dispose_all()
        reuse(args.reports, databases["sqlite"]("reuse"), work / "archive")
    finally:
        dispose_all()
        if cluster is not None:
            cluster.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    _common.watchdog(900)
    main()
