"""The example DAGs, loaded from their files and run through real Airflow against the emulator."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_patsnap.version_compat import AIRFLOW_V_3_0_PLUS
from tests.ledger_support import backdate
from tests.support import files_under, outputs_under, task_states, xcom_texts

pytestmark = pytest.mark.e2e

EXPECTED_DAGS = {
    "patsnap_enterprise_report_refresh",
    "patsnap_enterprise_report_refresh_stepwise",
    "patsnap_patent_value_report",
    "patsnap_legal_indicators_to_lake",
    "patsnap_legal_indicators_consumer",
    "patsnap_portfolio_valuation_to_lake",
    "patsnap_usage_reconciliation",
}


def states(dag_run: Any) -> dict[tuple[str, int], str]:
    return task_states(dag_run)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_date(dag_run: Any) -> str:
    return (getattr(dag_run, "run_after", None) or dag_run.logical_date).strftime("%Y-%m-%d")


without_logical_date = pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Airflow 2 runs always have a logical date")


@pytest.fixture
def emu_conn(ledger_conn: str) -> str:
    """The example DAGs use cost control: the connection has a ledger (a SQLite file) beside the emulator."""
    return ledger_conn


# --------------------------------------------------------------------------- integrity


def test_example_dags_import_cleanly_and_are_configured_sensibly(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED_DAGS
    for dag_id in EXPECTED_DAGS:
        dag = dagbag.get_dag(dag_id)
        assert dag.tags and "patsnap" in dag.tags, dag_id
        assert not dag.catchup, dag_id
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), (dag_id, task.task_id)
            assert task.retries >= 1, (dag_id, task.task_id)
            if task.task_type == "PatsnapReportJobSensor":
                # A report takes minutes: never hold a worker slot in plain poke mode.
                assert task.deferrable or task.mode == "reschedule", (dag_id, task.task_id)


def test_every_patsnap_task_of_the_examples_runs_in_the_pool_patsnap_pool_names(
    airflow_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3
    except ImportError:  # Airflow 2.11
        from airflow.models.dagbag import DagBag

    monkeypatch.setenv("PATSNAP_POOL", "patsnap_account")
    bag = DagBag(str(Path(__file__).resolve().parents[2] / "example_dags"))
    calls = [(d.dag_id, t.task_id, t.pool) for d in bag.dags.values() for t in d.tasks if "Patsnap" in t.task_type]
    assert {dag_id for dag_id, _, _ in calls} == EXPECTED_DAGS - {"patsnap_legal_indicators_consumer"}
    assert all(pool == "patsnap_account" for _, _, pool in calls), calls


# --------------------------------------------------------------------------- runs


REFRESHES = [
    # (dag id, archive folder, tasks per company, the task that waits, the task that archives)
    pytest.param(
        "patsnap_enterprise_report_refresh", "enterprise", 1, "enterprise_report", "enterprise_report", id="one-task"
    ),
    pytest.param(
        "patsnap_enterprise_report_refresh_stepwise",
        "enterprise_stepwise",
        3,
        "company_report.wait",
        "company_report.archive",
        id="stepwise",
    ),
]


@pytest.mark.parametrize(("dag_id", "folder", "per_company", "waits", "archives"), REFRESHES)
@pytest.mark.parametrize(
    "logical_date",
    [pytest.param("default", id="scheduled"), pytest.param(None, marks=without_logical_date, id="no-logical-date")],
)
def test_enterprise_refresh_archives_every_company_report(
    airflow_db: None,
    dagbag: Any,
    emulator: Any,
    emu_conn: str,
    archive_root: Path,
    logical_date: Any,
    dag_id: str,
    folder: str,
    per_company: int,
    waits: str,
    archives: str,
) -> None:
    dag = dagbag.get_dag(dag_id)

    run = dag.test() if logical_date == "default" else dag.test(logical_date=None)

    assert str(getattr(run.state, "value", run.state)) == "success"
    task_states = states(run)
    assert len(task_states) == 3 * per_company and set(task_states.values()) == {"success"}
    stats = emulator.stats
    assert stats["creates"] == 3  # one billable create per company, none repeated
    archived = files_under(archive_root / folder)
    assert {p.parent.parent.name for p in archived} == {run_date(run)}
    assert sorted(p.parent.name for p in archived) == ["0", "1", "2"]  # one folder per company: no collisions
    assert sorted(sha256(p) for p in archived) == sorted(emulator.report_sha256(j) for j in emulator.job_ids())
    assert all(p.read_bytes().startswith(b"%PDF-") for p in archived)
    assert not [p for p in files_under(archive_root) if ".part" in p.name]


def test_rerunning_the_weeks_refresh_costs_nothing(
    airflow_db: None, dagbag: Any, emulator: Any, emu_conn: str, archive_root: Path
) -> None:
    """reuse_within=6 days: a second run archives last run's reports again (copied, sha256 verified)."""
    dag = dagbag.get_dag("patsnap_enterprise_report_refresh")
    dag.test()
    emulator.reset_stats()

    run = dag.test()

    assert set(states(run).values()) == {"success"}
    assert emulator.stats["creates"] == 0 and emulator.billed() == 0  # 0 new units
    returns = [json.loads(v) for k, v in xcom_texts(run.dag_id, run.run_id).items() if k[2] == "return_value"]
    assert sorted((r["billed_units"], r["reused_units"]) for r in returns) == [(0, 1)] * 3


