"""create -> wait -> archive in one task: what the one-task report operators share.

Deferrable: the wait happens in the triggerer (``PatsnapReportJobTrigger``) and the archive step in
``execute_complete``. Otherwise, on Airflow 3.3+, ``ResumableJobMixin`` polls in the worker and a
killed worker's retry reattaches to the job in the task state store. On older Airflow nothing
survives an attempt, so once the job exists a failure ends the task without Airflow retries (the
job id is in the message): a retry would create, and pay for, a second report.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from airflow_provider_patsnap.durable import durable_create, generation, window_end
from airflow_provider_patsnap.errors import PatsnapJobFailedError, PatsnapRetryableError
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.models import JobStatus, ReportKind
from airflow_provider_patsnap.operators._common import airflow_failure_semantics, archive_report
from airflow_provider_patsnap.triggers.report_job import PatsnapReportJobTrigger
from airflow_provider_patsnap.version_compat import (
    AIRFLOW_V_3_3_PLUS,
    AirflowException,
    AirflowFailException,
    BaseOperator,
    ResumableJobMixin,
    default_deferrable,
)

WAIT_KEY = "patsnap_pipeline_wait"
#: Airflow's operator metaclass applies ``default_args`` to the ``__init__`` it wraps.
_apply_defaults = type(BaseOperator)._apply_defaults
_ACTIVE = {JobStatus.QUEUED.name.lower(), JobStatus.EXPORTING.name.lower()}


class ReportPipelineMixin(ResumableJobMixin):
    """Adds the wait and the archive step to a create operator (which provides ``create(hook)``)."""

    report_kind: Any  # ReportKind, set by the create operator
    patsnap_conn_id: str
    log: Any
    create: Any  # the create operator's create(hook) -> job id

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The create operator's identifiers, then the archive step's own templated fields.
        fields = (*getattr(cls, "identifier_fields", ()), "report_type", "destination", "destination_conn_id")
        setattr(cls, "template_fields", fields)  # noqa: B010 - BaseOperator declares it, not this mixin

    @_apply_defaults  # type: ignore[type-var]  # as ResumableJobMixin does: subclasses need no __init__
    def __init__(
        self,
        *,
        destination: str,
        destination_conn_id: str | None = None,
        overwrite: bool = False,
        poll_interval: float = 30,
        timeout: float = 3600,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.overwrite = overwrite
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    @property
    def hook(self) -> PatsnapHook:
        return PatsnapHook(self.patsnap_conn_id)

    # ------------------------------------------------------------------ execute

    def execute(self, context: Any, **_: Any) -> Any:  # Airflow 2 passes its executor-safeguard sentinel
        self._job_id: str | None = None
        self._result: dict[str, Any] | None = None
        with airflow_failure_semantics(), _NoSecondReport(self):
            if self.deferrable:
                return self._start_deferrable(context)
            # One key per try generation: a retry reattaches, a clear (a deliberate re-run) creates anew.
            self.external_id_key = f"patsnap_job:g{generation(context)}"
            return self.execute_resumable(context)  # type: ignore[no-any-return]

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired (a new process: everything comes from ``event``)."""
        self._job_id = str((event or {}).get("job", {}).get("job_id") or "") or None
        with airflow_failure_semantics(), _NoSecondReport(self):
            status, message = (event or {}).get("status"), (event or {}).get("message", "")
            if status == "success" and self._job_id:
                return archive_report(self, context, self._job_id)
            if status in ("failed", "error"):
                raise AirflowFailException(message)
            if status == "timeout":
                raise AirflowFailException(self._timeout_message(message))
            raise AirflowException(message or f"unexpected trigger event {event!r}")

    def _timeout_message(self, message: str) -> str:
        # The window is anchored to the first attempt, so a retry could not wait any longer.
        return (
            f"{message} (timeout {self.timeout:.0f} s). The job exists and is paid for: archive it later with "
            f"PatsnapDownloadReportOperator(job_id={self._job_id!r}), or raise `timeout`."
        )

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
                "archive it with PatsnapDownloadReportOperator instead of re-running this task."
            ) from exc

    def _start_deferrable(self, context: Any) -> dict[str, Any]:
        job_id = self.submit_job(context)
        ti = context.get("ti") if hasattr(context, "get") else None
        if ti is not None and not AIRFLOW_V_3_3_PLUS:
            ti.xcom_push(key="patsnap_job_id", value=job_id)  # what a failed resumption can still name
        try:
            job = self.hook.get_report_job(self.report_kind, job_id)
            if job.is_done():
                return archive_report(self, context, job_id)
        except PatsnapRetryableError as exc:
            self.log.warning("Status check failed, the trigger will poll again: %s", exc)
        polled_at = time.time()
        end_time = window_end(context, WAIT_KEY, self.timeout, polled_at)
        self.defer(  # type: ignore[attr-defined]
            trigger=PatsnapReportJobTrigger(
                job_id=job_id,
                report_kind=ReportKind.parse(self.report_kind).value,
                end_time=end_time,
                patsnap_conn_id=self.patsnap_conn_id,
                poll_interval=self.poll_interval,
                last_polled_at=polled_at,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=max(end_time - polled_at, 0) + min(self.poll_interval, 60.0)),
        )
        raise AssertionError("defer() returned")  # pragma: no cover - defer always raises

    # ------------------------------------------------------------------ ResumableJobMixin

    def submit_job(self, context: Any) -> str:
        hook = self.hook
        self._job_id = durable_create(
            context, lambda: self.create(hook), what=ReportKind.parse(self.report_kind).code, log=self.log
        )
        return self._job_id

    def get_job_status(self, external_id: Any, context: Any) -> str:
        return self.hook.get_report_job(self.report_kind, str(external_id)).status.name.lower()

    def is_job_active(self, status: str) -> bool:
        return status in _ACTIVE

    def is_job_succeeded(self, status: str) -> bool:
        return status == JobStatus.SUCCEEDED.name.lower()

    def poll_until_complete(self, external_id: Any, context: Any) -> dict[str, Any]:  # type: ignore[override]
        """Wait for the job, then archive it: the mixin returns this directly when it reattaches."""
        job_id = self._job_id = str(external_id)
        hook = self.hook
        end_time = window_end(context, WAIT_KEY, self.timeout, time.time())
        while True:
            try:
                job = hook.get_report_job(self.report_kind, job_id)
            except PatsnapRetryableError as exc:
                # The hook already retried; an outage shorter than the timeout must not fail the wait.
                self.log.warning("Status check failed, will poll again: %s", exc)
            else:
                self.log.info("%s", job.describe())
                if job.is_done():
                    self._result = archive_report(self, context, job_id)
                    return self._result
            remaining = end_time - time.time()
            if remaining <= 0:
                code = ReportKind.parse(self.report_kind).code
                raise AirflowFailException(self._timeout_message(f"{code} job {job_id} did not finish in time"))
            time.sleep(min(self.poll_interval, remaining))

    def get_job_result(self, external_id: Any, context: Any) -> dict[str, Any]:
        return self._result or archive_report(self, context, str(external_id))


class _NoSecondReport:
    """Before Airflow 3.3, once the job exists any failure ends the task without retries (naming the job):
    nothing would stop a retry from creating, and paying for, a second report."""

    def __init__(self, operator: ReportPipelineMixin) -> None:
        self.operator = operator

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        job_id = getattr(self.operator, "_job_id", None)
        if exc is None or AIRFLOW_V_3_3_PLUS or job_id is None:
            return
        # Timeouts and SIGTERM arrive as BaseException subclasses: they must not lead to a retry either.
        if isinstance(exc, (AirflowFailException, PatsnapJobFailedError, GeneratorExit, KeyboardInterrupt)):
            return
        if type(exc).__name__ == "TaskDeferred":
            return
        raise AirflowFailException(
            f"{exc}. Report job {job_id} exists (and is paid for): archive it with "
            f"PatsnapDownloadReportOperator(job_id={job_id!r}) instead of re-running this task, which would "
            "create a second report (Airflow before 3.3 keeps nothing between attempts)."
        ) from exc
