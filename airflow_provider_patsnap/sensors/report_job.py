"""PatsnapReportJobSensor: wait for an R001/R002 report job (poke, reschedule or deferrable)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any, NoReturn

from airflow_provider_patsnap import waiting
from airflow_provider_patsnap.billing import TaskRun
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.links import PatsnapApiDocsLink, status_docs_path
from airflow_provider_patsnap.triggers.report_job import deferral
from airflow_provider_patsnap.version_compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    default_deferrable,
)
from airflow_provider_patsnap.waiting import Verdict, WaitEvent

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

    @cached_property
    def hook(self) -> PatsnapHook:
        return PatsnapHook(self.patsnap_conn_id)

    @property
    def api_docs_path(self) -> str:
        return status_docs_path(self.report_kind)

    def poke(self, context: Any) -> bool | PokeReturnValue:
        verdict, _ = waiting.look(self.hook, self.report_kind, str(self.job_id))
        if verdict.waiting:
            (self.log.warning if verdict.message.startswith("Status check failed") else self.log.info)(
                "%s", verdict.message
            )
            return False
        return self._ended(verdict)

    def _ended(self, verdict: Verdict) -> PokeReturnValue:
        if verdict.event is WaitEvent.SUCCESS:
            self.log.info("%s", verdict.message)
            return PokeReturnValue(is_done=True, xcom_value=verdict.job)
        if verdict.event is WaitEvent.TIMEOUT:
            self._timed_out(verdict.message)
        # The job failed on PatSnap's side, or a permanent error: retrying the wait cannot help.
        raise AirflowFailException(verdict.message)

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # One synchronous look first: a finished job needs no trip through the triggerer.
        result = self._first_poke(context)
        polled_at = time.time()
        if isinstance(result, PokeReturnValue) and result.is_done:
            return result.xcom_value
        end_time = TaskRun(context, self.log).window_end(WAIT_KEY, _seconds(self.timeout), polled_at)
        if end_time - polled_at <= 0:
            self._timed_out(waiting.timeout_message(self.report_kind, str(self.job_id)))
        self.defer(  # type: ignore[attr-defined]
            **deferral(
                kind=self.report_kind,
                job_id=str(self.job_id),
                conn_id=self.patsnap_conn_id,
                end_time=end_time,
                polled_at=polled_at,
                poll_interval=_seconds(self.poke_interval),
            )
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
        return dict(self._ended(waiting.read_event(event)).xcom_value or {})


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
