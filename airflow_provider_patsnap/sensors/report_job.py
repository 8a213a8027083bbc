"""PatsnapReportJobSensor: wait for an R001/R002 report job (poke, reschedule or deferrable)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, NoReturn

from airflow_provider_patsnap.durable import window_end
from airflow_provider_patsnap.errors import (
    PatsnapError,
    PatsnapInputError,
    PatsnapJobFailedError,
    PatsnapRetryableError,
)
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.links import PatsnapApiDocsLink, status_docs_path
from airflow_provider_patsnap.models import ReportKind
from airflow_provider_patsnap.triggers.report_job import PatsnapReportJobTrigger
from airflow_provider_patsnap.version_compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    default_deferrable,
)

#: PatSnap generates reports in 1 to 10 minutes; an hour is a generous default ceiling.
DEFAULT_TIMEOUT = 60 * 60
WAIT_KEY = "patsnap_wait"


class PatsnapReportJobSensor(BaseSensorOperator):
    """Waits until a PatSnap report job has finished; fails at once if PatSnap says it failed.

    Returns the job's metadata (``job_id``, ``report_kind``, ``job_status``, ``status``,
    ``queue_num``, ``abnormal_cause``) as XCom; never the signed download link.

    :param job_id: the job id returned by a create operator (templated; ``create.output`` works).
    :param report_kind: ``"enterprise"`` (R001) or ``"patent_value"`` (R002).
    :param patsnap_conn_id: the ``patsnap`` connection.
    :param deferrable: wait in the triggerer instead of a worker slot
        (default: ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("job_id", "report_kind")
    operator_extra_links = (PatsnapApiDocsLink(),)
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        job_id: str,
        report_kind: str,
        patsnap_conn_id: str = PatsnapHook.default_conn_name,
        poke_interval: timedelta | float = 30,
        timeout: timedelta | float | None = DEFAULT_TIMEOUT,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.job_id = job_id
        self.report_kind = report_kind
        self.patsnap_conn_id = patsnap_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    @property
    def hook(self) -> PatsnapHook:
        return PatsnapHook(self.patsnap_conn_id)

    @property
    def api_docs_path(self) -> str:
        return status_docs_path(self.report_kind)

    def poke(self, context: Any) -> bool | PokeReturnValue:
        try:
            job = self.hook.get_report_job(self.report_kind, self.job_id)
        except (PatsnapInputError, ValueError) as exc:
            raise AirflowFailException(str(exc)) from None
        except PatsnapRetryableError as exc:
            # Transient trouble after the hook's own retries: keep waiting until the sensor times out.
            self.log.warning("Status check failed, will poke again: %s", exc)
            return False
        except PatsnapError as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("%s", job.describe())
        try:
            done = job.is_done()
        except PatsnapJobFailedError as exc:
            raise AirflowFailException(str(exc)) from None
        return PokeReturnValue(is_done=True, xcom_value=job.to_xcom()) if done else False

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # One synchronous look first: a finished job needs no trip through the triggerer.
        result = self._first_poke(context)
        polled_at = time.time()
        if isinstance(result, PokeReturnValue) and result.is_done:
            return result.xcom_value
        end_time = window_end(context, WAIT_KEY, _seconds(self.timeout), polled_at)
        remaining = end_time - polled_at
        if remaining <= 0:
            self._timed_out(f"{ReportKind.parse(self.report_kind).code} job {self.job_id} did not finish in time")
        interval = _seconds(self.poke_interval)
        self.defer(
            trigger=PatsnapReportJobTrigger(
                job_id=str(self.job_id),
                report_kind=ReportKind.parse(self.report_kind).value,
                end_time=end_time,
                patsnap_conn_id=self.patsnap_conn_id,
                poll_interval=interval,
                last_polled_at=polled_at,
            ),
            method_name="execute_complete",
            # Airflow's own deadline is the backstop (a triggerer that is down); the trigger's timeout
            # event, a little earlier, carries the job's last known state.
            timeout=timedelta(seconds=remaining + min(interval, 60.0)),
        )

    def _first_poke(self, context: Any) -> bool | PokeReturnValue:
        """``poke`` with the failure handling poke mode gives it (``soft_fail``, ``never_fail``)."""
        try:
            return self.poke(context)
        except (AirflowSensorTimeout, AirflowFailException) as exc:
            if self.soft_fail or getattr(self, "never_fail", False):
                raise AirflowSkipException(f"Skipping: {exc}") from exc
            raise

    def _timed_out(self, message: str) -> NoReturn:
        if self.soft_fail:
            raise AirflowSkipException(message)
        raise AirflowSensorTimeout(message)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired; runs in a new process, so everything comes from ``event``."""
        if not event:
            raise AirflowException("PatSnap trigger resumed the task without an event")
        status, message = event.get("status"), event.get("message", "")
        if status == "success":
            self.log.info("%s", message)
            return event["job"]
        if status == "timeout":
            self._timed_out(message)
        if status in ("failed", "error"):
            # Job failed on PatSnap's side, or a permanent error: retrying the wait cannot help.
            raise AirflowFailException(message)
        raise AirflowException(message or f"unexpected trigger event {event!r}")


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
