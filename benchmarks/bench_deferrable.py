"""Deferrable wait for a report job: status polls per job and the worker time a deferred sensor costs.

Several report jobs of known length ``J`` (emulator ``job_seconds``) are created. For each one a
deferrable ``PatsnapReportJobSensor`` (``poke_interval=P``) is executed the way a worker would:
``execute()`` does one synchronous status look and raises ``TaskDeferred``, which ends the task
instance's run and frees its worker slot. The triggers are then rebuilt from their serialised form
(as the triggerer does) and run together on one asyncio loop until each fires its event, which is
handed to ``execute_complete``. The emulator counts every status call.

* ``deferrable.polls_per_job_vs_ideal``: status calls per job (sensor's look + trigger polls) /
  the ideal ``ceil(J/P) + 1`` (a poll at 0, P, 2P ... up to the first poll at or after J). Goal <= 1.
* ``deferrable.trigger_polls_vs_ideal``: the trigger's polls alone / the same ideal. Goal <= 1.
* ``deferrable.detect_lag_vs_poll_interval``: worst delay from the job finishing to its event / P. Goal <= 1.
* ``deferrable.worker_time_vs_job``: seconds inside ``sensor.execute()`` until ``TaskDeferred`` / J,
  and the status calls made meanwhile (goal: one call, ratio <= 0.05).
* ``deferrable.worker_slots_while_deferred``: sensors still inside ``execute()`` (holding a worker slot)
  while their triggers wait. Goal == 0. Raising ``TaskDeferred`` ends the task instance's run: it sits
  in state ``deferred`` with no worker process, and a slot is used again only for ``execute_complete``.
  For contrast the line also shows how long a poke-mode sensor holds its slot on the same kind of job.

Knobs: ``--job-seconds`` / ``BENCH_JOB_SECONDS`` (default 2.75), ``--poll-interval`` /
``BENCH_POLL_INTERVAL`` (default 0.5), ``--jobs`` / ``BENCH_JOBS`` (default 4).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from typing import TYPE_CHECKING, Any

import _common

if TYPE_CHECKING:
    from airflow_provider_patsnap.triggers.report_job import PatsnapReportJobTrigger

GOAL_WORKER_RATIO = 0.05


async def first_event(trigger: PatsnapReportJobTrigger) -> tuple[dict[str, Any], float]:
    """Run a trigger to its first event, as the triggerer does; return the payload and its epoch time."""
    async for event in trigger.run():
        return event.payload, time.time()
    raise RuntimeError("the trigger ended without an event")


async def run_triggers(triggers: list[PatsnapReportJobTrigger]) -> list[tuple[dict[str, Any], float]]:
    from airflow_provider_patsnap.hooks._drivers import close_shared_async_client

    try:
        return list(await asyncio.gather(*(first_event(trigger) for trigger in triggers)))
    finally:
        await close_shared_async_client()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-seconds", type=float, default=_common.env_number("BENCH_JOB_SECONDS", 2.75))
    parser.add_argument("--poll-interval", type=float, default=_common.env_number("BENCH_POLL_INTERVAL", 0.5))
    parser.add_argument("--jobs", type=int, default=int(_common.env_number("BENCH_JOBS", 4)))
    args = parser.parse_args()
    job_seconds: float = args.job_seconds
    poll: float = args.poll_interval

    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
    from airflow_provider_patsnap.sensors.report_job import PatsnapReportJobSensor
    from airflow_provider_patsnap.triggers.report_job import PatsnapReportJobTrigger
    from airflow_provider_patsnap.version_compat import TaskDeferred

    ideal = math.ceil(job_seconds / poll) + 1
    with _common.EmulatorProcess(job_seconds=job_seconds) as emu:
        # qps=0: no client-side pacing, so poll timing is the trigger's own (the default 2 qps would
        # delay the trigger's first call by up to 0.5 s behind the sensor's).
        _common.use_connection(emu.connection_json(qps=0))
        _common.reset_process_state()
        PatsnapHook().config  # noqa: B018 - resolve the connection before timing anything

        triggers: list[PatsnapReportJobTrigger] = []
        job_ids: list[str] = []
        worker_seconds: list[float] = []
        worker_polls: list[int] = []
        for index in range(args.jobs):
            job_id = PatsnapHook().create_enterprise_report(company_name=f"Deferred Bench Co {index}")
            sensor = PatsnapReportJobSensor(
                task_id=f"wait_{index}",
                job_id=job_id,
                report_kind="enterprise",
                deferrable=True,
                poke_interval=poll,
                timeout=60,
            )
            polls_before = emu.stats["status_polls"]
            started = time.perf_counter()
            try:
                sensor.execute({})
            except TaskDeferred as deferred:
                worker_seconds.append(time.perf_counter() - started)
                trigger = deferred.trigger
            else:
                raise SystemExit(f"the sensor for job {job_id} did not defer")
            worker_polls.append(emu.stats["status_polls"] - polls_before)
            classpath, kwargs = trigger.serialize()
            if classpath != "airflow_provider_patsnap.triggers.report_job.PatsnapReportJobTrigger":
                raise SystemExit(f"unexpected trigger {classpath}")
            triggers.append(PatsnapReportJobTrigger(**kwargs))
            job_ids.append(job_id)

        still_in_worker = args.jobs - len(worker_seconds)  # execute() calls that had not returned
        sensor_polls = emu.stats["status_polls"]
        results = asyncio.run(run_triggers(triggers))
        total_polls = emu.stats["status_polls"]
        done_at = [emu.call("job", job_id)["created_at"] + job_seconds for job_id in job_ids]

        # For contrast: what a poke-mode sensor does on the same kind of job (poke, sleep P, repeat).
        job_id = PatsnapHook().create_enterprise_report(company_name="Poke Bench Co")
        poker = PatsnapReportJobSensor(task_id="poke", job_id=job_id, report_kind="enterprise", deferrable=False)
        started = time.perf_counter()
        while not poker.poke({}):
            time.sleep(poll)
        poke_seconds = time.perf_counter() - started

    for (payload, _), job_id, index in zip(results, job_ids, range(len(job_ids)), strict=True):
        if payload["status"] != "success":
            raise SystemExit(f"job {job_id}: trigger event {payload}")
        sensor = PatsnapReportJobSensor(task_id=f"wait_{index}", job_id=job_id, report_kind="enterprise")
        if sensor.execute_complete({}, payload)["job_id"] != job_id:
            raise SystemExit(f"job {job_id}: execute_complete returned another job")

    jobs = len(job_ids)
    per_job = total_polls / jobs
    trigger_per_job = (total_polls - sensor_polls) / jobs
    shape = f"J={job_seconds:g} s, P={poll:g} s, ideal ceil(J/P)+1 = {ideal}; {jobs} jobs on one event loop"
    _common.figure(
        "deferrable.polls_per_job_vs_ideal",
        per_job / ideal,
        f"{per_job:.2f} status calls per job ({sensor_polls / jobs:.2f} by sensor.execute + "
        f"{trigger_per_job:.2f} by the trigger) / {ideal}; {shape}; goal <= 1",
        per_job <= ideal,
    )
    _common.figure(
        "deferrable.trigger_polls_vs_ideal",
        trigger_per_job / ideal,
        f"{trigger_per_job:.2f} trigger polls per job / {ideal}; goal <= 1",
        trigger_per_job <= ideal,
    )
    lag = max(fired - finished for (_, fired), finished in zip(results, done_at, strict=True))
    _common.figure(
        "deferrable.detect_lag_vs_poll_interval",
        lag / poll,
        f"worst {lag:.2f} s from job done to trigger event / P = {poll:g} s; goal <= 1",
        lag <= poll,
    )
    worst = max(worker_seconds)
    _common.figure(
        "deferrable.worker_time_vs_job",
        worst / job_seconds,
        f"sensor.execute() raised TaskDeferred after {worst * 1000:.1f} ms (worst of {jobs}) and "
        f"{max(worker_polls)} status call(s) / J = {job_seconds:g} s; goal <= {GOAL_WORKER_RATIO} with 1 call",
        worst / job_seconds <= GOAL_WORKER_RATIO and max(worker_polls) == 1,
        fmt=".3f",
    )
    _common.figure(
        "deferrable.worker_slots_while_deferred",
        still_in_worker,
        f"sensor.execute() calls not yet returned (via TaskDeferred) while the triggers waited, of {jobs}; "
        f"a poke-mode sensor on the same kind of job holds its slot {poke_seconds:.2f} s = "
        f"{poke_seconds / job_seconds:.2f} x J; goal == 0",
        still_in_worker == 0,
        fmt="d",
    )


if __name__ == "__main__":
    _common.watchdog(110)
    main()
