"""The example DAGs, loaded from their files and run through real Airflow against the emulator."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

EXPECTED_DAGS = {
    "patsnap_enterprise_report_refresh",
    "patsnap_patent_value_report",
    "patsnap_legal_indicators_to_lake",
    "patsnap_legal_indicators_consumer",
}


def states(dag_run: Any) -> dict[tuple[str, int], str]:
    return {
        (ti.task_id, ti.map_index): str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()
    }


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


# --------------------------------------------------------------------------- runs


def test_enterprise_refresh_archives_every_company_report(
    airflow_db: None, dagbag: Any, emulator: Any, emu_conn: str, archive_root: Path
) -> None:
    dag = dagbag.get_dag("patsnap_enterprise_report_refresh")

    run = dag.test()

    assert str(getattr(run.state, "value", run.state)) == "success"
    task_states = states(run)
    assert len(task_states) == 9 and set(task_states.values()) == {"success"}
    stats = emulator.stats
    assert stats["creates"] == 3  # one billable create per company, none repeated
    archived = files_under(archive_root / "enterprise")
    assert {p.parent.name for p in archived} == {run.logical_date.strftime("%Y-%m-%d")}  # {{ ds }}
    assert sorted(sha256(p) for p in archived) == sorted(emulator.report_sha256(j) for j in emulator.job_ids())
    assert all(p.read_bytes().startswith(b"%PDF-") for p in archived)
    assert not [p for p in files_under(archive_root) if ".part" in p.name]


def test_a_failed_report_fails_only_its_company_without_retries(
    airflow_db: None, dagbag: Any, emulator: Any, emu_conn: str, archive_root: Path
) -> None:
    emulator.fail_identifiers = frozenset({"Nordic Battery AB"})
    dag = dagbag.get_dag("patsnap_enterprise_report_refresh")
    failing_index = 2  # position of "Nordic Battery AB" in the DAG's company list

    run = dag.test()

    task_states = states(run)
    assert task_states[("company_report.wait", failing_index)] == "failed"
    assert task_states[("company_report.archive", failing_index)] == "upstream_failed"
    assert all(
        task_states[(t, i)] == "success" for t in ("company_report.wait", "company_report.archive") for i in (0, 1)
    )
    assert emulator.stats["creates"] == 3  # the failure did not re-create anything
    ti = next(t for t in run.get_task_instances() if (t.task_id, t.map_index) == ("company_report.wait", failing_index))
    assert ti.try_number == 1  # AirflowFailException: no retry spent on a job PatSnap says failed


def test_patent_value_report_on_demand_with_params(
    airflow_db: None, dagbag: Any, emulator: Any, emu_conn: str, archive_root: Path
) -> None:
    dag = dagbag.get_dag("patsnap_patent_value_report")

    run = dag.test(run_conf={"patent_number": "US9876543B2", "report_type": "word"})

    assert set(states(run).values()) == {"success"}
    (job_id,) = emulator.job_ids()
    job = emulator.job(job_id)
    assert job["kind"] == "patent_value" and job["report_type"] == "word"
    assert job["params"]["patent_number"] == "US9876543B2"
    assert emulator.stats["calls"]["POST /patent-valuation-data/patent-report/task/create-no-logo"] == 1
    (docx,) = files_under(archive_root / "patent_value")
    assert docx.suffix == ".docx" and docx.read_bytes() == emulator.report_bytes(job_id)


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
    (jsonl,) = files_under(archive_root / "patsnap" / "legal_indicators")
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert emulator.stats["calls"]["GET /patent-valuation-data/legal_indicators"] == math.ceil(len(unique) / 100)
    assert {r["pn"] for r in records} == {p for p in unique if "UNKNOWN" not in p and "-" not in p}
    assert all(isinstance(r["has_reexam_invalid"], bool) for r in records)
    assert emulator.stats["billable_units"] == len(records)

    consumer = dagbag.get_dag("patsnap_legal_indicators_consumer").test()
    assert set(states(consumer).values()) == {"success"}
