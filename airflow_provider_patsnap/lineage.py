"""OpenLineage facets, when the OpenLineage provider is installed (imported lazily; a no-op otherwise)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit


def _classes() -> tuple[Any, Any, Any] | None:
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import Dataset
        from openlineage.client.facet_v2 import external_query_run
    except ImportError:
        return None
    return OperatorLineage, Dataset, external_query_run.ExternalQueryRunFacet


def patsnap_input(base_url: str, path: str) -> tuple[str, str]:
    """(namespace, name) of a PatSnap endpoint read: the host, and the path alone, so the dataset is the
    same every run (what a run asked for is run detail, not a new dataset)."""
    return base_url, path


def storage_output(uri: str) -> tuple[str, str]:
    """(namespace, name) for a written file, after OpenLineage's naming (``file``, ``s3://bucket``)."""
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        return "file", parts.path
    bucket, _, key = f"{parts.netloc}{parts.path}".partition("/")
    return f"{parts.scheme}://{bucket}", key


def operator_lineage(
    inputs: list[tuple[str, str]], outputs: list[tuple[str, str]], *, job_id: str | None = None, source: str = ""
) -> Any:
    """``OperatorLineage`` for the given datasets (a PatSnap job id as the run's external query), or
    ``None`` without the OpenLineage provider."""
    classes = _classes()
    if classes is None:
        return None
    lineage_cls, dataset_cls, query_facet = classes
    run_facets = {"externalQuery": query_facet(externalQueryId=job_id, source=source)} if job_id else {}
    return lineage_cls(
        inputs=[dataset_cls(namespace=ns, name=name) for ns, name in inputs],
        outputs=[dataset_cls(namespace=ns, name=name) for ns, name in outputs],
        run_facets=run_facets,
    )
