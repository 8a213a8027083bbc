"""What every PatSnap operator shares: Airflow's retry semantics for PatSnap errors, the archive step,
outlet events, lineage. Helpers take what they need as arguments; none reads an operator's state."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_patsnap.errors import PatsnapError, PatsnapInputError, PatsnapRetryableError
from airflow_provider_patsnap.hooks._download import MEDIA_TYPES
from airflow_provider_patsnap.hooks._purchase import LEDGER_NEEDED, Scope, scope as purchase_scope, task_of
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.lineage import operator_lineage, patsnap_input, storage_output
from airflow_provider_patsnap.models import ReportKind
from airflow_provider_patsnap.staging import copy_verified
from airflow_provider_patsnap.storage import Destination, user_uri
from airflow_provider_patsnap.version_compat import AirflowFailException, object_storage_path

if TYPE_CHECKING:
    from airflow_provider_patsnap.ledger.store import PatsnapLedger


@contextlib.contextmanager
def airflow_failure_semantics() -> Iterator[None]:
    """The one place where PatSnap errors meet Airflow's retries.

    Bad input, permanent PatSnap errors and billable calls that may have run become
    ``AirflowFailException`` (no Airflow retries: they cannot help, and could bill twice). A
    transient error that outlasted the hook's own budget propagates as it is, so the task's
    ``retries`` apply: an outage longer than the hook's budget does not lose a paid report.
    """
    try:
        yield
    except PatsnapInputError as exc:
        raise AirflowFailException(f"Invalid input, nothing was sent to PatSnap: {exc}") from None
    except PatsnapRetryableError:
        raise
    except PatsnapError as exc:
        raise AirflowFailException(str(exc)) from None


@dataclass(frozen=True)
class ArchiveTarget:
    """Where a report is archived: a path or ObjectStoragePath URI (a folder if it ends in ``/``)."""

    destination: str
    destination_conn_id: str | None = None
    overwrite: bool = False


def archive_report(hook: PatsnapHook, kind: ReportKind | str, job_id: str, target: ArchiveTarget) -> dict[str, Any]:
    """Download ``job_id``'s report to ``target``; the download dict."""
    return hook.download_report(
        kind,
        job_id,
        target.destination,
        destination_conn_id=target.destination_conn_id,
        overwrite=target.overwrite,
    )


def copy_archived(
    kind: ReportKind | str, job_id: str, source_uri: str, sha256: str, target: ArchiveTarget
) -> dict[str, Any]:
    """The download dict of a report copied from an earlier archive (its sha256 verified on the way)."""
    kind = ReportKind.parse(kind)
    scheme = source_uri.split("://", 1)[0]
    destination = Destination.parse(target.destination, target.destination_conn_id)
    same_store = destination.raw.split("://", 1)[0] == scheme if "://" in destination.raw else scheme == "file"
    source = object_storage_path(source_uri, conn_id=target.destination_conn_id if same_store else None)
    final = destination.resolve(source.name)
    size = copy_verified(source, final, sha256=sha256, key=f"{kind.value}:{job_id}:copy", overwrite=target.overwrite)
    extension = final.name.rsplit(".", 1)[-1].lower()
    return {
        "uri": user_uri(final),
        "filename": final.name,
        "size": size,
        "sha256": sha256,
        "media_type": MEDIA_TYPES.get(extension, "application/octet-stream"),
        "job_id": job_id,
        "report_kind": kind.value,
    }


def annotate_outlet_events(outlets: Any, context: Any, result: dict[str, Any]) -> None:
    """Attach what was written to the Asset events Airflow emits for the task's ``outlets``."""
    events = context.get("outlet_events") if hasattr(context, "get") else None
    if events is None:
        return
    extra = {k: result[k] for k in ("uri", "sha256", "size", "records") if k in result}
    for outlet in outlets or []:
        try:
            events[outlet].extra.update(extra)
        except (KeyError, TypeError, AttributeError):
            continue


# ------------------------------------------------------------------------------------ spending


def spending(context: Any, max_billable_units: Any) -> contextlib.AbstractContextManager[Scope]:
    """Units bought inside are this task's, within ``max_billable_units`` (None: no cap of the task's)."""
    return purchase_scope(task_of(context), units_cap(max_billable_units))


def units_cap(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise PatsnapInputError(
            "max_billable_units", f"give a whole number of units (0 or more), or None, got {value!r}"
        )
    return int(value)


def reuse_window(value: Any) -> dt.timedelta | None:
    """``reuse_within`` as a window: a timedelta, or seconds (None: buy anew every time)."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.timedelta):
        window = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        window = dt.timedelta(seconds=value)
    elif isinstance(value, str) and value.strip().isdigit():
        window = dt.timedelta(seconds=int(value))
    else:
        raise PatsnapInputError("reuse_within", f"give a timedelta or a number of seconds, got {value!r}")
    if window.total_seconds() < 0:
        raise PatsnapInputError("reuse_within", f"must not be negative, got {value!r}")
    return window


def require_ledger(hook: PatsnapHook, parameter: str) -> PatsnapLedger:
    ledger = hook.ledger
    if ledger is None:
        raise PatsnapInputError(parameter, LEDGER_NEEDED)
    return ledger


def spent(result: dict[str, Any], where: Scope) -> dict[str, Any]:
    """``result`` with what the task bought and reused (``billed_units``, ``reused_units``)."""
    return {**result, "billed_units": where.billed, "reused_units": where.reused}


def lineage_of(hook: PatsnapHook, api_paths: Sequence[str], written: str | None, job_id: str | None = None) -> Any:
    """OpenLineage facets of a PatSnap task: the endpoints it read (stable names: host and path), the
    file it wrote, if any, and its PatSnap job as the run's external query."""
    base_url = hook.config.base_url
    return operator_lineage(
        [patsnap_input(base_url, path) for path in dict.fromkeys(api_paths) if path],
        [storage_output(written)] if written else [],
        job_id=job_id,
        source=base_url,
    )