def test_the_reconciliation_dag_compares_the_last_closed_day_with_the_ledger(
    airflow_db: None, dagbag: Any, emulator: Any, emu_conn: str, archive_root: Path
) -> None:
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    hook = PatsnapHook()
    hook.create_enterprise_report(company_name="Reconciled Co")
    then, _ = backdate(emulator, hook.ledger, 2)  # bought two China days ago: closed, past the statement's lag

    run = dagbag.get_dag("patsnap_usage_reconciliation").test()

    assert set(states(run).values()) == {"success"}
    (saved,) = files_under(archive_root / "usage")
    result = json.loads(saved.read_text())
    assert result["period"] == [then.isoformat()] * 2 and result["closed"] is True and result["matched"] is True
    (row,) = result["endpoints"]
    assert (row["serial"], row["fee_times"], row["ledger_units"], row["difference"]) == ("R001", 1, 1, 0)
    assert emulator.stats["calls"].get("POST /open-user/statement/v2") == 1

    with emulator._lock:  # PatSnap's statement says one more than the ledger recorded: the task fails
        emulator._statement[(then.strftime("%Y%m%d"), "/innovation/company-report/task/create")][1] += 1
    assert set(states(dagbag.get_dag("patsnap_usage_reconciliation").test()).values()) == {"failed"}


@pytest.mark.parametrize(("dag_id", "folder", "per_company", "waits", "archives"), REFRESHES)
def test_a_failed_report_fails_only_its_company_without_retries(
    airflow_db: None,
    dagbag: Any,
    emulator: Any,
    emu_conn: str,
    archive_root: Path,
    dag_id: str,
    folder: str,
    per_company: int,
    waits: str,
    archives: str,
) -> None:
    emulator.fail_identifiers = frozenset({"Nordic Battery AB"})
    dag = dagbag.get_dag(dag_id)
    failing_index = 2  # position of "Nordic Battery AB" in the DAG's company list

    run = dag.test()

    task_states = states(run)
    assert task_states[(waits, failing_index)] == "failed"
    if archives != waits:
        assert task_states[(archives, failing_index)] == "upstream_failed"
    assert all(task_states[(t, i)] == "success" for t in {waits, archives} for i in (0, 1))
    assert emulator.stats["creates"] == 3  # the failure did not re-create anything
    ti = next(t for t in run.get_task_instances() if (t.task_id, t.map_index) == (waits, failing_index))
    assert ti.try_number == 1  # AirflowFailException: no retry spent on a job PatSnap says failed
    assert len(files_under(archive_root / folder)) == 2


@pytest.mark.parametrize(
    "logical_date",
    [pytest.param("default", id="scheduled"), pytest.param(None, marks=without_logical_date, id="no-logical-date")],
)
def test_patent_value_report_on_demand_with_params(
    airflow_db: None, dagbag: Any, emulator: Any, emu_conn: str, archive_root: Path, logical_date: Any
) -> None:
    dag = dagbag.get_dag("patsnap_patent_value_report")
    conf = {"patent_number": "US9876543B2", "report_type": "word"}

    run = dag.test(run_conf=conf) if logical_date == "default" else dag.test(run_conf=conf, logical_date=None)

    assert set(states(run).values()) == {"success"}
    (job_id,) = emulator.job_ids()
    job = emulator.job(job_id)
    assert job["kind"] == "patent_value" and job["report_type"] == "word"
    assert job["params"]["patent_number"] == "US9876543B2"
    assert emulator.stats["calls"]["POST /patent-valuation-data/patent-report/task/create-no-logo"] == 1
    (docx,) = files_under(archive_root / "patent_value")
    assert docx.suffix == ".docx" and docx.read_bytes() == emulator.report_bytes(job_id)
    assert docx.parent.parent.name == run_date(run)
    # The task instance's "PatSnap output" link is the file it archived (none for the create's job id).
    from airflow_provider_patsnap.links import PatsnapOutputLink

    texts = xcom_texts(run.dag_id, run.run_id)
    archived = json.loads(texts[("download", -1, "return_value")])["uri"]
    assert archived == f"file://{docx}"
    if AIRFLOW_V_3_0_PLUS:  # stored by the worker when the try ends
        assert texts[("download", -1, "_link_PatsnapOutputLink")] == archived
        assert ("create", -1, "_link_PatsnapOutputLink") not in texts  # a create writes nothing: no such link
    else:  # computed by the webserver from the task instance's XCom
        ti = run.get_task_instance("download")
        assert PatsnapOutputLink().get_link(dag.get_task("download"), ti_key=ti.key) == archived


