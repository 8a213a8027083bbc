"""Paying once across attempts, on real Airflow runs (``dag.test()``) against the emulator's faults.

Each test parses ``tests/dags/patsnap_reliability.py`` with its own settings and checks what PatSnap
billed: one create per report, indicator results billed at most once more than a batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from airflow_provider_patsnap.version_compat import AIRFLOW_V_3_3_PLUS
from tests.support import done_markers, files_under, outputs_under, state_of, task_states, xcom_texts

pytestmark = pytest.mark.e2e
TEST_DAGS = Path(__file__).resolve().parents[1] / "dags"
SUBJECT = "R001 company_name=Example Robotics Ltd"
needs_state_store = pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="the task state store arrives in Airflow 3.3")


@pytest.fixture
def emu() -> Iterator[PatsnapEmulator]:
    with PatsnapEmulator(job_seconds=0.3) as emulator:
        yield emulator
    assert not emulator.errors, emulator.errors


@pytest.fixture
def parse(airflow_db: None, emu: PatsnapEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Parse the reliability DAGs with environment overrides; the connection points at ``emu``."""

    def _parse(**env: str) -> Any:
        try:
            from airflow.dag_processing.dagbag import DagBag  # Airflow 3
        except ImportError:  # Airflow 2.11
            from airflow.models.dagbag import DagBag

        monkeypatch.setenv(
            "AIRFLOW_CONN_PATSNAP_DEFAULT",
            # The example refresh reuses reports (reuse_within): that needs a ledger.
            emu.connection_json(
                qps=0,
                max_retries=1,
                retry_wait_min=0.05,
                retry_wait_max=0.1,
                ledger_url=f"sqlite:///{tmp_path}/ledger.db",
            ),
        )
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        bag = DagBag(str(TEST_DAGS))
        assert bag.import_errors == {}
        return bag

    return _parse


def only_ti(run: Any) -> Any:
    (ti,) = run.get_task_instances()
    return ti


# ------------------------------------------------------------------------------------ creates


@needs_state_store
def test_a_retry_after_the_worker_was_lost_reattaches_to_the_job(parse: Any, emu: PatsnapEmulator) -> None:
    run = parse().get_dag("reliability_create_worker_lost").test()

    ti = only_ti(run)
    assert state_of(run) == "success" and ti.try_number == 2
    assert emu.stats["creates_by_subject"] == {SUBJECT: 1}
    (job_id,) = emu.job_ids()
    assert xcom_texts(run.dag_id, run.run_id)[("create", -1, "return_value")].strip('"') == job_id


def test_a_create_interrupted_by_its_execution_timeout_is_not_retried(parse: Any, emu: PatsnapEmulator) -> None:
    dag = parse(PATSNAP_TEST_EXECUTION_TIMEOUT="1").get_dag("reliability_create_timeout")
    assert PatsnapHook().test_connection()[0]  # the token is cached: the slow part is the create itself
    emu.latency = 3.0  # PatSnap makes the job, slowly; the task's execution_timeout (1 s) fires first

    run = dag.test()

    ti = only_ti(run)
    assert state_of(ti) == "failed" and ti.try_number == 1  # no Airflow retry could create a second job
    deadline = time.monotonic() + 10  # the abandoned request still makes its job on PatSnap's side
    while emu.stats["creates"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert emu.stats["creates_by_subject"] == {SUBJECT: 1}


def test_a_create_answered_by_a_gateway_timeout_fails_once_and_bills_once(parse: Any, emu: PatsnapEmulator) -> None:
    emu.create_gateway_timeouts = 1  # the job is made, the gateway answers 504 with its HTML page

    run = parse().get_dag("reliability_create_gateway_timeout").test()

    ti = only_ti(run)
    assert state_of(ti) == "failed" and ti.try_number == 1
    stats = emu.stats
    assert stats["creates_by_subject"] == {SUBJECT: 1} and stats["gateway_timeouts"] == 1
    assert stats["calls"]["POST /innovation/company-report/task/create"] == 1  # never replayed


# ------------------------------------------------------------------------------------ indicators


def portfolio(size: int) -> list[str]:
    return [f"CN{100000 + i}A" for i in range(size)]


def test_indicators_resume_after_an_outage_without_billing_twice(
    parse: Any, emu: PatsnapEmulator, tmp_path: Path
) -> None:
    patents = portfolio(3000)
    # P037 goes down after 10 batches, for longer than the hook's budget (1 retry) but not the task's.
    emu.outage("legal", seconds=1.0, after_calls=10)
    dag = parse(PATSNAP_TEST_PATENTS=",".join(patents), PATSNAP_TEST_DESTINATION=f"{tmp_path.as_uri()}/lake/").get_dag(
        "reliability_indicators_to_file"
    )

    run = dag.test()

    ti = only_ti(run)
    assert state_of(run) == "success" and ti.try_number >= 2, task_states(run)
    billed = emu.billed("/legal_indicators")
    assert len(patents) <= billed <= len(patents) + 100, billed
    (jsonl,) = outputs_under(tmp_path / "lake")  # the checkpoint folder is gone once the file is written...
    # ...but for the done marker, before 3.3 (where nothing else would let a retry recognise the output)
    assert len(done_markers(tmp_path / "lake")) == (0 if AIRFLOW_V_3_3_PLUS else 1)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["pn"] for r in records] == patents


@needs_state_store
def test_xcom_mode_indicators_resume_from_the_task_state_store(parse: Any, emu: PatsnapEmulator) -> None:
    patents = portfolio(800)
    emu.outage("legal", seconds=1.0, after_calls=3)

    run = parse(PATSNAP_TEST_PATENTS=",".join(patents)).get_dag("reliability_indicators_to_xcom").test()

    assert state_of(run) == "success" and only_ti(run).try_number >= 2
    assert len(patents) <= emu.billed("/legal_indicators") <= len(patents) + 100
    records = json.loads(xcom_texts(run.dag_id, run.run_id)[("indicators", -1, "return_value")])
    assert [r["pn"] for r in records] == patents


