"""triggers/report_job.py: the trigger's serialised form and its run(), which fires exactly one event.

run() is driven with asyncio against the emulator (real HTTP through the httpx transport).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from airflow_provider_patsnap.errors import PatsnapInputError, PatsnapRetryableError
from airflow_provider_patsnap.hooks._drivers import close_shared_async_client
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.models import JobStatus, ReportJob, ReportKind
from airflow_provider_patsnap.triggers._schedule import (
    DRAIN_MEMORY_SECONDS,
    MAX_QUEUED_WAIT_SECONDS,
    PollSchedule,
    QueueDrain,
)
from airflow_provider_patsnap.triggers.report_job import PatsnapReportJobTrigger

CLASSPATH = "airflow_provider_patsnap.triggers.report_job.PatsnapReportJobTrigger"
BIG_JOB_ID = "1579434053399035905"


def all_events(trigger: PatsnapReportJobTrigger) -> list[dict[str, Any]]:
    """Every event the trigger yields until its generator ends (the triggerer would stop at the first)."""

    async def drain() -> list[dict[str, Any]]:
        try:
            return [event.payload async for event in trigger.run()]
        finally:
            await close_shared_async_client()

    return asyncio.run(drain())


def create_enterprise(company_name: str) -> str:
    return PatsnapHook().create_enterprise_report(company_name=company_name)


def assert_plain_json(payload: dict[str, Any]) -> None:
    assert json.loads(json.dumps(payload)) == payload  # what the triggerer stores and hands to the task


# --------------------------------------------------------------------------- serialisation


def test_serialize_round_trips_through_plain_json() -> None:
    trigger = PatsnapReportJobTrigger(
        int(BIG_JOB_ID), "ENTERPRISE", end_time=1767225600, patsnap_conn_id="ps", poll_interval=15, last_polled_at=1.5
    )
    classpath, kwargs = trigger.serialize()

    assert classpath == CLASSPATH
    assert kwargs == {
        "job_id": BIG_JOB_ID,  # an exact string, never a number a JSON reader could round
        "report_kind": "enterprise",
        "end_time": 1767225600.0,
        "patsnap_conn_id": "ps",
        "poll_interval": 15.0,
        "last_polled_at": 1.5,
    }
    stored = json.loads(json.dumps(kwargs))
    assert PatsnapReportJobTrigger(**stored).serialize() == (classpath, kwargs)


def test_defaults_survive_the_round_trip() -> None:
    classpath, kwargs = PatsnapReportJobTrigger("7", "patent_value", end_time=10).serialize()
    assert kwargs["patsnap_conn_id"] == "patsnap_default"
    assert kwargs["poll_interval"] == 30.0 and kwargs["last_polled_at"] == 0.0
    assert PatsnapReportJobTrigger(**json.loads(json.dumps(kwargs))).serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"job_id": 1.579434053399036e18, "report_kind": "enterprise"}, "job_id"),
        ({"job_id": " ", "report_kind": "enterprise"}, "job_id"),
        ({"job_id": "7", "report_kind": "R001"}, "report_kind"),
    ],
)
def test_bad_arguments_fail_when_the_trigger_is_built(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(PatsnapInputError) as info:
        PatsnapReportJobTrigger(**kwargs, end_time=time.time() + 60)
    assert info.value.parameter == parameter


# --------------------------------------------------------------------------- run() against the emulator


def test_a_finished_job_fires_one_success_event(emulator: Any, emu_conn: str) -> None:
    job_id = create_enterprise("Trigger Success Co")
    events = all_events(PatsnapReportJobTrigger(job_id, "enterprise", end_time=time.time() + 30, poll_interval=0.1))

    (event,) = events
    assert event["status"] == "success" and event["message"] == f"R001 job {job_id}: succeeded"
    assert event["job"]["job_id"] == job_id and event["job"]["status"] == "succeeded"
    assert "download_url" not in event["job"] and "sign" not in json.dumps(event)
    assert_plain_json(event)
    assert emulator.stats["creates"] == 1


def test_a_failed_job_fires_one_failed_event_with_the_cause(emulator: Any, emu_conn: str) -> None:
    emulator.fail_identifiers = frozenset({"Doomed Co"})
    job_id = create_enterprise("Doomed Co")
    events = all_events(PatsnapReportJobTrigger(job_id, "enterprise", end_time=time.time() + 30, poll_interval=0.1))

    (event,) = events
    assert event["status"] == "failed"
    assert f"job {job_id} failed on PatSnap's side" in event["message"]
    assert event["job"]["job_status"] == int(JobStatus.FAILED) and event["job"]["abnormal_cause"]
    assert event["job"]["abnormal_cause"] in event["message"]
    assert_plain_json(event)


def test_a_job_that_outlives_the_deadline_fires_one_timeout_event(emulator: Any, emu_conn: str) -> None:
    emulator.job_seconds = 60
    job_id = create_enterprise("Slow Co")
    started = time.monotonic()
    events = all_events(PatsnapReportJobTrigger(job_id, "enterprise", end_time=time.time() + 0.5, poll_interval=0.1))

    (event,) = events
    assert event["status"] == "timeout" and event["message"] == f"R001 job {job_id} did not finish in time"
    assert event["job"]["job_id"] == job_id and event["job"]["status"] in ("queued", "exporting")
    assert 0.4 < time.monotonic() - started < 5
    assert_plain_json(event)


def test_a_permanent_error_fires_one_error_event(emulator: Any, emu_conn: str) -> None:
    events = all_events(
        PatsnapReportJobTrigger("1111111111111111111", "patent_value", end_time=time.time() + 30, poll_interval=0.1)
    )

    (event,) = events
    assert event["status"] == "error" and "68300004" in event["message"]
    assert event["job"] == {"job_id": "1111111111111111111", "report_kind": "patent_value"}  # never seen
    assert_plain_json(event)
    assert sum(emulator.stats["calls"].values()) <= 2  # token + one status call: no polling on


def test_the_first_look_waits_one_interval_after_the_sensors_own(emulator: Any, emu_conn: str) -> None:
    emulator.job_seconds = 60
    job_id = create_enterprise("Patient Co")
    emulator.reset_stats()
    now = time.time()
    # The sensor looked just now; the next look is due in 5 s but the deadline comes first.
    trigger = PatsnapReportJobTrigger(job_id, "enterprise", end_time=now + 0.3, poll_interval=5, last_polled_at=now)
    started = time.monotonic()

    (event,) = all_events(trigger)

    assert event["status"] == "timeout"
    assert 0.25 < time.monotonic() - started < 3  # waited until the deadline, not the full interval
    status_calls = emulator.stats["calls"].get("GET /innovation/company-report/job_id/status")
    assert status_calls == 1  # one last look at the deadline, none right after deferring


# --------------------------------------------------------------------------- run() through outages


def test_an_outage_longer_than_the_hooks_budget_does_not_end_the_wait(
    monkeypatch: pytest.MonkeyPatch, emu_conn: str
) -> None:
    answers: list[Any] = [
        PatsnapRetryableError("503 after every retry", endpoint="GET /status"),
        ReportJob("7", ReportKind.ENTERPRISE, JobStatus.EXPORTING),
        PatsnapRetryableError("still flaky", endpoint="GET /status"),
        ReportJob("7", ReportKind.ENTERPRISE, JobStatus.SUCCEEDED, download_url="https://cdn.test/r.pdf?sign=s"),
    ]

    async def scripted(self: PatsnapHook, report_kind: str, job_id: str) -> ReportJob:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(PatsnapHook, "aget_report_job", scripted)
    events = all_events(PatsnapReportJobTrigger("7", "enterprise", end_time=time.time() + 30, poll_interval=0.01))

    (event,) = events
    assert event["status"] == "success" and answers == []
    assert "sign" not in json.dumps(event)


# --------------------------------------------------------------------------- timeouts on time, polls that pay


def test_the_timeout_fires_on_time_while_a_poll_waits_in_a_long_queue(
    monkeypatch: pytest.MonkeyPatch, emu_conn: str
) -> None:
    async def stuck_behind_other_jobs(self: Any, kind: Any, job_id: Any) -> ReportJob:
        await asyncio.sleep(3600)  # a poll waiting in the account's rate-limit queue
        raise AssertionError("unreachable")

    monkeypatch.setattr(PatsnapHook, "aget_report_job", stuck_behind_other_jobs)
    now = time.time()
    trigger = PatsnapReportJobTrigger("7", "enterprise", end_time=now + 0.5, poll_interval=0.2, last_polled_at=now)
    started = time.monotonic()

    (event,) = all_events(trigger)

    assert event["status"] == "timeout"
    assert time.monotonic() - started < 0.5 + 0.2 + 0.3  # within one poll interval of the deadline


def job(status: JobStatus, queue: int | None = None) -> ReportJob:
    return ReportJob("7", ReportKind.ENTERPRISE, status, queue_num=queue)


def test_the_schedule_polls_exporting_jobs_every_interval() -> None:
    schedule = PollSchedule(30)
    assert schedule.next_wait(job(JobStatus.EXPORTING), 0) == 30
    assert schedule.next_wait(job(JobStatus.QUEUED, 0), 30) == 30


def test_a_queued_job_is_looked_at_around_its_start_plus_the_minimum_generation_time() -> None:
    schedule = PollSchedule(30)
    # First sight, no queue seen moving: it cannot be done within PatSnap's minimum of 1 minute.
    assert schedule.next_wait(job(JobStatus.QUEUED, 40), 0) == 60
    # 10 jobs left the queue in 60 s: 30 ahead start in ~180 s; look after 0.8 of that, plus 1 min.
    assert schedule.next_wait(job(JobStatus.QUEUED, 30), 60) == pytest.approx(60 + 0.8 * 180)
    # A very long queue is still looked at within the cap.
    assert schedule.next_wait(job(JobStatus.QUEUED, 29), 1000) == MAX_QUEUED_WAIT_SECONDS


def test_a_queue_not_seen_moving_is_looked_at_less_and_less_often() -> None:
    schedule = PollSchedule(30)
    waits = [schedule.next_wait(job(JobStatus.QUEUED, 5), t) for t in (0, 60, 180, 420, 900, 1860, 3780)]
    assert waits == [60, 120, 240, 480, 960, MAX_QUEUED_WAIT_SECONDS, MAX_QUEUED_WAIT_SECONDS]


def test_the_queue_rate_is_pooled_so_a_new_job_uses_it_from_its_first_look() -> None:
    drain = QueueDrain()
    watched = PollSchedule(30, drain)
    watched.next_wait(job(JobStatus.QUEUED, 100), 0)
    watched.next_wait(job(JobStatus.QUEUED, 80), 100)  # 0.2 jobs/s
    fresh = PollSchedule(30, drain)
    assert fresh.next_wait(job(JobStatus.QUEUED, 50), 100) == pytest.approx(60 + 0.8 * 50 / 0.2)


def test_a_queue_that_grows_counts_as_one_that_did_not_move() -> None:
    # Were queue_num the queue's length rather than the job's place, it could grow between looks:
    # that reads as a pause in the drain, not as a queue running backwards (counting -50 would make
    # the rate (20 - 50) / 200 < 0).
    drain = QueueDrain()
    drain.observe(0, 100, 20)
    drain.observe(100, 200, -50)
    assert drain.jobs_per_second(200) == pytest.approx(0.1)


def test_the_schedule_keeps_its_proportions_for_fast_polling() -> None:
    schedule = PollSchedule(0.5)  # tests and emulators poll fast against fast jobs
    assert schedule.next_wait(job(JobStatus.QUEUED, 3), 0) == pytest.approx(2 * 0.5)
    assert PollSchedule(0.5)._max_queued_wait == pytest.approx(60 * 0.5)


def test_old_queue_movements_are_forgotten() -> None:
    drain = QueueDrain()
    drain.observe(0, 100, 20)
    assert drain.jobs_per_second(100) == pytest.approx(0.2)
    assert drain.jobs_per_second(100 + DRAIN_MEMORY_SECONDS + 1) is None