def test_legal_indicators_land_in_the_lake_and_feed_the_consumer(
    airflow_db: None, dagbag: Any, emulator: Any, emu_conn: str, archive_root: Path
) -> None:
    portfolio = [
        line.strip()
        for line in (Path(dagbag.dag_folder) / "sample_portfolio.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    unique = list(dict.fromkeys(p.upper() for p in portfolio))

    run = dagbag.get_dag("patsnap_legal_indicators_to_lake").test()

    assert set(states(run).values()) == {"success"}
    (jsonl,) = outputs_under(archive_root / "patsnap" / "legal_indicators")
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert emulator.stats["calls"]["GET /patent-valuation-data/legal_indicators"] == math.ceil(len(unique) / 100)
    assert {r["pn"] for r in records} == {p for p in unique if "UNKNOWN" not in p and "-" not in p}
    assert all(isinstance(r["has_reexam_invalid"], bool) for r in records)
    assert emulator.stats["billable_units"] == len(records)

    consumer = dagbag.get_dag("patsnap_legal_indicators_consumer").test()
    assert set(states(consumer).values()) == {"success"}


@without_logical_date
def test_lake_partition_and_consumer_follow_the_event_without_a_logical_date(
    airflow_db: None, dagbag: Any, emulator: Any, emu_conn: str, archive_root: Path
) -> None:
    run = dagbag.get_dag("patsnap_legal_indicators_to_lake").test(logical_date=None)

    assert set(states(run).values()) == {"success"}
    (jsonl,) = outputs_under(archive_root / "patsnap" / "legal_indicators")
    assert jsonl.parent.name == f"dt={run_date(run)}"
    expected: dict[str, int] = {}
    for line in jsonl.read_text().splitlines():
        status = json.loads(line)["legal_status"] or "unknown"
        expected[status] = expected.get(status, 0) + 1

    # A newer partition exists, but the consumer reads the file its triggering event names.
    newer = archive_root / "patsnap" / "legal_indicators" / "dt=9999-12-31" / "legal_indicators.jsonl"
    newer.parent.mkdir(parents=True)
    newer.write_text('{"legal_status": "Expired"}\n')
    summarise = dagbag.get_dag("patsnap_legal_indicators_consumer").get_task("summarise_latest").python_callable

    event = SimpleNamespace(extra={"uri": f"file://{jsonl}", "records": sum(expected.values())})  # as attached

    assert summarise(triggering_asset_events={"lake": [event]}) == expected
    assert summarise() == {"Expired": 1}  # a manual run, no event: the newest partition


@pytest.mark.parametrize(
    "logical_date",
    [pytest.param("default", id="scheduled"), pytest.param(None, marks=without_logical_date, id="no-logical-date")],
)
def test_portfolio_valuation_lands_every_indicator_in_the_lake(
    airflow_db: None, dagbag: Any, emulator: Any, emu_conn: str, archive_root: Path, logical_date: Any
) -> None:
    from airflow_provider_patsnap.valuation import INDICATORS

    dag = dagbag.get_dag("patsnap_portfolio_valuation_to_lake")

    run = dag.test() if logical_date == "default" else dag.test(logical_date=None)

    assert set(states(run).values()) == {"success"}
    (output,) = outputs_under(archive_root / "patsnap" / "portfolio_valuation")
    assert output.parent.name == f"dt={run_date(run)}"
    fields = {"pn", "patent_id", "fetched_at"} | {f for spec in INDICATORS.values() for f in spec.fields}
    if importlib.util.find_spec("pyarrow"):  # Parquet with the parquet extra
        import pyarrow.parquet as pq

        assert output.name == "patent_indicators.parquet"
        table = pq.read_table(output)
        records = table.to_pylist()
        assert records and set(table.column_names) == fields
    else:  # gzip JSON Lines without it
        assert output.name == "patent_indicators.jsonl.gz"
        records = [json.loads(line) for line in gzip.decompress(output.read_bytes()).splitlines()]
        assert records and all(set(r) == fields for r in records)
    lines = Path(dag.get_task("portfolio_valuation").patents_from).read_text().splitlines()
    portfolio = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    found = {r["pn"] for r in records}
    assert [r["pn"] for r in records] == [p for p in portfolio if p in found]  # the file's order
    calls = emulator.stats["calls"]
    assert {f"GET {spec.path}" for spec in INDICATORS.values()} <= set(calls)
    assert all(emulator.billed(spec.path) == len(records) for spec in INDICATORS.values())
    xcom = json.loads(xcom_texts(run.dag_id, run.run_id)[("portfolio_valuation", -1, "return_value")])
    assert xcom["records"] == len(records) and set(xcom["missing"]) == set(INDICATORS)
