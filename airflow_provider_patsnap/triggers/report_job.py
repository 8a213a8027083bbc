"""PatsnapReportJobTrigger: waits for an R001/R002 job in the triggerer, without a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from airflow_provider_patsnap import waiting
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.models import ReportKind, normalize_job_id
from airflow_provider_patsnap.redaction import remote_text
from airflow_provider_patsnap.triggers._schedule import PollSchedule, drain_for
from airflow_provider_patsnap.version_compat import BaseTrigger, TriggerEvent
from airflow_provider_patsnap.waiting import Verdict, WaitEvent

#: The look at the deadline waits at most this long (or half a poll interval, if shorter) for its answer.
LAST_LOOK_SECONDS = 10.0


def deferral(
    *,
    kind: str,
    job_id: str,
    conn_id: str,
    end_time: float,
    polled_at: float,
    poll_interval: float,
    method_name: str = "execute_complete",
) -> dict[str, Any]:
    """What an operator hands ``self.defer(**...)`` to wait in the triggerer. Airflow's own deferral
    timeout is the backstop (a triggerer that is down); the trigger's timeout event, a little earlier,
    carries the job's last known state."""
    return {
        "trigger": PatsnapReportJobTrigger(
            job_id=str(job_id),
            report_kind=ReportKind.parse(kind).value,
            end_time=end_time,
            patsnap_conn_id=conn_id,
            poll_interval=poll_interval,
            last_polled_at=polled_at,
        ),
        "method_name": method_name,
        "timeout": timedelta(seconds=max(end_time - polled_at, 0) + min(poll_interval, 60.0)),
    }


class PatsnapReportJobTrigger(BaseTrigger):
    """Polls a report job's status asynchronously and fires exactly one event.

    The event payload is plain JSON: ``{"status": "success" | "failed" | "timeout" | "error",
    "message": str, "job": {...}}`` (``waiting.WaitEvent``; ``job`` is ``ReportJob.to_xcom()``, no
    signed link). Whatever happens while looking, the trigger ends with an event, never by dying.

    :param job_id: the PatSnap job id (string).
    :param report_kind: ``"enterprise"`` or ``"patent_value"``.
    :param end_time: epoch seconds after which the trigger reports ``timeout``.
    :param poll_interval: seconds between status calls.
    :param last_polled_at: epoch seconds of a status call made just before deferring (the sensor's
        own look); the first poll then waits one ``poll_interval`` after it instead of repeating it.
    """

    def __init__(
        self,
        job_id: str,
        report_kind: str,
        end_time: float,
        patsnap_conn_id: str = PatsnapHook.default_conn_name,
        poll_interval: float = 30.0,
        last_polled_at: float = 0.0,
    ) -> None:
        super().__init__()
        self.job_id = normalize_job_id(job_id)
        self.report_kind = ReportKind.parse(report_kind).value
        self.end_time = float(end_time)
        self.patsnap_conn_id = patsnap_conn_id
        self.poll_interval = float(poll_interval)
        self.last_polled_at = float(last_polled_at)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "report_kind": self.report_kind,
                "end_time": self.end_time,
                "patsnap_conn_id": self.patsnap_conn_id,
                "poll_interval": self.poll_interval,
                "last_polled_at": self.last_polled_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = PatsnapHook(self.patsnap_conn_id)
        known = waiting.summary(self.report_kind, self.job_id)
        schedule = PollSchedule(self.poll_interval, drain_for(self.patsnap_conn_id, self.report_kind))
        last_seen = None
        # The sensor looked just before deferring: the next look is due one interval after that one.
        wait = self.last_polled_at + self.poll_interval - time.time()
        while True:
            remaining = self.end_time - time.time()
            if wait > 0:
                await asyncio.sleep(min(wait, max(remaining, 0)))
            remaining = self.end_time - time.time()
            last_look = remaining <= 0  # at the deadline: one last look, itself bounded by one interval
            try:
                # The deadline also bounds the look: under load a poll waits in the account's
                # rate-limit queue, and the timeout must not wait behind it.
                budget = min(self.poll_interval / 2, LAST_LOOK_SECONDS) if last_look else remaining
                verdict, job = await asyncio.wait_for(waiting.alook(hook, self.report_kind, self.job_id), budget)
            except asyncio.TimeoutError:
                verdict, job = self._timed_out(known), None
            except Exception as exc:  # anything else: an event that says so, never a dead trigger
                detail = f"{type(exc).__name__}: {remote_text(str(exc))}"
                verdict, job = Verdict(WaitEvent.ERROR, f"unexpected error while looking: {detail}", known), None
            if job is not None:
                known = verdict.job
            if verdict.message != last_seen:
                last_seen = verdict.message
                (self.log.warning if job is None and verdict.waiting else self.log.info)("%s", verdict.message)
            if not verdict.waiting:
                yield TriggerEvent(waiting.payload(verdict))
                return
            if last_look:
                yield TriggerEvent(waiting.payload(self._timed_out(known)))
                return
            wait = schedule.next_wait(job, time.monotonic()) if job is not None else self.poll_interval

    def _timed_out(self, known: dict[str, Any]) -> Verdict:
        return Verdict(WaitEvent.TIMEOUT, waiting.timeout_message(self.report_kind, self.job_id), known)
