"""Report operators: create R001/R002 jobs, download finished reports to any storage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, ClassVar

from airflow_provider_patsnap import metrics, validation
from airflow_provider_patsnap.billing import TaskRun
from airflow_provider_patsnap.hooks._purchase import current_scope, report_purchase
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.links import PatsnapApiDocsLink, PatsnapOutputLink, status_docs_path
from airflow_provider_patsnap.models import ReportKind
from airflow_provider_patsnap.operators._common import (
    ArchiveTarget,
    airflow_failure_semantics,
    annotate_outlet_events,
    archive_report,
    lineage_of,
    require_ledger,
    reuse_window,
    spending,
    units_cap,
)
from airflow_provider_patsnap.operators._pipeline import ReportPipelineMixin
from airflow_provider_patsnap.version_compat import BaseOperator, BaseOperatorLink

#: The create's record in the run's billable state (0.2's key: entries written before an upgrade are read).
CREATE_KEY = "patsnap_create"
#: Where the job id is also pushed inside ``execute`` when nothing outlives an attempt (before Airflow 3.3).
JOB_ID_XCOM = "patsnap_job_id"


class _CreateReportOperator(BaseOperator):
    """What the R001 and R002 create operators share: the billable create and its failure rules.

    Subclasses name their ``report_kind`` and ``identifier_fields``; the create is never retried
    after an error that leaves PatSnap's side in doubt.
    """

    report_kind: ClassVar[ReportKind]
    identifier_fields: ClassVar[tuple[str, ...]]
    # A create writes nothing: no output link (the one-task subclasses add it).
    operator_extra_links: tuple[BaseOperatorLink, ...] = (PatsnapApiDocsLink(),)
    ui_color = "#cfe3f7"
    _job_id: str | None = None  # the job this task made or archived (OpenLineage's external query)

    def __init__(
        self,
        *,
        report_type: str,
        logo: bool,
        patsnap_conn_id: str = PatsnapHook.default_conn_name,
        max_billable_units: int | None = None,
        reuse_within: dt.timedelta | int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # Catch typos at DAG parse time; templated values are checked in execute, still before any call.
        if isinstance(report_type, str) and "{{" not in report_type:
            validation.report_type(report_type)
        units_cap(max_billable_units)
        reuse_window(reuse_within)
        self.report_type = report_type
        self.logo = logo
        self.patsnap_conn_id = patsnap_conn_id
        self.max_billable_units = max_billable_units
        self.reuse_within = reuse_within

    @cached_property
    def hook(self) -> PatsnapHook:
        return PatsnapHook(self.patsnap_conn_id)

    @property
    def api_docs_path(self) -> str:
        return self.report_kind.create_path(self.logo)

    @property
    def identifiers(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.identifier_fields}

    def create(self, hook: PatsnapHook, on_send: Callable[[], None] | None = None) -> str:
        raise NotImplementedError

    def request_body(self) -> dict[str, str]:
        """The create's validated body (``report_type`` and the identifiers)."""
        raise NotImplementedError

    def buy(self, run: TaskRun) -> str:
        """The create, at most once for the task's run (a retry reattaches to the job)."""
        return run.buy_once(
            CREATE_KEY,
            f"{self.report_kind.code} create",
            lambda on_send: self.create(self.hook, on_send),
            xcom_key=JOB_ID_XCOM,
        )

    def reusable(self) -> dict[str, Any] | None:
        """With ``reuse_within``: the ledger's newest report of this kind, subject, type and logo bought in
        the window, or None (then one is bought, and the log says why)."""
        window = reuse_window(self.reuse_within)
        if window is None:
            return None
        ledger = require_ledger(self.hook, "reuse_within")
        purchase = self._purchase()
        since = dt.datetime.now(dt.timezone.utc) - window
        found = ledger.reusable_report(purchase.serial, purchase.subject, purchase.variant, since)
        if found is None:
            self.log.info(
                "No %s report for %s (%s) was bought in the last %s: buying one.",
                purchase.serial,
                purchase.subject,
                purchase.variant,
                window,
            )
        return found

    def record_reused(self, found: dict[str, Any], result: dict[str, Any] | None = None) -> None:
        """``found`` serves this task: recorded in the ledger (0 billed, 1 reused) and in the task's result."""
        ledger = require_ledger(self.hook, "reuse_within")
        outcome = {k: result[k] for k in ("uri", "sha256")} if result else {}
        where = current_scope()
        purchase = self._purchase()
        ledger.record_reuse(purchase, found, where.task, **outcome)
        where.add(reused=1)
        metrics.count("units.reused", 1, serial=purchase.serial, dag_id=where.task.dag_id if where.task else None)
        self.log.info(
            "Reused %s job %s (bought %s, reuse_within %s): nothing was bought.",
            ReportKind.parse(self.report_kind).code,
            found["job_id"],
            found.get("created_at", "in the window"),
            self.reuse_within,
        )

    def _purchase(self) -> Any:
        return report_purchase(self.report_kind, self.request_body(), self.logo)

    def execute(self, context: Any) -> str:
        with airflow_failure_semantics(), spending(context, self.max_billable_units) as where:
            found = self.reusable()
            if found is not None:
                self.record_reused(found)
                return str(found["job_id"])
            job_id = self.buy(TaskRun(context, self.log))
        self.log.info(
            "%s job %s: %s unit(s) bought by this task.", ReportKind.parse(self.report_kind).code, job_id, where.billed
        )
        self._job_id = job_id
        return job_id

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        job_id = getattr(self, "_job_id", None)
        return lineage_of(self.hook, [self.api_docs_path], getattr(self, "_written_uri", None), job_id)


