"""What the spend page reads from the ledger (``ledger.spend``), and the v1 -> v2 schema step it needs."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, inspect, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from airflow_provider_patsnap.ledger import Budget, Purchase, TaskRef
from airflow_provider_patsnap.ledger.schema import (
    SCHEMA_VERSION,
    VERSION_KEY,
    budgets,
    meta,
    open_units_index,
    reconciliations,
    results,
    units,
)
from airflow_provider_patsnap.ledger.spend import spend
from airflow_provider_patsnap.ledger.store import PatsnapLedger

ACCOUNT = "https://connect.patsnap.com#0123456789abcdef"
R001 = Purchase("/innovation/company-report/task/create", "R001", "company_name=ACME", 1, "pdf/logo")
P037 = Purchase("/patent-valuation-data/legal_indicators", "P037", "batch:abc", 100)


def task(dag_id: str, task_id: str = "t", run_id: str = "manual__1", map_index: int = -1) -> TaskRef:
    return TaskRef(dag_id, run_id, task_id, map_index, task_run=0, try_number=1)


def buy(ledger: PatsnapLedger, purchase: Purchase, where: TaskRef, billed: int, job_id: str | None = None) -> int:
    unit = ledger.reserve(purchase, where)
    ledger.sent(unit)
    ledger.settle(unit, billed, job_id=job_id)
    return unit


def move(ledger: PatsnapLedger, unit: int, days_ago: int, **values: Any) -> str:
    when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days_ago)
    day, month = ledger.periods(when)
    with ledger.engine.begin() as connection:
        connection.execute(
            update(units).where(units.c.id == unit).values(day=day, month=month, created_at=when, **values)
        )
    return day


def test_a_v1_ledger_is_migrated_in_place(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:  # a ledger as 0.3's first release wrote it
        meta.metadata.create_all(connection, tables=[meta, units, budgets, results])
        open_units_index.drop(connection)
        connection.execute(meta.insert().values(key=VERSION_KEY, value="1"))
        connection.execute(
            units.insert().values(
                account=ACCOUNT, endpoint="/x", serial="R001", subject="s", variant="", state="answered",
                units_reserved=1, units_billed=1, units_reused=0, created_at=dt.datetime.now(dt.timezone.utc),
                day="2026-12-01", month="2026-12",
            )
        )  # fmt: skip
    ledger = PatsnapLedger(url, ACCOUNT)
    found = inspect(engine)
    assert SCHEMA_VERSION == 2 and found.has_table(reconciliations.name)
    assert open_units_index.name in {index["name"] for index in found.get_indexes(units.name)}
    with engine.connect() as connection:
        assert connection.execute(meta.select()).all() == [(VERSION_KEY, "2")]
    assert [row["serial"] for row in ledger.rows()] == ["R001"]  # what v1 recorded is still there
    engine.dispose()


def test_days_budgets_top_tasks_and_reuse_are_summed_by_the_database(url: str) -> None:
    ledger = PatsnapLedger(url, ACCOUNT, Budget(daily=500, monthly=5000))
    now = dt.datetime.now(dt.timezone.utc)
    refresh, lake = task("refresh", "create", map_index=3), task("lake", "legal")
    buy(ledger, R001, refresh, 1, job_id="1579434053399035905")
    buy(ledger, P037, lake, 87)
    three_days_ago = move(ledger, buy(ledger, P037, lake, 100), 3)
    move(ledger, buy(ledger, P037, lake, 100), 40)  # outside a 30-day window
    ledger.record_reuse(R001, {"id": 1, "job_id": "1579434053399035905"}, refresh)
    summary = spend(ledger, days=30, now=now)
    today = ledger.periods(now)[0]
    assert summary["first_day"] == ledger.periods(now - dt.timedelta(days=29))[0] and summary["last_day"] == today
    assert summary["days"] == [
        {"day": three_days_ago, "endpoint": "P037", "units": 100},
        {"day": today, "endpoint": "P037", "units": 87},
        {"day": today, "endpoint": "R001", "units": 1},
    ]
    # The gauges show the caps' own counters: the two units moved back in time were reserved today.
    assert summary["budget"]["day_units"] == 288 and summary["budget"]["daily_cap"] == 500
    assert summary["budget"]["timezone"] == "Asia/Shanghai" and summary["budget"]["monthly_cap"] == 5000
    assert [(t["dag_id"], t["task_id"], t["units"], t["calls"]) for t in summary["top"]] == [
        ("lake", "legal", 187, 2),
        ("refresh", "create", 1, 1),
    ]
    assert summary["top"][1]["run_id"] == "manual__1" and summary["top"][1]["map_index"] == 3
    assert summary["reused_units"] == 1
    assert summary["open"] == []


def test_open_questions_are_ambiguous_calls_lost_answers_and_statement_differences(url: str) -> None:
    ledger = PatsnapLedger(url, ACCOUNT)
    now = dt.datetime.now(dt.timezone.utc)
    where = task("refresh", "create", run_id="scheduled__2026-12-01")
    ambiguous = ledger.reserve(R001, where)
    ledger.sent(ambiguous)
    ledger.ambiguous(ambiguous)
    in_flight = ledger.reserve(P037, where)
    ledger.sent(in_flight)  # sent a moment ago: its answer may still come, not a question yet
    lost = ledger.reserve(P037, where)
    ledger.sent(lost)
    with ledger.engine.begin() as connection:
        connection.execute(update(units).where(units.c.id == lost).values(sent_at=now - dt.timedelta(hours=1)))
    result = {
        "period": ["2026-12-01", "2026-12-01"],
        "endpoints": [
            {"path": "/p", "serial": "P037", "fee_times": 90, "ledger_units": 87, "difference": 3, "partial": False},
            {"path": "/r", "serial": "R001", "fee_times": 1, "ledger_units": 1, "difference": 0, "partial": False},
        ],
    }
    ledger.record_reconciliation(result, task("patsnap_usage_reconciliation", "reconcile"))
    found = spend(ledger, days=30, now=now)["open"]
    assert [(item["kind"], item["units"]) for item in found] == [
        ("no answer recorded", 100),
        ("may have run", 1),
        ("statement differs", 3),
    ]
    assert found[2]["subject"] == "PatSnap billed 90, the ledger has 87" and found[2]["task_id"] == "reconcile"
    # The next reconciliation of the same period replaces the last one: settled, nothing open there.
    result["endpoints"][0].update(ledger_units=90, difference=0)
    ledger.record_reconciliation(result, None)
    assert [item["kind"] for item in spend(ledger, days=30, now=now)["open"]] == ["no answer recorded", "may have run"]


def test_dags_the_reader_may_not_see_keep_their_units_not_their_names(url: str) -> None:
    ledger = PatsnapLedger(url, ACCOUNT)
    buy(ledger, R001, task("public"), 1)
    buy(ledger, P037, task("secret_dag"), 100)
    unit = ledger.reserve(R001, task("secret_dag"))
    ledger.sent(unit)
    ledger.ambiguous(unit)
    summary = spend(ledger, days=7, now=dt.datetime.now(dt.timezone.utc), visible=lambda dag_id: dag_id == "public")
    assert [t["dag_id"] for t in summary["top"]] == ["public"]
    assert sum(day["units"] for day in summary["days"]) == 101  # the account's spend, whoever bought it
    (question,) = summary["open"]
    assert question["units"] == 1 and question["dag_id"] is None and question["subject"] == "(hidden)"
    assert "secret_dag" not in repr(summary)


def test_a_reader_never_creates_migrates_or_writes_a_ledger(url: str, tmp_path: Path) -> None:
    from airflow_provider_patsnap.ledger.engine import LedgerMissing

    missing = tmp_path / "elsewhere" / "ledger.db"
    with pytest.raises(LedgerMissing):
        PatsnapLedger(f"sqlite:///{missing}", ACCOUNT, read_only=True)
    assert not missing.parent.exists()
    if url.startswith("sqlite"):
        Path(str(make_url(url).database)).touch()  # a database no task has written to yet
    empty = PatsnapLedger(url, ACCOUNT, read_only=True)
    assert empty.version is None and not inspect(empty.engine).has_table(units.name)
    assert spend(empty, days=7, now=dt.datetime.now(dt.timezone.utc))["days"] == []
    engine = create_engine(url)
    with engine.begin() as connection:  # a version 1 ledger stays version 1 under a reader
        meta.metadata.create_all(connection, tables=[meta, units, budgets, results])
        connection.execute(meta.insert().values(key=VERSION_KEY, value="1"))
    reader = PatsnapLedger(url, ACCOUNT, read_only=True)
    assert reader.version == 1 and spend(reader, days=7, now=dt.datetime.now(dt.timezone.utc))["open"] == []
    assert not inspect(engine).has_table(reconciliations.name)
    with pytest.raises(DBAPIError):  # read only: SQLite query_only, PostgreSQL read-only sessions
        reader.reserve(R001, task("d"))
    engine.dispose()


def test_a_reader_holds_no_lock_a_writer_waits_for(url: str) -> None:
    writer = PatsnapLedger(url, ACCOUNT)
    buy(writer, R001, task("d"), 1)
    reader = PatsnapLedger(url, ACCOUNT, read_only=True)
    with reader.engine.begin() as reading:  # the page's snapshot, open while a task buys
        assert reading.execute(select(func.count()).select_from(units)).scalar() == 1
        started = time.monotonic()
        buy(writer, P037, task("d"), 100)
        assert time.monotonic() - started < 5  # a write lock would hold it for the 30 s busy timeout
    assert len(reader.rows()) == 2