# ------------------------------------------------------------------------------------ downloads


def test_example_refresh_keeps_reports_apart_when_patsnap_gives_them_one_name(
    airflow_db: None, dagbag: Any, emulator: PatsnapEmulator, ledger_conn: str, archive_root: Path
) -> None:
    emulator.colliding_file_names = True  # every report is "report.pdf"

    run = dagbag.get_dag("patsnap_enterprise_report_refresh").test()

    assert set(task_states(run).values()) == {"success"}
    archived = files_under(archive_root / "enterprise")
    assert {p.name for p in archived} == {"report.pdf"} and len(archived) == 3
    digests = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in archived)
    assert digests == sorted(emulator.report_sha256(j) for j in emulator.job_ids())


def test_status_echoing_another_job_id_keeps_the_one_asked_for(
    airflow_db: None, dagbag: Any, emulator: PatsnapEmulator, emu_conn: str, archive_root: Path
) -> None:
    emulator.echo_wrong_job_id = True

    run = dagbag.get_dag("patsnap_patent_value_report").test()

    assert set(task_states(run).values()) == {"success"}
    (job_id,) = emulator.job_ids()
    xcoms = xcom_texts(run.dag_id, run.run_id)
    assert json.loads(xcoms[("wait", -1, "return_value")])["job_id"] == job_id
    assert json.loads(xcoms[("download", -1, "return_value")])["job_id"] == job_id


def test_a_single_active_token_per_client_is_refreshed_through(
    airflow_db: None, dagbag: Any, emulator: PatsnapEmulator, emu_conn: str, archive_root: Path
) -> None:
    emulator.single_active_token = True
    emulator.token_ttl = 2  # tokens turn over during the run; each new one revokes the last

    run = dagbag.get_dag("patsnap_patent_value_report").test()

    assert set(task_states(run).values()) == {"success"}
    assert emulator.stats["creates"] == 1


def test_download_retry_after_an_upload_returns_the_same_metadata(
    emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path
) -> None:
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
    from airflow_provider_patsnap.operators.reports import PatsnapDownloadReportOperator
    from airflow_provider_patsnap.version_compat import AirflowFailException

    job_id = PatsnapHook().create_patent_value_report(patent_number="CN108977442B")
    emulator.job_seconds = 0
    download = PatsnapDownloadReportOperator(
        task_id="download", job_id=job_id, report_kind="patent_value", destination=f"{tmp_path}/"
    )

    first = download.execute({})
    again = download.execute({})  # the worker died after the upload, before the XCom: Airflow retries

    assert again == first
    stored = Path(first["uri"].removeprefix("file://"))
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == first["sha256"] == emulator.report_sha256(job_id)
    assert [p.name for p in tmp_path.iterdir()] == [stored.name]

    stored.write_bytes(b"%PDF-1.4 an older report\n")
    with pytest.raises(AirflowFailException) as info:
        download.execute({})
    text = str(info.value)
    assert first["uri"] in text and first["sha256"] in text and hashlib.sha256(stored.read_bytes()).hexdigest() in text
    assert stored.read_bytes() == b"%PDF-1.4 an older report\n"  # kept
    assert os.listdir(tmp_path) == [stored.name]  # nothing staged left behind


def test_status_outage_longer_than_the_hooks_budget_leaves_the_download_to_airflow_retries(
    emulator: PatsnapEmulator, emu_conn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow_provider_patsnap.errors import PatsnapRetryableError
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
    from airflow_provider_patsnap.operators.reports import PatsnapDownloadReportOperator

    monkeypatch.setenv(
        "AIRFLOW_CONN_PATSNAP_DEFAULT",
        emulator.connection_json(qps=0, max_retries=1, retry_wait_min=0.01, retry_wait_max=0.02),
    )
    emulator.job_seconds = 0
    job_id = PatsnapHook().create_patent_value_report(patent_number="CN108977442B")
    download = PatsnapDownloadReportOperator(
        task_id="download", job_id=job_id, report_kind="patent_value", destination=f"{tmp_path}/"
    )
    emulator.outage("status", seconds=60)

    with pytest.raises(PatsnapRetryableError):  # an ordinary failure: the task's retries apply
        download.execute({})

    emulator.end_outages()
    assert download.execute({})["sha256"] == emulator.report_sha256(job_id)  # the next try gets the paid report
    assert emulator.stats["creates"] == 1


# ------------------------------------------------------------------------------------ templated input


def test_templates_that_rendered_none_or_a_list_as_text_are_never_billed(parse: Any, emu: PatsnapEmulator) -> None:
    run = parse().get_dag("reliability_templated_input").test()

    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert {task: state_of(ti) for task, ti in tis.items()} == dict.fromkeys(
        ["r001_none", "r002_none", "p037_none", "p037_list_as_text"], "failed"
    )
    assert all(ti.try_number == 1 for ti in tis.values())  # bad input: no Airflow retry
    stats = emu.stats
    assert stats["billable_units"] == 0 and stats["creates"] == 0
    assert not [call for call in stats["calls"] if "token" not in call], stats["calls"]  # not even a read


def test_the_same_list_rendered_as_a_native_object_is_fetched(parse: Any, emu: PatsnapEmulator) -> None:
    run = parse().get_dag("reliability_templated_native").test()

    assert state_of(run) == "success", task_states(run)
    assert emu.billed("/legal_indicators") == 2
