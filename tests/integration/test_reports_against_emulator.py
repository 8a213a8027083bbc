"""Operators, sensor and trigger over real HTTP against the bundled emulator."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_patsnap.hooks._drivers import close_shared_async_client
from airflow_provider_patsnap.operators.reports import (
    PatsnapCreateEnterpriseReportOperator,
    PatsnapCreatePatentValueReportOperator,
    PatsnapDownloadReportOperator,
)
from airflow_provider_patsnap.sensors.report_job import PatsnapReportJobSensor
from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from airflow_provider_patsnap.triggers.report_job import PatsnapReportJobTrigger
from airflow_provider_patsnap.version_compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    PokeReturnValue,
    TaskDeferred,
)


def wait_until_done(emulator: PatsnapEmulator, job_id: str, kind: str = "enterprise") -> None:
    sensor = PatsnapReportJobSensor(task_id="wait", job_id=job_id, report_kind=kind, deferrable=False)
    deadline = time.monotonic() + 10
    while not sensor.poke({}):
        assert time.monotonic() < deadline, "emulator job did not finish"
        time.sleep(0.1)


def run_trigger(trigger: PatsnapReportJobTrigger) -> dict[str, Any]:
    async def first_event() -> dict[str, Any]:
        try:
            async for event in trigger.run():
                return event.payload
            raise AssertionError("trigger ended without an event")
        finally:
            await close_shared_async_client()

    return asyncio.run(first_event())


def create_enterprise(**kwargs: Any) -> str:
    return PatsnapCreateEnterpriseReportOperator(task_id="create", **kwargs).execute({})


# --------------------------------------------------------------------------- create


def test_create_enterprise_report_returns_exact_job_id(emulator: PatsnapEmulator, emu_conn: str) -> None:
    job_id = create_enterprise(company_name="Example Robotics Ltd")

    assert isinstance(job_id, str) and job_id.isdigit() and len(job_id) == 19
    assert emulator.job(job_id)["params"]["company_name"] == "Example Robotics Ltd"
    stats = emulator.stats
    assert stats["creates"] == 1
    assert stats["calls"].get("POST /innovation/company-report/task/create") == 1


def test_create_enterprise_no_logo_and_patent_value_default_no_logo(emulator: PatsnapEmulator, emu_conn: str) -> None:
    create_enterprise(credit_code="91350100M000100Y43", logo=False, report_type="word")
    PatsnapCreatePatentValueReportOperator(task_id="pv", patent_number="CN108977442B").execute({})

    calls = emulator.stats["calls"]
    assert calls.get("POST /innovation/company-report/task/create-no-logo") == 1
    assert calls.get("POST /patent-valuation-data/patent-report/task/create-no-logo") == 1
    assert emulator.stats["creates_by_kind"] == {"enterprise": 1, "patent_value": 1}


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"company_name": "A", "report_type": "{{ params.kind }}"},  # renders to nothing -> bad type
        {"credit_code": "91350100M000100Y44"},
    ],
)
def test_bad_input_fails_without_retry_and_without_a_call(
    emulator: PatsnapEmulator, emu_conn: str, kwargs: dict[str, Any]
) -> None:
    op = PatsnapCreateEnterpriseReportOperator(task_id="create", **kwargs)
    if op.report_type.startswith("{{"):
        op.report_type = ""  # what an unset param renders to
    with pytest.raises(AirflowFailException, match="nothing was sent to PatSnap"):
        op.execute({})
    assert emulator.stats["calls"] == {}


def test_literal_typo_in_report_type_fails_at_dag_parse_time() -> None:
    from airflow_provider_patsnap.errors import PatsnapInputError

    with pytest.raises(PatsnapInputError, match="report_type"):
        PatsnapCreatePatentValueReportOperator(task_id="pv", patent_number="CN1", report_type="docx")


# --------------------------------------------------------------------------- sensor: poke


def test_sensor_pokes_until_done_and_returns_metadata_without_link(emulator: PatsnapEmulator, emu_conn: str) -> None:
    job_id = create_enterprise(company_name="Poke Co")
    sensor = PatsnapReportJobSensor(task_id="wait", job_id=job_id, report_kind="enterprise", deferrable=False)

    assert sensor.poke({}) is False  # still queued or exporting
    deadline = time.monotonic() + 10
    while not (result := sensor.poke({})):
        assert time.monotonic() < deadline
        time.sleep(0.1)

    assert isinstance(result, PokeReturnValue)
    assert result.xcom_value["job_id"] == job_id and result.xcom_value["status"] == "succeeded"
    assert "download_url" not in result.xcom_value
    assert emulator.stats["creates"] == 1  # waiting never re-creates


def test_sensor_fails_at_once_with_abnormal_cause(emulator: PatsnapEmulator, emu_conn: str) -> None:
    job_id = create_enterprise(company_name="FAIL Industries")
    sensor = PatsnapReportJobSensor(task_id="wait", job_id=job_id, report_kind="enterprise", deferrable=False)
    deadline = time.monotonic() + 10
    with pytest.raises(AirflowFailException, match="server error, being repaired"):
        while not sensor.poke({}):
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_sensor_unknown_job_is_a_permanent_failure(emulator: PatsnapEmulator, emu_conn: str) -> None:
    sensor = PatsnapReportJobSensor(task_id="wait", job_id="1234567890123456789", report_kind="patent_value")
    with pytest.raises(AirflowFailException, match="68300004"):
        sensor.poke({})


# --------------------------------------------------------------------------- sensor: deferrable


def test_deferrable_sensor_defers_and_trigger_fires_success(emulator: PatsnapEmulator, emu_conn: str) -> None:
    job_id = create_enterprise(company_name="Deferred Co")
    sensor = PatsnapReportJobSensor(
        task_id="wait", job_id=job_id, report_kind="enterprise", deferrable=True, poke_interval=0.1
    )

    with pytest.raises(TaskDeferred) as info:
        sensor.execute({})
    trigger = info.value.trigger
    assert isinstance(trigger, PatsnapReportJobTrigger)
    assert info.value.method_name == "execute_complete"

    # The triggerer rebuilds the trigger from its serialised form: do the same.
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_patsnap.triggers.report_job.PatsnapReportJobTrigger"
    assert all(isinstance(v, (str, int, float)) for v in kwargs.values())
    rebuilt = PatsnapReportJobTrigger(**kwargs)
    event = run_trigger(rebuilt)

    assert event["status"] == "success"
    assert event["job"]["job_id"] == job_id
    result = sensor.execute_complete({}, event)
    assert result["status"] == "succeeded" and "download_url" not in result
    assert emulator.stats["creates"] == 1


def test_trigger_reports_failed_job(emulator: PatsnapEmulator, emu_conn: str) -> None:
    job_id = create_enterprise(company_name="FAIL Corp")
    trigger = PatsnapReportJobTrigger(job_id, "enterprise", end_time=time.time() + 30, poll_interval=0.1)
    event = run_trigger(trigger)
    assert event["status"] == "failed" and "server error" in event["message"]
    sensor = PatsnapReportJobSensor(task_id="wait", job_id=job_id, report_kind="enterprise")
    with pytest.raises(AirflowFailException, match="server error"):
        sensor.execute_complete({}, event)


def test_trigger_times_out(emulator: PatsnapEmulator, emu_conn: str) -> None:
    emulator.job_seconds = 60
    job_id = create_enterprise(company_name="Slow Co")
    trigger = PatsnapReportJobTrigger(job_id, "enterprise", end_time=time.time() + 0.5, poll_interval=0.1)
    event = run_trigger(trigger)
    assert event["status"] == "timeout"
    sensor = PatsnapReportJobSensor(task_id="wait", job_id=job_id, report_kind="enterprise")
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute_complete({}, event)


def test_trigger_reports_permanent_error(emulator: PatsnapEmulator, emu_conn: str) -> None:
    trigger = PatsnapReportJobTrigger("1111111111111111111", "enterprise", end_time=time.time() + 5, poll_interval=0.1)
    event = run_trigger(trigger)
    assert event["status"] == "error" and "68300004" in event["message"]


def test_trigger_rides_out_transient_faults(emulator: PatsnapEmulator, emu_conn: str) -> None:
    job_id = create_enterprise(company_name="Flaky Co")
    emulator.fault_rate = 0.5
    trigger = PatsnapReportJobTrigger(job_id, "enterprise", end_time=time.time() + 30, poll_interval=0.1)
    event = run_trigger(trigger)
    assert event["status"] == "success"
    assert emulator.stats["faults"] > 0


# --------------------------------------------------------------------------- download


def _no_partials(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".part" in p.name]


def test_download_streams_exact_bytes_to_a_folder(emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path) -> None:
    job_id = create_enterprise(company_name="Download Co")
    wait_until_done(emulator, job_id)
    op = PatsnapDownloadReportOperator(
        task_id="dl", job_id=job_id, report_kind="enterprise", destination=f"{tmp_path}/archive/"
    )

    result = op.execute({})

    stored = Path(result["uri"].removeprefix("file://"))
    assert stored.parent == tmp_path / "archive"
    assert stored.read_bytes() == emulator.report_bytes(job_id)
    assert result["sha256"] == hashlib.sha256(stored.read_bytes()).hexdigest() == emulator.report_sha256(job_id)
    assert result["size"] == stored.stat().st_size
    assert result["media_type"] == "application/pdf"
    assert result["filename"] == stored.name and stored.suffix == ".pdf"
    assert set(result) == {"uri", "filename", "size", "sha256", "media_type", "job_id", "report_kind"}
    assert "sign" not in str(result)
    assert emulator.stats["rejected_auth_header_downloads"] == 0
    assert _no_partials(tmp_path) == []


def test_download_docx_to_an_explicit_file_uri(emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path) -> None:
    job_id = create_enterprise(company_name="Word Co", report_type="word")
    wait_until_done(emulator, job_id)
    target = tmp_path / "reports" / "word-co.docx"
    result = PatsnapDownloadReportOperator(
        task_id="dl", job_id=job_id, report_kind="enterprise", destination=f"file://{target}"
    ).execute({})
    assert result["uri"] == f"file://{target}"
    assert result["media_type"].endswith("wordprocessingml.document")
    assert target.read_bytes() == emulator.report_bytes(job_id)


def test_download_keeps_existing_file_unless_overwrite(
    emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path
) -> None:
    job_id = create_enterprise(company_name="Keep Co")
    wait_until_done(emulator, job_id)
    target = tmp_path / "report.pdf"
    target.write_bytes(b"previous archive")
    op = PatsnapDownloadReportOperator(task_id="dl", job_id=job_id, report_kind="enterprise", destination=str(target))

    with pytest.raises(AirflowFailException, match="already exists"):
        op.execute({})
    assert target.read_bytes() == b"previous archive"

    op.overwrite = True
    op.execute({})
    assert target.read_bytes() == emulator.report_bytes(job_id)
    assert _no_partials(tmp_path) == []


def test_download_cut_short_is_retried_and_never_leaves_a_partial(
    emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path
) -> None:
    job_id = create_enterprise(company_name="Cut Co")
    wait_until_done(emulator, job_id)
    emulator.truncate_downloads = 2

    result = PatsnapDownloadReportOperator(
        task_id="dl", job_id=job_id, report_kind="enterprise", destination=f"{tmp_path}/"
    ).execute({})

    assert Path(result["uri"].removeprefix("file://")).read_bytes() == emulator.report_bytes(job_id)
    assert emulator.stats["downloads_started"] == 3
    assert emulator.stats["downloads_completed"] == 1
    assert sorted(os.listdir(tmp_path)) == [result["filename"]]


def test_download_of_an_unfinished_job_fails_clearly(emulator: PatsnapEmulator, emu_conn: str, tmp_path: Path) -> None:
    emulator.job_seconds = 60
    job_id = create_enterprise(company_name="Early Co")
    with pytest.raises(AirflowFailException, match="not ready yet"):
        PatsnapDownloadReportOperator(
            task_id="dl", job_id=job_id, report_kind="enterprise", destination=f"{tmp_path}/"
        ).execute({})
    assert os.listdir(tmp_path) == []
