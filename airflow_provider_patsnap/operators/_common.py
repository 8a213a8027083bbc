"""What every PatSnap operator shares: Airflow's retry semantics for PatSnap errors, outlet events, lineage."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from airflow_provider_patsnap.errors import PatsnapError, PatsnapInputError, PatsnapRetryableError
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.lineage import operator_lineage, patsnap_input, storage_output
from airflow_provider_patsnap.version_compat import AirflowFailException


@contextlib.contextmanager
def airflow_failure_semantics() -> Iterator[None]:
    """The one place where PatSnap errors meet Airflow's retries.

    Bad input, permanent PatSnap errors and creates that may have run become
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


def annotate_outlet_events(operator: Any, context: Any, result: dict[str, Any]) -> None:
    """Attach what was written to the Asset events Airflow emits for the task's outlets."""
    events = context.get("outlet_events") if hasattr(context, "get") else None
    if events is None:
        return
    extra = {k: result[k] for k in ("uri", "sha256", "size", "records") if k in result}
    for outlet in getattr(operator, "outlets", None) or []:
        try:
            events[outlet].extra.update(extra)
        except (KeyError, TypeError, AttributeError):
            continue


def archive_report(operator: Any, context: Any, job_id: str) -> dict[str, Any]:
    """Download ``job_id`` to the operator's ``destination`` and tell Airflow what was written."""
    result = PatsnapHook(operator.patsnap_conn_id).download_report(
        operator.report_kind,
        job_id,
        operator.destination,
        destination_conn_id=operator.destination_conn_id,
        overwrite=operator.overwrite,
    )
    annotate_outlet_events(operator, context, result)
    operator._written_uri = result["uri"]
    return result


def lineage_of(operator: Any, asked: dict[str, Any]) -> Any:
    """OpenLineage facets of a PatSnap task: the endpoint it read (with what it asked for) and the
    file it wrote, if any (``_written_uri``, set by ``execute``)."""
    base_url = PatsnapHook(operator.patsnap_conn_id).config.base_url
    written = getattr(operator, "_written_uri", None)
    return operator_lineage(
        [patsnap_input(base_url, operator.api_docs_path, asked)], [storage_output(written)] if written else []
    )
