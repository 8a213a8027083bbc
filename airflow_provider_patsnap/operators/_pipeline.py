"""create -> wait -> archive in one task: what the one-task report operators share.

The create goes through the owner of billable state (``billing.TaskRun.buy_once``): a retry of the
same run reattaches to the job it bought (Airflow 3.3+), and ``job_id=`` attaches to a job bought
elsewhere. The wait is ``waiting``'s: in the triggerer (deferrable) or in the worker. Once the job
exists, every failure names it and says how to finish without buying another; before Airflow 3.3,
where nothing survives an attempt, such a failure also ends the task without retries.
"""

from __future__ import annotations

import time
from typing import Any

from airflow_provider_patsnap import waiting
from airflow_provider_patsnap.billing import TaskRun
from airflow_provider_patsnap.errors import (
    PatsnapAuthError,
    PatsnapBudgetExceededError,
    PatsnapDestinationError,
    PatsnapError,
    PatsnapInputError,
    PatsnapPermanentError,
)
from airflow_provider_patsnap.hooks._purchase import Scope
from airflow_provider_patsnap.models import ReportKind, normalize_job_id
from airflow_provider_patsnap.operators._common import (
    ArchiveTarget,
    airflow_failure_semantics,
    annotate_outlet_events,
    archive_report,
    copy_archived,
    spending,
    spent,
)
from airflow_provider_patsnap.triggers.report_job import deferral
from airflow_provider_patsnap.version_compat import AIRFLOW_V_3_3_PLUS, AirflowFailException, BaseOperator
from airflow_provider_patsnap.waiting import Verdict, WaitEvent

WAIT_KEY = "patsnap_pipeline_wait"


class JobFailedOnPatsnap(AirflowFailException):
    """PatSnap failed the job (job_status 3): there is no report to archive."""


#: Errors that say nothing about whether a reused job still works: they fail the task, buying nothing.
_NOT_GONE = (PatsnapAuthError, PatsnapDestinationError, PatsnapBudgetExceededError)


def _source(reuse: dict[str, Any] | None) -> dict[str, Any] | None:
    """What ``record_reuse`` needs of a reused purchase, as plain JSON (deferral kwargs)."""
    return None if reuse is None else {"id": int(reuse["id"]), "job_id": str(reuse["job_id"])}


_NOT_PAID = (JobFailedOnPatsnap,)
#: Airflow's operator metaclass applies ``default_args`` to the ``__init__`` it wraps.
_apply_defaults = type(BaseOperator)._apply_defaults


