"""Cost control through the real hook and operators, against the emulator: every unit recorded,
budgets before paying, reuse across runs, PatSnap's statement reconciled, the CLI, the metrics."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_patsnap.errors import Outcome, PatsnapBudgetExceededError, PatsnapRetryableError
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.ledger.engine import dispose_all
from airflow_provider_patsnap.ledger.store import PatsnapLedger
from airflow_provider_patsnap.operators.api import PatsnapApiOperator
from airflow_provider_patsnap.operators.indicators import PatsnapLegalIndicatorsOperator
from airflow_provider_patsnap.operators.reports import (
    PatsnapCreateEnterpriseReportOperator,
    PatsnapEnterpriseReportOperator,
)
from airflow_provider_patsnap.operators.usage import PatsnapUsageOperator
from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from airflow_provider_patsnap.version_compat import AirflowFailException
from tests.ledger_support import backdate
from tests.support import files_under

KNOWN = ["CN108977442B", "US5012236A", "CN200001A"]


class TI:
    """What the operators read of a task instance (the ledger records it)."""

    def __init__(self, task_id: str = "report", run_id: str = "run-1", try_number: int = 1) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = "cost_dag", run_id, task_id, -1
        self.max_tries, self.try_number = 2, try_number

    def xcom_push(self, key: str, value: Any) -> None:
        pass


@pytest.fixture
def ledger_db(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'ledger.db'}"
    dispose_all()


def connect(monkeypatch: pytest.MonkeyPatch, emu: PatsnapEmulator, ledger: str | None, **extra: Any) -> None:
    settings: dict[str, Any] = {"qps": 0, "retry_wait_min": 0.01, "retry_wait_max": 0.05, **extra}
    if ledger:
        settings["ledger_url"] = ledger
    monkeypatch.setenv("AIRFLOW_CONN_PATSNAP_DEFAULT", emu.connection_json(**settings))


def ledger_rows() -> list[dict[str, Any]]:
    ledger = PatsnapHook().ledger
    assert ledger is not None
    return ledger.rows()


def report(tmp_path: Path, name: str = "Example Robotics Ltd", **kwargs: Any) -> PatsnapEnterpriseReportOperator:
    return PatsnapEnterpriseReportOperator(
        task_id="report", company_name=name, destination=f"{tmp_path}/archive/", poll_interval=0.1, timeout=30, **kwargs
    )


# ------------------------------------------------------------------------------------ every unit recorded


def test_every_billable_unit_is_recorded_with_its_task(
    emulator: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch, ledger_db: str, tmp_path: Path
) -> None:
    connect(monkeypatch, emulator, ledger_db)
    result = report(tmp_path).execute({"ti": TI()})
    PatsnapLegalIndicatorsOperator(task_id="legal", patent_numbers=[*KNOWN, "CN000UNKNOWN1"]).execute(
        {"ti": TI("legal")}
    )
    body = {"report_type": "pdf", "company_name": "Generic Call Co"}
    PatsnapApiOperator(
        task_id="api", method="POST", endpoint="/innovation/company-report/task/create", json=body
    ).execute({"ti": TI("api")})

    rows = {(r["serial"], r["task_id"]): r for r in ledger_rows()}
    create = rows[("R001", "report")]
    assert (create["state"], create["units_billed"], create["job_id"]) == ("answered", 1, result["job_id"])
    assert create["subject"] == "company_name=Example Robotics Ltd" and create["variant"] == "pdf/logo"
    assert (create["result_uri"], create["result_sha256"]) == (result["uri"], result["sha256"])  # for reuse
    assert (create["dag_id"], create["run_id"], create["task_run"], create["try_number"]) == ("cost_dag", "run-1", 2, 1)
    batch = rows[("P037", "legal")]
    assert (batch["units_reserved"], batch["units_billed"]) == (4, 3)  # billed per result returned
    generic = rows[("R001", "api")]  # a known product, whichever way it is called
    assert generic["state"] == "answered" and generic["units_billed"] == 1
    assert result["billed_units"] == 1 and result["reused_units"] == 0
    assert sum(r["units_billed"] for r in rows.values()) == emulator.billed()  # the ledger agrees with PatSnap
    account = rows[("R001", "report")]["account"]
    assert account.startswith(emulator.url + "#") and emulator.client_secret not in account


def test_the_ledger_of_a_connection_is_found_by_its_id(
    emulator: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch, ledger_db: str
) -> None:
    connect(monkeypatch, emulator, None)
    assert PatsnapLedger.for_connection("patsnap_default") is None  # no ledger configured
    connect(monkeypatch, emulator, ledger_db, budget_daily_units=7)
    PatsnapCreateEnterpriseReportOperator(task_id="c", company_name="ACME").execute({"ti": TI("c")})

    ledger = PatsnapLedger.for_connection("patsnap_default")
    assert ledger is not None and ledger.budget.daily == 7
    assert [(r["serial"], r["state"]) for r in ledger.rows()] == [("R001", "answered")]
    assert ledger_db not in repr(ledger)


def test_a_billable_product_called_through_run_is_recorded_whatever_the_verb(
    emulator: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch, ledger_db: str
) -> None:
    connect(monkeypatch, emulator, ledger_db, budget_daily_units=3)
    asked = ",".join([*KNOWN[:2], "CN000UNKNOWN1"])
    data = PatsnapHook().run("GET", "/patent-valuation-data/legal_indicators", params={"patent_number": asked})
    assert len(data) == 2
    (row,) = ledger_rows()
    assert (row["serial"], row["units_reserved"], row["units_billed"]) == ("P037", 3, 2)
    calls = dict(emulator.stats["calls"])
    with pytest.raises(PatsnapBudgetExceededError, match="daily budget of 3 units"):  # 2 spent, 2 more asked
        PatsnapHook().run("GET", "/patent-valuation-data/legal_indicators", params={"patent_number": asked[:25]})
    assert emulator.stats["calls"] == calls  # refused before any call


def test_a_ledger_that_cannot_be_written_sends_nothing(
    emulator: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch, ledger_db: str
) -> None:
    connect(monkeypatch, emulator, ledger_db)
    ledger = PatsnapHook().ledger
    assert ledger is not None
    with ledger.engine.begin() as connection:  # the database breaks under the ledger
        connection.exec_driver_sql("DROP TABLE patsnap_budget")
    with pytest.raises(PatsnapRetryableError, match="the ledger could not record this billable call") as info:
        PatsnapHook(max_retries=0).create_enterprise_report(company_name="ACME")
    assert info.value.outcome is Outcome.NOT_SENT
    assert emulator.stats["creates"] == 0 and emulator.billed() == 0


# ------------------------------------------------------------------------------------ budgets


def test_a_daily_budget_refuses_before_any_call_and_without_retries(
    emulator: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch, ledger_db: str
) -> None:
    connect(monkeypatch, emulator, ledger_db, budget_daily_units=2)
    for name in ("One Co", "Two Co"):
        PatsnapCreateEnterpriseReportOperator(task_id="c", company_name=name).execute({"ti": TI("c")})
    with pytest.raises(
        AirflowFailException, match=r"the daily budget of 2 units for \d{4}-\d\d-\d\d \(Asia/Shanghai\) has 2 spent"
    ):
        PatsnapCreateEnterpriseReportOperator(task_id="c", company_name="Three Co").execute({"ti": TI("c")})
    assert emulator.stats["creates"] == 2
    with pytest.raises(AirflowFailException, match="daily budget"):  # a batch of 3 does not fit either
        PatsnapLegalIndicatorsOperator(task_id="l", patent_numbers=KNOWN).execute({"ti": TI("l")})
    assert emulator.billed("/legal_indicators") == 0


def test_a_tasks_own_cap_and_a_cap_of_zero(
    emulator: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch, ledger_db: str
) -> None:
    connect(monkeypatch, emulator, ledger_db)
    patents = [f"CN{700000 + i}A" for i in range(250)]  # 3 batches: 100 + 100 + 50
    with pytest.raises(AirflowFailException, match="max_billable_units=150 of this task's run"):
        PatsnapLegalIndicatorsOperator(task_id="l", patent_numbers=patents, max_billable_units=150).execute(
            {"ti": TI("l")}
        )
    assert emulator.billed("/legal_indicators") <= 150
    with pytest.raises(AirflowFailException, match="max_billable_units=0"):
        PatsnapCreateEnterpriseReportOperator(task_id="z", company_name="Zero Co", max_billable_units=0).execute(
            {"ti": TI("z")}
        )
    assert emulator.stats["creates"] == 0


def test_options_that_need_a_ledger_say_so_before_any_call(
    emulator: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, emulator, None)
    with pytest.raises(AirflowFailException, match="max_billable_units: needs a ledger"):
        PatsnapCreateEnterpriseReportOperator(task_id="c", company_name="ACME", max_billable_units=5).execute(
            {"ti": TI()}
        )
    with pytest.raises(AirflowFailException, match="reuse_within: needs a ledger"):
        PatsnapCreateEnterpriseReportOperator(task_id="c", company_name="ACME", reuse_within=3600).execute({"ti": TI()})
    connect(monkeypatch, emulator, None, budget_daily_units=10)
    with pytest.raises(AirflowFailException, match="budget_daily_units: a budget needs a ledger"):
        PatsnapCreateEnterpriseReportOperator(task_id="c", company_name="ACME").execute({"ti": TI()})
    assert emulator.stats["calls"] == {}


# ------------------------------------------------------------------------------------ reuse


def test_a_second_run_reuses_the_archived_report_and_buys_nothing(
    emulator: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch, ledger_db: str, tmp_path: Path
) -> None:
    connect(monkeypatch, emulator, ledger_db)
    first = report(tmp_path / "week1", reuse_within=dt.timedelta(days=7)).execute({"ti": TI(run_id="w1")})
    second = report(tmp_path / "week2", reuse_within=dt.timedelta(days=7)).execute({"ti": TI(run_id="w2")})
    assert emulator.stats["creates"] == 1 and emulator.stats["downloads_completed"] == 1  # a copy, not a download
    assert (second["billed_units"], second["reused_units"]) == (0, 1)
    assert second["sha256"] == first["sha256"] and second["job_id"] == first["job_id"]
    assert (
        Path(second["uri"].removeprefix("file://")).read_bytes()
        == Path(first["uri"].removeprefix("file://")).read_bytes()
    )
    states = [r["state"] for r in ledger_rows()]
    assert states == ["answered", "reused"]


def test_without_the_archived_copy_the_jobs_link_is_fetched_again(
    emulator: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch, ledger_db: str, tmp_path: Path
) -> None:
    connect(monkeypatch, emulator, ledger_db)
    first = report(tmp_path / "week1", reuse_within=3600).execute({"ti": TI(run_id="w1")})
    Path(first["uri"].removeprefix("file://")).unlink()  # the archive was cleaned up
    second = report(tmp_path / "week2", reuse_within=3600).execute({"ti": TI(run_id="w2")})
    assert emulator.stats["creates"] == 1 and emulator.stats["downloads_completed"] == 2
    assert second["sha256"] == first["sha256"] and second["reused_units"] == 1


def test_a_reused_job_patsnap_no_longer_knows_is_bought_again_and_said_so(
    emulator: PatsnapEmulator,
    monkeypatch: pytest.MonkeyPatch,
    ledger_db: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    connect(monkeypatch, emulator, ledger_db)
    first = report(tmp_path / "week1", reuse_within=3600).execute({"ti": TI(run_id="w1")})
    Path(first["uri"].removeprefix("file://")).unlink()  # neither the archived copy...
    with emulator._lock:
        emulator._jobs.clear()  # ... nor the job is there any more
    second = report(tmp_path / "week2", reuse_within=3600).execute({"ti": TI(run_id="w2")})
    assert emulator.stats["creates"] == 2 and second["job_id"] != first["job_id"]
    assert (second["billed_units"], second["reused_units"]) == (1, 0)
    assert [r["state"] for r in ledger_rows()] == ["answered", "answered"]  # no reuse recorded
    logged = caplog.text + "".join(capfd.readouterr())  # Airflow 3 logs through structlog to the terminal
    assert "cannot be fetched again" in logged and "buying a new report" in logged


def test_a_destination_that_refuses_the_reused_copy_buys_nothing(
    emulator: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch, ledger_db: str, tmp_path: Path
) -> None:
    connect(monkeypatch, emulator, ledger_db)
    first = report(tmp_path / "week1", reuse_within=3600).execute({"ti": TI(run_id="w1")})
    taken = tmp_path / "week2" / "archive" / first["filename"]
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"somebody else's file")
    with pytest.raises(AirflowFailException, match="overwrite"):
        report(tmp_path / "week2", reuse_within=3600).execute({"ti": TI(run_id="w2")})
    assert emulator.stats["creates"] == 1 and taken.read_bytes() == b"somebody else's file"
    assert [r["state"] for r in ledger_rows()] == ["answered"]


def test_the_create_operator_reuses_the_job_and_another_type_is_bought(
    emulator: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch, ledger_db: str
) -> None:
    connect(monkeypatch, emulator, ledger_db)

    def create(**kwargs: Any) -> str:
        return PatsnapCreateEnterpriseReportOperator(
            task_id="c", company_name="ACME", reuse_within=3600, **kwargs
        ).execute({"ti": TI("c")})

    job = create()
    assert create() == job
    assert create(report_type="word") != job  # a Word report is another purchase
    assert emulator.stats["creates"] == 2


def test_indicators_fetched_within_the_window_come_from_the_ledger(
    emulator: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch, ledger_db: str, tmp_path: Path
) -> None:
    connect(monkeypatch, emulator, ledger_db)
    patents = [f"CN{500000 + i}A" for i in range(150)]

    def run(destination: str, numbers: list[str]) -> dict[str, Any]:
        return PatsnapLegalIndicatorsOperator(
            task_id="legal", patent_numbers=numbers, destination=destination, reuse_within=dt.timedelta(days=7)
        ).execute({"ti": TI("legal")})

    first = run(f"{tmp_path}/w1/", patents)
    assert (first["billed_units"], first["reused_units"]) == (150, 0)
    second = run(f"{tmp_path}/w2/", [*patents, "CN599999A"])  # one patent more this week
    assert (second["billed_units"], second["reused_units"]) == (1, 150)
    assert emulator.billed("/legal_indicators") == 151
    old = [json.loads(line) for line in (tmp_path / "w1" / "legal_indicators.jsonl").read_text().splitlines()]
    new = [json.loads(line) for line in (tmp_path / "w2" / "legal_indicators.jsonl").read_text().splitlines()]
    assert new[:150] == old  # the same records, fetched_at included (when PatSnap computed them)
    assert new[150]["pn"] == "CN599999A" and new[150]["fetched_at"] >= old[0]["fetched_at"]


# ------------------------------------------------------------------------------------ the statement


def test_the_statement_is_reconciled_and_settles_what_the_ledger_could_not_know(
    emulator: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch, ledger_db: str, tmp_path: Path
) -> None:
    connect(monkeypatch, emulator, ledger_db, max_ambiguous_replays=0, max_retries=0)
    PatsnapCreateEnterpriseReportOperator(task_id="c", company_name="ACME").execute({"ti": TI("c")})
    emulator.indicator_gateway_timeouts = 1  # PatSnap bills the batch; the client sees only a 504
    with pytest.raises(PatsnapRetryableError):
        PatsnapHook().get_legal_indicators(patent_numbers=KNOWN)
    ledger = PatsnapHook().ledger
    assert ledger is not None and [r["state"] for r in ledger.rows()] == ["answered", "ambiguous"]
    then, today = backdate(emulator, ledger, 2)  # yesterday is not closed yet: PatSnap's statement may lag a day

    # Within the statement's lag: reconciled, flagged partial, nothing settled.
    early = PatsnapUsageOperator(task_id="usage", start=then, end=then, statement_lag=dt.timedelta(days=3)).execute({})
    assert early["closed"] is False and all(row["partial"] for row in early["endpoints"])
    assert [r["state"] for r in ledger.rows()] == ["answered", "ambiguous"]

    result = PatsnapUsageOperator(task_id="usage", start=then, end=then, destination=f"{tmp_path}/usage/").execute({})

    rows = {row["serial"]: row for row in result["endpoints"]}
    assert rows["R001"] | {"partial": False} == rows["R001"] and rows["R001"]["difference"] == 0
    assert rows["P037"]["fee_times"] == 3 and rows["P037"]["difference"] == 0
    assert rows["P037"]["resolved"] == {"units": 3, "billed": True}
    assert result["matched"] is True and [r["state"] for r in ledger.rows()] == ["answered", "answered"]
    saved = json.loads(Path(result["uri"].removeprefix("file://")).read_text())
    assert saved["endpoints"] == result["endpoints"] and saved["period"] == [then.isoformat()] * 2
    assert emulator.client_secret not in json.dumps(saved)

    # Today is not over, nor is yesterday closed: reconciled, flagged partial.
    for day in (today, today - dt.timedelta(days=1)):
        partial = PatsnapUsageOperator(task_id="usage", start=day, end=day).execute({})
        assert partial["closed"] is False and all(row["partial"] for row in partial["endpoints"])


def test_a_mismatch_fails_the_task_when_asked(
    emulator: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch, ledger_db: str
) -> None:
    connect(monkeypatch, emulator, ledger_db)
    PatsnapHook().create_enterprise_report(company_name="ACME")
    ledger = PatsnapHook().ledger
    assert ledger is not None
    then, _ = backdate(emulator, ledger, 2)
    with emulator._lock:  # PatSnap billed one more than anybody recorded
        emulator._statement[(then.strftime("%Y%m%d"), "/innovation/company-report/task/create")][1] += 1
    result = PatsnapUsageOperator(task_id="u", start=then, end=then).execute({})
    assert result["endpoints"][0]["difference"] == 1 and result["matched"] is False
    with pytest.raises(AirflowFailException, match=r"differ .*R001: PatSnap 2, ledger 1"):
        PatsnapUsageOperator(task_id="u", start=then, end=then, fail_on_mismatch=True).execute({})


# ------------------------------------------------------------------------------------ the CLI and the metrics


def test_the_cli_reports_spend_by_endpoint_dag_and_day(
    emulator: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch, ledger_db: str, tmp_path: Path
) -> None:
    connect(monkeypatch, emulator, ledger_db)
    PatsnapCreateEnterpriseReportOperator(task_id="c", company_name="ACME").execute({"ti": TI("c")})
    PatsnapLegalIndicatorsOperator(task_id="l", patent_numbers=KNOWN).execute({"ti": TI("l")})

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "airflow_provider_patsnap.ledger", "report", "--since", "7d", *args],
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout

    table = cli("--by", "endpoint")
    assert "R001" in table and "P037" in table and table.splitlines()[-1].split()[:2] == ["total", "4"]
    by_dag = json.loads(cli("--by", "dag", "--format", "json"))
    assert by_dag == [
        {"dag": "cost_dag", "billed_units": 4, "reused_units": 0, "ambiguous_units": 0, "calls": 2, "refused_calls": 0}
    ]
    assert (
        cli("--by", "day", "--format", "csv").splitlines()[0]
        == "day,billed_units,reused_units,ambiguous_units,calls,refused_calls"
    )
    assert ledger_db not in table and emulator.client_secret not in table


METRICS_SCRIPT = """
import os
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.errors import PatsnapError
hook = PatsnapHook()
hook.create_enterprise_report(company_name="ACME")
hook.get_legal_indicators(patent_numbers={patents!r})
try:
    hook.create_enterprise_report(company_name="Over Budget Co")
