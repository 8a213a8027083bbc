"""The one-task report operators (create -> wait -> archive) against the emulator: sync, deferred, retried."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any, ClassVar

import pytest

from airflow_provider_patsnap import waiting
from airflow_provider_patsnap.billing import TaskRun, backends
from airflow_provider_patsnap.operators import _pipeline
from airflow_provider_patsnap.operators.reports import PatsnapEnterpriseReportOperator, PatsnapPatentValueReportOperator
from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from airflow_provider_patsnap.triggers.report_job import PatsnapReportJobTrigger
from airflow_provider_patsnap.version_compat import AirflowFailException, TaskDeferred
from tests.support import TaskStateStore


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_trigger(trigger: PatsnapReportJobTrigger) -> dict[str, Any]:
    from airflow_provider_patsnap.hooks._drivers import close_shared_async_client

    async def first_event() -> dict[str, Any]:
        try:
            async for event in trigger.run():
                return event.payload
            raise AssertionError("the trigger ended without an event")
        finally:
            await close_shared_async_client()

    return asyncio.run(first_event())


def enterprise(tmp_path: Path, **kwargs: Any) -> PatsnapEnterpriseReportOperator:
    return PatsnapEnterpriseReportOperator(
        task_id="report",
        company_name="Example Robotics Ltd",
        destination=f"{tmp_path}/archive/",
        poll_interval=0.1,
        timeout=30,
        **kwargs,
    )


def test_sync_run_creates_waits_and_archives(emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path) -> None:
    result = enterprise(tmp_path, deferrable=False).execute({})

    (job_id,) = emulator.job_ids()
    assert result["job_id"] == job_id and result["report_kind"] == "enterprise"
    stored = Path(result["uri"].removeprefix("file://"))
    assert sha256(stored) == result["sha256"] == emulator.report_sha256(job_id)
    assert emulator.stats["creates"] == 1


def test_deferred_run_archives_in_execute_complete(emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path) -> None:
    operator = PatsnapPatentValueReportOperator(
        task_id="report",
        patent_number="CN108977442B",
        report_type="word",
        destination=f"{tmp_path}/",
        poll_interval=0.1,
        timeout=30,
        deferrable=True,
    )
    with pytest.raises(TaskDeferred) as info:
        operator.execute({})
    _, kwargs = info.value.trigger.serialize()
    event = run_trigger(PatsnapReportJobTrigger(**kwargs))
    assert event["status"] == "success"

    result = operator.execute_complete({}, event)

    (job_id,) = emulator.job_ids()
    assert result["job_id"] == job_id and result["filename"].endswith(".docx")
    assert result["sha256"] == emulator.report_sha256(job_id)
    assert emulator.stats["creates"] == 1


def test_a_failed_report_fails_without_retries(emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path) -> None:
    emulator.fail_identifiers = frozenset({"FAIL Industries"})
    operator = PatsnapEnterpriseReportOperator(
        task_id="report", company_name="FAIL Industries", destination=f"{tmp_path}/", poll_interval=0.1, timeout=30
    )
    with pytest.raises(AirflowFailException, match="failed on PatSnap's side"):
        operator.execute({})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_retry_reattaches_instead_of_creating(
    emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path, deferrable: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    class TI:
        max_tries = 2  # retries=2: the run is 2 for every attempt
        stats_tags: ClassVar[dict[str, str]] = {}

    monkeypatch.setattr(backends, "AIRFLOW_V_3_3_PLUS", True)  # the task state store (3.3+), in memory
    store = TaskStateStore()
    context: dict[str, Any] = {"task_state_store": store, "ti": TI()}
    operator = enterprise(tmp_path, deferrable=deferrable, retries=2)
    context["task"] = operator
    emulator.job_seconds = 0.5

    # Attempt 1 creates, then its worker is lost while waiting.
    create_and_die = operator.buy(TaskRun(context, operator.log))
    # Attempt 2.
    if deferrable:
        with pytest.raises(TaskDeferred) as info:
            operator.execute(context)
        event = run_trigger(PatsnapReportJobTrigger(**info.value.trigger.serialize()[1]))
        result = operator.execute_complete(context, event)
    else:
        result = operator.execute(context)

    assert result["job_id"] == create_and_die
    assert emulator.stats["creates_by_subject"] == {"R001 company_name=Example Robotics Ltd": 1}


def test_before_3_3_a_failure_after_the_create_never_leads_to_a_second_report(
    emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pipeline, "AIRFLOW_V_3_3_PLUS", False)
    monkeypatch.setattr(backends, "AIRFLOW_V_3_3_PLUS", False)
    emulator.job_seconds = 0
    emulator.outage("cdn", seconds=60, status=503)  # the archive step cannot finish

    with pytest.raises(AirflowFailException) as info:
        enterprise(tmp_path, deferrable=False, retries=2).execute({})

    (job_id,) = emulator.job_ids()
    assert job_id in str(info.value) and "PatsnapDownloadReportOperator" in str(info.value)
    assert emulator.stats["creates"] == 1


def test_mapping_over_companies_gives_one_report_each(emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path) -> None:
    companies = ["Example Robotics Ltd", "Acme Semiconductor Co"]
    results = [
        PatsnapEnterpriseReportOperator(
            task_id=f"report_{i}", company_name=name, destination=f"{tmp_path}/{i}/", poll_interval=0.1
        ).execute({})
        for i, name in enumerate(companies)
    ]
    assert {r["job_id"] for r in results} == set(emulator.job_ids())
    assert emulator.stats["creates_by_subject"] == {f"R001 company_name={c}": 1 for c in companies}


def before_3_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pipeline, "AIRFLOW_V_3_3_PLUS", False)
    monkeypatch.setattr(backends, "AIRFLOW_V_3_3_PLUS", False)


def test_before_3_3_a_timeout_while_waiting_never_leads_to_a_second_report(
    emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        from airflow.sdk.exceptions import AirflowTaskTimeout
    except ImportError:  # Airflow 2.11
        from airflow.exceptions import AirflowTaskTimeout  # type: ignore[no-redef]

    before_3_3(monkeypatch)
    emulator.job_seconds = 60

    def execution_timeout(seconds: float) -> None:
        raise AirflowTaskTimeout("Timeout, PID: 1")  # what Airflow raises inside the task

    monkeypatch.setattr(waiting.time, "sleep", execution_timeout)
    with pytest.raises(AirflowFailException) as info:
        enterprise(tmp_path, deferrable=False, retries=2).execute({})
    (job_id,) = emulator.job_ids()
    assert job_id in str(info.value)
    assert emulator.stats["creates"] == 1


@pytest.mark.parametrize("error", ["Trigger failure", "Trigger/execution timeout"])
def test_before_3_3_a_deferral_airflow_gave_up_on_fails_without_retries(
    emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: str
) -> None:
    before_3_3(monkeypatch)
    operator = enterprise(tmp_path, deferrable=True, retries=2)
    with pytest.raises(AirflowFailException, match="patsnap_job_id"):
        operator.resume_execution("__fail__", {"error": error}, {})


def test_a_timeout_names_the_job_and_is_not_retried(emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path) -> None:
    emulator.job_seconds = 60
    operator = PatsnapEnterpriseReportOperator(
        task_id="report", company_name="Slow Co", destination=f"{tmp_path}/", poll_interval=0.1, timeout=0.3
    )
    with pytest.raises(AirflowFailException, match="did not finish in time") as info:
        operator.execute({})
    (job_id,) = emulator.job_ids()
    assert job_id in str(info.value)