class ReportPipelineMixin:
    """Adds the wait and the archive step to a create operator (which provides ``buy(run)``)."""

    report_kind: Any  # ReportKind, set by the create operator
    patsnap_conn_id: str
    log: Any
    hook: Any
    outlets: Any
    max_billable_units: Any
    buy: Any  # the create operator's buy(run) -> job id
    reusable: Any  # the create operator's reusable() -> the ledger's reusable report, or None
    record_reused: Any  # the create operator's record_reused(found, result): the ledger and the scope
    _job_id: str | None  # the job archived (OpenLineage's external query)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The create operator's identifiers, then the archive step's own templated fields.
        fields = (*getattr(cls, "identifier_fields", ()), "report_type", "destination", "destination_conn_id", "job_id")
        setattr(cls, "template_fields", fields)  # noqa: B010 - BaseOperator declares it, not this mixin

    @_apply_defaults  # type: ignore[type-var]  # subclasses need no __init__ of their own
    def __init__(
        self,
        *,
        destination: str,
        destination_conn_id: str | None = None,
        overwrite: bool = False,
        poll_interval: float = 30,
        timeout: float = 3600,
        deferrable: bool | None = None,
        job_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_patsnap.version_compat import default_deferrable

        super().__init__(**kwargs)
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.overwrite = overwrite
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.job_id = job_id

    @property
    def _code(self) -> str:
        return ReportKind.parse(self.report_kind).code

    # ------------------------------------------------------------------ execute

    def execute(self, context: Any, **_: Any) -> Any:  # Airflow 2 passes its executor-safeguard sentinel
        run = TaskRun(context, self.log)
        job: list[str] = []
        hint = lambda: waiting.finish_hint(self.report_kind, job[0])  # noqa: E731 - read once the job exists
        with spending(context, self.max_billable_units) as where, run.failures_name_purchases(hint, _NOT_PAID):
            found = None
            with airflow_failure_semantics():
                found = self.reusable() if self.job_id in (None, "") else None
                if found is not None:
                    reused = self._reuse(context, run, found, where)
                    if reused is not None:
                        return spent(reused, where)
                job.append(self._attach_or_buy(run))
            return spent(self._wait_and_archive(context, run, job[0], where), where)

    def _attach_or_buy(self, run: TaskRun) -> str:
        if self.job_id not in (None, ""):
            job_id = normalize_job_id(self.job_id)
            self.log.info("Attaching to the existing %s job %s (job_id given): nothing is created.", self._code, job_id)
            return job_id
        return str(self.buy(run))

    def _reuse(self, context: Any, run: TaskRun, found: dict[str, Any], where: Scope) -> Any:
        """A report bought in the ``reuse_within`` window, brought here without buying: its archived copy
        (sha256 verified), else its job's link fetched again (or, still being generated, waited for).
        None when neither works: only then is a new one bought (and the log says why)."""
        target = ArchiveTarget(self.destination, self.destination_conn_id, self.overwrite)
        job_id = str(found["job_id"])
        if found.get("result_uri") and found.get("result_sha256"):
            try:
                result = copy_archived(self.report_kind, job_id, found["result_uri"], found["result_sha256"], target)
            except (OSError, ValueError, PatsnapError) as exc:
                if isinstance(exc, (PatsnapDestinationError, PatsnapInputError)):
                    raise  # this destination's problem: a new report would meet it too
                self.log.warning(
                    "The archived copy %s cannot be reused (%s): fetching the job's link again.",
                    found["result_uri"],
                    exc,
                )
            else:
                self.log.info(
                    "Copied the archived report %s to %s (sha256 verified).", found["result_uri"], result["uri"]
                )
                return self._reused(context, found, result)
        try:
            if not self.hook.get_report_job(self.report_kind, job_id).is_done():
                return self._wait_and_archive(context, run, job_id, where, reuse=found)
            result = archive_report(self.hook, self.report_kind, job_id, target)
        except PatsnapPermanentError as exc:
            if isinstance(exc, _NOT_GONE):
                raise
            self.log.warning(
                "The reused %s job %s cannot be fetched again (%s): buying a new report.", self._code, job_id, exc
            )
            return None
        return self._reused(context, found, result)

    def _reused(self, context: Any, found: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        self.record_reused(found, result)
        annotate_outlet_events(self.outlets, context, result)
        self._written_uri, self._job_id = result["uri"], result.get("job_id")
        return result

    def _wait_and_archive(
        self, context: Any, run: TaskRun, job_id: str, where: Scope, reuse: dict[str, Any] | None = None
    ) -> Any:
        polled_at = time.time()
        end_time = run.window_end(WAIT_KEY, self.timeout, polled_at)
        if self.deferrable:
            verdict, _ = waiting.look(self.hook, self.report_kind, job_id)
            if verdict.waiting:
                self.log.info("%s", verdict.message)
                self.defer(  # type: ignore[attr-defined]
                    **deferral(
                        kind=self.report_kind,
                        job_id=job_id,
                        conn_id=self.patsnap_conn_id,
                        end_time=end_time,
                        polled_at=polled_at,
                        poll_interval=self.poll_interval,
                    ),
                    # What this part bought or reused, for the result execute_complete returns.
                    kwargs={"billed_units": where.billed, "reused_units": where.reused, "reuse": _source(reuse)},
                )
        else:
            verdict = waiting.wait_here(
                self.hook,
                self.report_kind,
                job_id,
                end_time=end_time,
                poll_interval=self.poll_interval,
                log=self.log,
            )
        return self._conclude(context, job_id, verdict, reuse)

    def execute_complete(
        self,
        context: Any,
        event: dict[str, Any] | None = None,
        billed_units: int = 0,
        reused_units: int = 0,
        reuse: dict[str, Any] | None = None,
    ) -> Any:
        """Resume after the trigger fired (a new process: everything comes from ``event`` and the kwargs)."""
        verdict = waiting.read_event(event)
        run = TaskRun(context, self.log)
        job_id = str(verdict.job.get("job_id") or "")
        if job_id:
            run.bought(f"{self._code} create", job_id)
        with spending(context, self.max_billable_units) as where:
            where.add(billed=int(billed_units or 0), reused=int(reused_units or 0))
            with run.failures_name_purchases(lambda: waiting.finish_hint(self.report_kind, job_id), _NOT_PAID):
                return spent(self._conclude(context, job_id, verdict, reuse), where)

    def _conclude(self, context: Any, job_id: str, verdict: Verdict, reuse: dict[str, Any] | None = None) -> Any:
        if verdict.event is WaitEvent.SUCCESS:
            with airflow_failure_semantics():
                target = ArchiveTarget(self.destination, self.destination_conn_id, self.overwrite)
                result = archive_report(self.hook, self.report_kind, job_id, target)
            if reuse is not None:
                return self._reused(context, reuse, result)
            annotate_outlet_events(self.outlets, context, result)
            self._written_uri, self._job_id = result["uri"], result.get("job_id")
            return result
        if verdict.event is WaitEvent.TIMEOUT:
            # The window is anchored to the first attempt, so a retry could not wait any longer.
            raise AirflowFailException(f"{verdict.message} (timeout {self.timeout:.0f} s); or raise `timeout`")
        if verdict.event is WaitEvent.FAILED:
            raise JobFailedOnPatsnap(verdict.message)  # nothing to archive: no "finish it" hint
        raise AirflowFailException(verdict.message)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Any) -> Any:
        """Airflow resumes a deferral it gave up on (the trigger crashed, the triggerer was down past the
        deadline) without ``execute_complete``: before 3.3 a retry would create a second report."""
        try:
            return super().resume_execution(next_method, next_kwargs, context)  # type: ignore[misc]
        except Exception as exc:
            if AIRFLOW_V_3_3_PLUS or type(exc).__name__ not in ("TaskDeferralError", "TaskDeferralTimeout"):
                raise
            raise AirflowFailException(
                f"{exc}. The report job exists and is paid for (its id is this task's XCom 'patsnap_job_id'): "
                "archive it with PatsnapDownloadReportOperator, or give this operator job_id=..., instead of "
                "re-running it as it is"
            ) from exc
