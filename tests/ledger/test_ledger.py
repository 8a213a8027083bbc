"""The ledger on real databases: a SQLite file shared by processes, and PostgreSQL on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from typing import Any

import pytest
from sqlalchemy import create_engine

from airflow_provider_patsnap.ledger import Budget, BudgetExceeded, Purchase, TaskRef
from airflow_provider_patsnap.ledger.engine import dispose_all
from airflow_provider_patsnap.ledger.schema import SCHEMA_VERSION, SchemaError, ensure_schema, meta
from airflow_provider_patsnap.ledger.store import PatsnapLedger

ACCOUNT = "https://connect.patsnap.com#0123456789abcdef"
REPORT = Purchase("/innovation/company-report/task/create", "R001", "company_name=ACME", 1, "pdf/logo")
TASK = TaskRef("dag", "run-1", "report", -1, task_run=2, try_number=1)


def batch(units: int) -> Purchase:
    return Purchase("/patent-valuation-data/legal_indicators", "P037", "batch:abc", units)


def today(ledger: PatsnapLedger) -> tuple[str, str]:
    return ledger.periods(dt.datetime.now(dt.timezone.utc))


def test_a_unit_is_reserved_sent_and_settled_to_what_patsnap_billed(url: str) -> None:
    ledger = PatsnapLedger(url, ACCOUNT)
    day, month = today(ledger)
    unit = ledger.reserve(batch(100), TASK)
    assert ledger.reserved(f"day:{day}") == 100 and ledger.reserved(f"month:{month}") == 100
    ledger.sent(unit)
    ledger.settle(unit, 87)  # 87 of the 100 patents had results: billed per result returned
    (row,) = ledger.rows()
    assert (row["state"], row["units_reserved"], row["units_billed"]) == ("answered", 100, 87)
    assert (row["dag_id"], row["task_id"], row["task_run"], row["day"]) == ("dag", "report", 2, day)
    assert ledger.reserved(f"day:{day}") == 87 and ledger.reserved(f"month:{month}") == 87


def test_a_refusal_gives_the_reservation_back_and_an_ambiguous_call_keeps_it(url: str) -> None:
    ledger = PatsnapLedger(url, ACCOUNT)
    day, _ = today(ledger)
    refused, lost = ledger.reserve(REPORT), ledger.reserve(REPORT)
    ledger.refuse(refused)
    ledger.sent(lost)
    ledger.ambiguous(lost)
    assert ledger.reserved(f"day:{day}") == 1
    assert [r["state"] for r in ledger.rows()] == ["refused", "ambiguous"]


@pytest.mark.parametrize(("daily", "monthly", "period"), [(5, None, "daily"), (None, 5, "monthly")])
def test_a_budget_refuses_before_anything_is_recorded(url: str, daily: Any, monthly: Any, period: str) -> None:
    ledger = PatsnapLedger(url, ACCOUNT, Budget(daily=daily, monthly=monthly))
    for _ in range(5):
        ledger.reserve(REPORT)
    with pytest.raises(
        BudgetExceeded, match=rf"the {period} budget of 5 units .*has 5 spent or reserved; this call needs 1"
    ) as info:
        ledger.reserve(REPORT)
    assert (info.value.spent, info.value.cap) == (5, 5)
    assert len(ledger.rows()) == 5
    ledger.refuse(ledger.rows()[0]["id"])  # a refused call frees its unit
    ledger.reserve(REPORT)


def test_a_task_cap_counts_the_runs_units_across_attempts(url: str) -> None:
    ledger = PatsnapLedger(url, ACCOUNT)
    ledger.reserve(batch(100), TASK, task_cap=250)
    retry = TaskRef("dag", "run-1", "report", -1, task_run=2, try_number=2)
    ledger.reserve(batch(100), retry, task_cap=250)
    with pytest.raises(BudgetExceeded, match="max_billable_units=250 of this task's run has 200"):
        ledger.reserve(batch(100), retry, task_cap=250)
    cleared = TaskRef("dag", "run-1", "report", -1, task_run=5, try_number=3)  # a clear: a new run
    ledger.reserve(batch(100), cleared, task_cap=250)
    with pytest.raises(BudgetExceeded, match="has 0 spent"):
        ledger.reserve(batch(1), TaskRef("dag", "run-2", "report", -1, 0, 1), task_cap=0)  # a cap of zero


def test_a_task_cap_counts_what_settled_units_billed(url: str) -> None:
    ledger = PatsnapLedger(url, ACCOUNT)
    first = ledger.reserve(batch(100), TASK, task_cap=150)
    ledger.sent(first)
    ledger.settle(first, 5)  # 5 of 100 patents had results
    second = ledger.reserve(batch(100), TASK, task_cap=150)  # 5 + 100 <= 150
    ledger.sent(second)
    with pytest.raises(BudgetExceeded, match="has 105 spent or reserved"):
        ledger.reserve(batch(100), TASK, task_cap=150)


def test_closing_a_unit_twice_counts_once(url: str) -> None:
    ledger = PatsnapLedger(url, ACCOUNT)
    day, _ = today(ledger)
    unit = ledger.reserve(batch(100))
    ledger.sent(unit)
    ledger.ambiguous(unit)
    ledger.resolve_ambiguous([unit], billed=False)  # the reservation given back once...
    ledger.resolve_ambiguous([unit], billed=False)  # ... and not again
    ledger.settle(unit, 100)
    (row,) = ledger.rows()
    assert (row["state"], row["units_billed"]) == ("refused", 0) and ledger.reserved(f"day:{day}") == 0
    other = ledger.reserve(batch(10))
    ledger.refuse(other)
    ledger.refuse(other)
    assert ledger.reserved(f"day:{day}") == 0


def test_days_are_counted_in_the_budget_time_zone() -> None:
    ledger = PatsnapLedger("sqlite://", ACCOUNT, Budget(timezone="Asia/Shanghai"))
    late_utc = dt.datetime(2026, 12, 31, 16, 30, tzinfo=dt.timezone.utc)  # already 1 January in Shanghai
    assert ledger.periods(late_utc) == ("2027-01-01", "2027-01")
    assert PatsnapLedger("sqlite://", ACCOUNT, Budget(timezone="UTC")).periods(late_utc) == ("2026-12-31", "2026-12")


def test_accounts_do_not_share_a_budget(url: str) -> None:
    one = PatsnapLedger(url, ACCOUNT, Budget(daily=1))
    other = PatsnapLedger(url, "https://connect.patsnap.com#ffffffffffffffff", Budget(daily=1))
    one.reserve(REPORT)
    other.reserve(REPORT)
    assert len(one.rows()) == 1 and len(other.rows()) == 1


def test_the_schema_is_created_once_versioned_and_a_newer_one_refused(url: str) -> None:
    PatsnapLedger(url, ACCOUNT)
    engine = create_engine(url)
    assert ensure_schema(engine) == SCHEMA_VERSION  # again: nothing to do
    with engine.begin() as connection:
        connection.execute(meta.update().values(value=str(SCHEMA_VERSION + 1)))
    with pytest.raises(SchemaError, match="newer than this provider's"):
        ensure_schema(engine)
    engine.dispose()


def test_reports_bought_within_a_window_are_found_for_reuse(url: str) -> None:
    ledger = PatsnapLedger(url, ACCOUNT)
    unit = ledger.reserve(REPORT)
    ledger.settle(unit, 1, job_id="1579434053399035905")
    ledger.attach_result(serial="R001", job_id="1579434053399035905", uri="file:///a/r.pdf", sha256="ab" * 32)
    week_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=7)
    found = ledger.reusable_report("R001", "company_name=ACME", "pdf/logo", week_ago)
    assert found is not None and found["result_uri"] == "file:///a/r.pdf" and found["job_id"] == "1579434053399035905"
    assert ledger.reusable_report("R001", "company_name=ACME", "word/logo", week_ago) is None  # another type
    assert ledger.reusable_report("R001", "company_name=ACME", "pdf/logo", dt.datetime.now(dt.timezone.utc)) is None


def test_a_reuse_neither_extends_the_window_nor_hides_its_copy(url: str) -> None:
    from sqlalchemy import update

    from airflow_provider_patsnap.ledger.schema import units

    ledger = PatsnapLedger(url, ACCOUNT)
    bought = ledger.reserve(REPORT)
    ledger.settle(bought, 1, job_id="1579434053399035905")
    ledger.attach_result(serial="R001", job_id="1579434053399035905", uri="file:///w1/r.pdf", sha256="ab" * 32)
    now = dt.datetime.now(dt.timezone.utc)
    source = ledger.reusable_report("R001", "company_name=ACME", "pdf/logo", now - dt.timedelta(days=6))
    assert source is not None
    ledger.record_reuse(REPORT, source, TASK, uri="file:///w2/r.pdf", sha256="ab" * 32)
    found = ledger.reusable_report("R001", "company_name=ACME", "pdf/logo", now - dt.timedelta(days=6))
    assert found is not None and found["id"] == bought and found["result_uri"] == "file:///w2/r.pdf"  # newest copy

    with ledger.engine.begin() as connection:  # the purchase was 30 days ago; its reuse was today
        connection.execute(update(units).where(units.c.id == bought).values(created_at=now - dt.timedelta(days=30)))
    assert ledger.reusable_report("R001", "company_name=ACME", "pdf/logo", now - dt.timedelta(days=6)) is None


def test_reconciliation_settles_dead_processes_units_once_the_day_is_closed(url: str) -> None:
    from sqlalchemy import update

    from airflow_provider_patsnap.ledger.reconcile import reconcile
    from airflow_provider_patsnap.ledger.schema import units

    ledger = PatsnapLedger(url, ACCOUNT)
    sent = ledger.reserve(REPORT)
    ledger.sent(sent)  # its process died before the answer was recorded
    ledger.reserve(REPORT)  # its process died before sending: the mark always comes first
    answered = ledger.reserve(REPORT)
    ledger.sent(answered)
    ledger.settle(answered, 1)
    day = dt.date(2026, 11, 2)
    china_noon = dt.datetime(2026, 11, 2, 12, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with ledger.engine.begin() as connection:
        connection.execute(update(units).values(created_at=china_noon, sent_at=None))
        connection.execute(update(units).where(units.c.id != sent + 1).values(sent_at=china_noon))
    path = REPORT.endpoint
    statement = {"usage": [{"request_path": path, "serial_number": "R001", "fee_times": 2}]}

    early = reconcile(ledger, statement, day, day, now=china_noon + dt.timedelta(hours=20))
    assert early["closed"] is False and early["endpoints"][0]["ambiguous_units"] == 1
    assert sorted(r["state"] for r in ledger.rows()) == ["answered", "intent", "sent"]

    late = reconcile(ledger, statement, day, day, now=china_noon + dt.timedelta(days=2))
    (entry,) = late["endpoints"]
    assert late["closed"] is True and late["released_intent_units"] == 1
    assert (entry["ledger_units"], entry["difference"], entry["resolved"]) == (2, 0, {"units": 1, "billed": True})
    assert sorted(r["state"] for r in ledger.rows()) == ["answered", "answered", "refused"]
    assert ledger.reserved("day:" + ledger.rows()[0]["day"]) == 2

    # A unit sent the next China day is not this day's, whatever the budget's time zone says.
    with ledger.engine.begin() as connection:
        connection.execute(update(units).values(sent_at=china_noon + dt.timedelta(hours=12)))
    assert (
        reconcile(ledger, statement, day, day, now=china_noon + dt.timedelta(days=3))["endpoints"][0]["ledger_units"]
        == 0
    )


def test_indicator_results_are_cached_per_patent_and_replaced_by_newer_ones(url: str) -> None:
    ledger = PatsnapLedger(url, ACCOUNT)
    then = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    ledger.store_results("P037", {"n:CN1": {"pn": "CN1", "v": 1}, "n:CN2": {"pn": "CN2", "v": 2}}, then)
    ledger.store_results("P037", {"n:CN1": {"pn": "CN1", "v": 3}}, then + dt.timedelta(days=2))
    found = ledger.cached_results("P037", ["n:CN1", "n:CN2", "n:CN3"], then)
    assert found == {
        "n:CN1": ({"pn": "CN1", "v": 3}, "2026-12-03T00:00:00+00:00"),
        "n:CN2": ({"pn": "CN2", "v": 2}, "2026-12-01T00:00:00+00:00"),
    }
    assert list(ledger.cached_results("P037", ["n:CN1", "n:CN2"], then + dt.timedelta(days=1))) == ["n:CN1"]


# ------------------------------------------------------------------------------------ racing processes


def _hammer(url: str, cap: int, results: Any) -> None:
    dispose_all()  # a forked engine is not ours
    ledger = PatsnapLedger(url, ACCOUNT, Budget(daily=cap))
    bought = refused = 0
    while refused < 5:
        try:
            unit = ledger.reserve(REPORT)
        except BudgetExceeded:
            refused += 1
            continue
        ledger.sent(unit)
        ledger.settle(unit, 1, job_id=str(unit))
        bought += 1
    results.put(bought)


def test_four_processes_racing_for_one_cap_never_pass_it(url: str) -> None:
    cap = 60
    PatsnapLedger(url, ACCOUNT, Budget(daily=cap))  # the schema, before the race
    dispose_all()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_hammer, args=(url, cap, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    bought = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(30)
    ledger = PatsnapLedger(url, ACCOUNT)
    rows = ledger.rows()
    assert sum(bought) == cap, bought  # every process got some, and together exactly the cap
    assert sum(r["units_billed"] or 0 for r in rows) == cap and len(rows) == cap
    assert ledger.reserved(f"day:{today(ledger)[0]}") == cap