class PatsnapCreateEnterpriseReportOperator(_CreateReportOperator):
    """Creates an R001 enterprise innovation report job; returns the job id (string) as XCom.

    Give at least one of ``company_name``, ``credit_code`` (unified social credit code) or
    ``org_number``. ``logo=False`` uses PatSnap's no-logo endpoint. The create is billable, so it
    is never retried after an error that leaves PatSnap's side in doubt.
    """

    report_kind = ReportKind.ENTERPRISE
    identifier_fields = ("company_name", "credit_code", "org_number")
    template_fields: Sequence[str] = (*identifier_fields, "report_type")

    def __init__(
        self,
        *,
        company_name: str | None = None,
        credit_code: str | None = None,
        org_number: str | None = None,
        report_type: str = "pdf",
        logo: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(report_type=report_type, logo=logo, **kwargs)
        self.company_name = company_name
        self.credit_code = credit_code
        self.org_number = org_number

    def create(self, hook: PatsnapHook, on_send: Callable[[], None] | None = None) -> str:
        return hook.create_enterprise_report(
            report_type=self.report_type, logo=self.logo, on_send=on_send, **self.identifiers
        )

    def request_body(self) -> dict[str, str]:
        return {
            "report_type": validation.report_type(self.report_type),
            **validation.enterprise_identifiers(self.company_name, self.credit_code, self.org_number),
        }


class PatsnapCreatePatentValueReportOperator(_CreateReportOperator):
    """Creates an R002 patent value report job; returns the job id (string) as XCom.

    Give exactly one of ``patent_id`` or ``patent_number``. The no-logo endpoint is the default
    (``logo=True`` selects the PatSnap-branded one).
    """

    report_kind = ReportKind.PATENT_VALUE
    identifier_fields = ("patent_id", "patent_number")
    template_fields: Sequence[str] = (*identifier_fields, "report_type")

    def __init__(
        self,
        *,
        patent_id: str | None = None,
        patent_number: str | None = None,
        report_type: str = "pdf",
        logo: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(report_type=report_type, logo=logo, **kwargs)
        self.patent_id = patent_id
        self.patent_number = patent_number

    def create(self, hook: PatsnapHook, on_send: Callable[[], None] | None = None) -> str:
        return hook.create_patent_value_report(
            report_type=self.report_type, logo=self.logo, on_send=on_send, **self.identifiers
        )

    def request_body(self) -> dict[str, str]:
        return {
            "report_type": validation.report_type(self.report_type),
            **validation.patent_identifier(self.patent_id, self.patent_number),
        }


class PatsnapDownloadReportOperator(BaseOperator):
    """Streams a finished report to ``destination`` and returns its metadata as XCom.

    ``destination`` is a local path or any ObjectStoragePath URI (``file://``, ``s3://``,
    ``gs://``...); a value ending in ``/`` is a folder and PatSnap's (sanitised) file name is used.
    The file appears whole or not at all; an existing file is kept unless ``overwrite=True``.
    Returns ``{"uri", "filename", "size", "sha256", "media_type", "job_id", "report_kind"}``;
    the signed link never reaches XCom or the logs.
    """

    template_fields: Sequence[str] = ("job_id", "report_kind", "destination", "destination_conn_id")
    operator_extra_links = (PatsnapApiDocsLink(), PatsnapOutputLink())
    ui_color = "#d8efe0"

    def __init__(
        self,
        *,
        job_id: str,
        report_kind: str,
        destination: str,
        destination_conn_id: str | None = None,
        overwrite: bool = False,
        patsnap_conn_id: str = PatsnapHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(report_kind, str) and "{{" not in report_kind:
            ReportKind.parse(report_kind)
        self.job_id = job_id
        self.report_kind = report_kind
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.overwrite = overwrite
        self.patsnap_conn_id = patsnap_conn_id

    @cached_property
    def hook(self) -> PatsnapHook:
        return PatsnapHook(self.patsnap_conn_id)

    @property
    def api_docs_path(self) -> str:
        return status_docs_path(self.report_kind)

    def execute(self, context: Any) -> dict[str, Any]:
        with airflow_failure_semantics():
            target = ArchiveTarget(self.destination, self.destination_conn_id, self.overwrite)
            result = archive_report(self.hook, self.report_kind, self.job_id, target)
        annotate_outlet_events(self.outlets, context, result)
        self._written_uri = result["uri"]
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        job_id = str(self.job_id) if self.job_id else None
        return lineage_of(self.hook, [self.api_docs_path], getattr(self, "_written_uri", None), job_id)


class PatsnapEnterpriseReportOperator(ReportPipelineMixin, PatsnapCreateEnterpriseReportOperator):
    """R001 in one task: create the enterprise report, wait for it, archive it to ``destination``.

    Takes the create operator's parameters plus ``destination`` (a path or ObjectStoragePath URI;
    ending in ``/`` is a folder), ``destination_conn_id``, ``overwrite``, ``poll_interval`` (s),
    ``timeout`` (s), ``deferrable`` and ``job_id`` (attach to an existing job instead of creating).
    Returns the download operator's dict (with ``job_id``). A retry never creates a second report:
    it reattaches to the job (Airflow 3.3+) or, on older Airflow, fails without retries once the job
    exists. Every failure after the create names the job and how to finish it.
    """

    operator_extra_links = (PatsnapApiDocsLink(), PatsnapOutputLink())


class PatsnapPatentValueReportOperator(ReportPipelineMixin, PatsnapCreatePatentValueReportOperator):
    """R002 in one task: create the patent value report (no-logo by default), wait, archive.

    Parameters and guarantees as for :class:`PatsnapEnterpriseReportOperator`.
    """

    operator_extra_links = (PatsnapApiDocsLink(), PatsnapOutputLink())