except PatsnapError:
    pass
"""


def test_units_refusals_and_waits_reach_a_real_statsd_listener(emulator: PatsnapEmulator, ledger_db: str) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(2)
    env = {
        **os.environ,
        "AIRFLOW_CONN_PATSNAP_DEFAULT": emulator.connection_json(qps=0, ledger_url=ledger_db, budget_daily_units=4),
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(listener.getsockname()[1]),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",  # tags in the metric's name
    }
    subprocess.run([sys.executable, "-c", METRICS_SCRIPT.format(patents=KNOWN)], env=env, check=True, timeout=120)
    received: list[str] = []
    try:
        while True:
            received += listener.recv(65536).decode().splitlines()
    except TimeoutError:
        pass
    ours = sorted(line for line in received if ".patsnap." in line)
    assert "airflow.patsnap.units.billed,endpoint=R001,dag_id=none:1|c" in ours, ours
    assert "airflow.patsnap.units.billed,endpoint=P037,dag_id=none:3|c" in ours, ours
    assert "airflow.patsnap.budget.refused,endpoint=R001,dag_id=none:1|c" in ours, ours
    assert any(line.startswith("airflow.patsnap.ratelimit.wait") and line.endswith("|ms") for line in ours), ours
    assert files_under(Path("/nonexistent")) == []
