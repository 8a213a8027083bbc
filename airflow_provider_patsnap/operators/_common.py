"""What every PatSnap operator shares: Airflow's retry semantics for PatSnap errors, the archive step,
outlet events, lineage. Helpers take what they need as arguments; none reads an operator's state."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from airflow_provider_patsnap.errors import PatsnapError, PatsnapInputError, PatsnapRetryableError
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.lineage import operator_lineage, patsnap_input, storage_output
from airflow_provider_patsnap.models import ReportKind
from airflow_provider_patsnap.version_compat import AirflowFailException


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


def lineage_of(hook: PatsnapHook, api_path: str, asked: dict[str, Any], written: str | None) -> Any:
    """OpenLineage facets of a PatSnap task: the endpoint it read (with what it asked for) and the
    file it wrote, if any."""
    return operator_lineage(
        [patsnap_input(hook.config.base_url, api_path, asked)], [storage_output(written)] if written else []
    )
