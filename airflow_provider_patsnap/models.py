"""Value types shared by the hook, operators, sensor and trigger (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum, IntEnum
from typing import Any, TypedDict

from airflow_provider_patsnap.errors import (
    PatsnapInputError,
    PatsnapJobFailedError,
    PatsnapResponseError,
    PatsnapRetryableError,
)
from airflow_provider_patsnap.redaction import remote_text
from airflow_provider_patsnap.validation import NATIVE_HINT
from airflow_provider_patsnap.valuation import INDICATORS, flatten


class ReportKind(str, Enum):
    """The two report products, with their endpoints."""

    ENTERPRISE = "enterprise"  # R001 enterprise innovation report
    PATENT_VALUE = "patent_value"  # R002 patent value report

    @classmethod
    def parse(cls, value: ReportKind | str, parameter: str = "report_kind") -> ReportKind:
        if isinstance(value, ReportKind):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            choices = ", ".join(repr(k.value) for k in cls)
            raise PatsnapInputError(parameter, f"unknown report kind {value!r}; use one of {choices}") from None

    @property
    def code(self) -> str:
        return "R001" if self is ReportKind.ENTERPRISE else "R002"

    @property
    def _base(self) -> str:
        if self is ReportKind.ENTERPRISE:
            return "/innovation/company-report"
        return "/patent-valuation-data/patent-report"

    def create_path(self, logo: bool) -> str:
        return f"{self._base}/task/create" if logo else f"{self._base}/task/create-no-logo"

    @property
    def status_path(self) -> str:
        return f"{self._base}/job_id/status"


class JobStatus(IntEnum):
    """PatSnap ``job_status`` values of R001/R002 export jobs."""

    QUEUED = 0
    EXPORTING = 1
    SUCCEEDED = 2
    FAILED = 3

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


RUNNING_STATES = frozenset({JobStatus.QUEUED, JobStatus.EXPORTING})
SUCCESS_STATES = frozenset({JobStatus.SUCCEEDED})
FAILED_STATES = frozenset({JobStatus.FAILED})
TERMINAL_STATES = SUCCESS_STATES | FAILED_STATES


#: PatSnap's ids are 64-bit integers (19-20 digits); a little room, no more.
MAX_JOB_ID_DIGITS = 32


def normalize_job_id(value: Any, parameter: str = "job_id") -> str:
    """Job id as an exact digit string (ints keep every digit; floats would not, so they are refused;
    anything but digits is refused)."""
    if isinstance(value, bool) or value is None:
        raise PatsnapInputError(parameter, f"expected a PatSnap job id, got {value!r}")
    if isinstance(value, (float, Decimal)) and not isinstance(value, int):
        # A float cannot hold a 19-digit id: digits were already lost before we saw it.
        raise PatsnapInputError(
            parameter, f"job id {value!r} is a floating-point number and has lost digits; pass it as a string"
        )
    # (a huge int is not turned into thousands of digits just to be refused)
    text = str(value).strip() if not isinstance(value, int) or abs(value) < 10**40 else "a number of 40+ digits"
    if not text:
        raise PatsnapInputError(parameter, "job id is empty; pass the id returned by the create task")
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_JOB_ID_DIGITS:
        # The one gate for R001/R002 job ids, from PatSnap or a DAG: they become query values and file
        # names, so nothing but a digit string passes.
        hint = f"; {NATIVE_HINT}" if text == "None" else ""
        raise PatsnapInputError(
            parameter,
            f"'{remote_text(text, 40)}' is not a PatSnap report job id (R001/R002 ids are strings of at most "
            f"{MAX_JOB_ID_DIGITS} digits){hint}",
        )
    return text


@dataclass(frozen=True)
class ReportJob:
    """One R001/R002 export job as PatSnap reports it."""

    job_id: str
    report_kind: ReportKind
    status: JobStatus
    queue_num: int | None = None
    #: The signed link (valid for days): kept out of ``repr``, logs and XCom.
    download_url: str | None = field(default=None, repr=False)
    abnormal_cause: str | None = None

    @classmethod
    def from_api(cls, data: Any, report_kind: ReportKind, requested_job_id: str, endpoint: str) -> ReportJob:
        if not isinstance(data, dict):
            raise PatsnapResponseError("status response has no 'data' object", endpoint=endpoint)
        raw_status = data.get("job_status")
        try:
            status = JobStatus(int(str(raw_status)))
        except ValueError:
            raise PatsnapResponseError(
                f"unknown job_status {raw_status!r} for job {requested_job_id}", endpoint=endpoint
            ) from None
        # The id asked for is the job's identity: an echo may have passed through a double and lost
        # digits (PatSnap's own docs show 1579434053399035904 coming back as 1579434053399036000).
        job_id = requested_job_id
        queue = data.get("queue_num")
        url = data.get("download_url") or None
        if status is JobStatus.SUCCEEDED and not isinstance(url, str):
            # Looks transient (the link may come with the next look): the wait goes on, a download retries.
            raise PatsnapRetryableError(
                f"job {job_id} succeeded but PatSnap sent no usable download_url ({type(url).__name__}) yet",
                endpoint=endpoint,
            )
        return cls(
            job_id=job_id,
            report_kind=report_kind,
            status=status,
            queue_num=_queue_position(queue),
            download_url=url if isinstance(url, str) else None,
            abnormal_cause=remote_text(data["abnormal_cause"]) if data.get("abnormal_cause") else None,
        )

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def is_done(self) -> bool:
        """The one place that reads a job's state: True when succeeded, False while queued or
        exporting; raises ``PatsnapJobFailedError`` (with PatSnap's ``abnormal_cause``) when failed."""
        if self.status in SUCCESS_STATES:
            return True
        if self.status in FAILED_STATES:
            cause = self.abnormal_cause or "no cause given"
            raise PatsnapJobFailedError(
                f"{self.report_kind.code} job {self.job_id} failed on PatSnap's side: {cause}",
                job_id=self.job_id,
                abnormal_cause=self.abnormal_cause,
                endpoint=f"GET {self.report_kind.status_path}",
            )
        return False

    def to_xcom(self) -> dict[str, Any]:
        """JSON-safe summary; the signed download URL is deliberately left out."""
        return {
            "job_id": self.job_id,
            "report_kind": self.report_kind.value,
            "job_status": int(self.status),
            "status": self.status.name.lower(),
            "queue_num": self.queue_num,
            "abnormal_cause": self.abnormal_cause,
        }

    def describe(self) -> str:
        queue = f", queue position {self.queue_num}" if self.queue_num else ""
        return f"{self.report_kind.code} job {self.job_id}: {self.status.name.lower()}{queue}"


def _queue_position(value: Any) -> int | None:
    """``queue_num`` when it is a plausible position (ASCII digits, at most 9 of them), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    text = str(value).strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


class LegalIndicatorRecord(TypedDict):
    """One flat, typed P037 record."""

    pn: str | None
    patent_id: str | None
    legal_status: str | None
    granted_no: int | None
    litigation_no: int | None
    patent_age_day: int | None
    invalid_fail_no: int | None
    invalid_success_no: int | None
    grant_waiting_day: int | None
    has_reexam_invalid: bool | None
    litigation_country: list[str]
    in_application_ratio: float | None
    remaining_time_ratio: float | None
    avg_originality_index: float | None


def flatten_legal_indicator(item: Any) -> LegalIndicatorRecord:
    """Turn PatSnap's nested P037 item into one flat record with real types."""
    return flatten(INDICATORS["legal"], item)  # type: ignore[return-value]


def plain_json(value: Any) -> Any:
    """``value`` with the exact parser's ``Decimal``s as ``float`` (integers are ``int`` already): plain JSON
    for XCom. Use the hook's own return value where every digit of a decimal matters."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {key: plain_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(item) for item in value]
    return value
