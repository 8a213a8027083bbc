"""Waiting for an R001/R002 job, written once for the sensor, the trigger and the one-task operators.

One status look and its verdict (:func:`judge`), the events a deferred wait ends with
(:class:`WaitEvent`, :func:`payload`, and :func:`read_event`, the one validator every
``execute_complete`` uses), the wait in a worker (:func:`wait_here`), and the messages: a timeout,
and how to finish a paid job without paying again. The deferral is built beside the trigger
(``triggers.report_job.deferral``), which uses this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from airflow_provider_patsnap.errors import PatsnapError, PatsnapInputError, PatsnapJobFailedError
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.models import ReportJob, ReportKind


class WaitEvent(str, Enum):
    """How a deferred wait ends (the trigger's event ``status``)."""

    SUCCESS = "success"  # job_status 2: the report can be downloaded
    FAILED = "failed"  # job_status 3: PatSnap failed it (abnormal_cause in the message)
    TIMEOUT = "timeout"  # not done by the end of the waiting window
    ERROR = "error"  # a permanent error while looking (credentials, a refused id...)


@dataclass(frozen=True)
class Verdict:
    """What one look says: an ending (``event``), or keep waiting (``event`` is None)."""

    event: WaitEvent | None
    message: str
    job: dict[str, Any] = field(default_factory=dict)

    @property
    def waiting(self) -> bool:
        return self.event is None


def summary(kind: ReportKind | str, job_id: str) -> dict[str, Any]:
    """What is known of a job before PatSnap answered for it (never raises: it describes bad input too)."""
    value = kind.value if isinstance(kind, ReportKind) else str(kind)
    return {"job_id": str(job_id), "report_kind": value}


def judge(kind: ReportKind | str, job_id: str, answer: ReportJob | BaseException) -> Verdict:
    """The one reading of a status look: a job, or the error the look raised."""
    if isinstance(answer, BaseException):
        known = summary(kind, job_id)
        if isinstance(answer, PatsnapJobFailedError):
            return Verdict(WaitEvent.FAILED, str(answer), known)
        if isinstance(answer, PatsnapError) and answer.transient:
            # The hook already retried; an outage shorter than the window must not end the wait.
            return Verdict(None, f"Status check failed, will look again: {answer}", known)
        if isinstance(answer, (PatsnapError, PatsnapInputError)):
            return Verdict(WaitEvent.ERROR, str(answer), known)
        raise answer
    job = answer.to_xcom()
    try:
        done = answer.is_done()
    except PatsnapJobFailedError as exc:
        return Verdict(WaitEvent.FAILED, str(exc), job)
    return Verdict(WaitEvent.SUCCESS if done else None, answer.describe(), job)


def look(hook: PatsnapHook, kind: ReportKind | str, job_id: str) -> tuple[Verdict, ReportJob | None]:
    """One status look in a worker: the verdict, and the job when PatSnap answered."""
    try:
        job = hook.get_report_job(kind, job_id)
    except (PatsnapError, PatsnapInputError) as exc:
        return judge(kind, job_id, exc), None
    return judge(kind, job_id, job), job


async def alook(hook: PatsnapHook, kind: ReportKind | str, job_id: str) -> tuple[Verdict, ReportJob | None]:
    """One status look on the triggerer's event loop."""
    try:
        job = await hook.aget_report_job(kind, job_id)
    except (PatsnapError, PatsnapInputError) as exc:
        return judge(kind, job_id, exc), None
    return judge(kind, job_id, job), job


def payload(verdict: Verdict) -> dict[str, Any]:
    """The trigger event's payload (plain JSON; never the signed link)."""
    assert verdict.event is not None, "only an ending is an event"
    return {"status": verdict.event.value, "message": verdict.message, "job": verdict.job}


def read_event(event: Any) -> Verdict:
    """The one validator of a trigger event, for every ``execute_complete``: anything malformed is an
    error verdict saying so, never a KeyError."""
    if not isinstance(event, dict):
        return Verdict(WaitEvent.ERROR, f"the PatSnap trigger resumed the task without a usable event ({event!r})")
    try:
        status = WaitEvent(event.get("status"))
    except ValueError:
        return Verdict(WaitEvent.ERROR, f"unexpected PatSnap trigger event {event!r}")
    job: dict[str, Any] = event["job"] if isinstance(event.get("job"), dict) else {}
    if status is WaitEvent.SUCCESS and not job.get("job_id"):
        return Verdict(WaitEvent.ERROR, f"the PatSnap trigger reported success without a job ({event!r})")
    return Verdict(status, str(event.get("message") or ""), job)


def timeout_message(kind: ReportKind | str, job_id: str) -> str:
    return f"{ReportKind.parse(kind).code} job {job_id} did not finish in time"


def finish_hint(kind: ReportKind | str, job_id: str) -> str:
    """How to finish a job that exists (and is paid for) without buying another."""
    value = ReportKind.parse(kind).value
    return (
        f"Report job {job_id} exists (and is paid for): archive it with PatsnapDownloadReportOperator("
        f"job_id={job_id!r}, report_kind={value!r}, ...), or give job_id={job_id!r} to the one-task report "
        "operator, instead of creating a new one"
    )


def wait_here(
    hook: PatsnapHook,
    kind: ReportKind | str,
    job_id: str,
    *,
    end_time: float,
    poll_interval: float,
    log: Any,
    sleep: Callable[[float], None] | None = None,
) -> Verdict:
    """Look until the job ends or the window closes, in this worker; the final verdict."""
    last = ""
    while True:
        verdict, _ = look(hook, kind, job_id)
        if verdict.message != last:
            last = verdict.message
            (log.warning if verdict.message.startswith("Status check failed") else log.info)("%s", verdict.message)
        if not verdict.waiting:
            return verdict
        remaining = end_time - time.time()
        if remaining <= 0:
            return Verdict(WaitEvent.TIMEOUT, timeout_message(kind, job_id), verdict.job)
        (sleep or time.sleep)(min(poll_interval, remaining))
