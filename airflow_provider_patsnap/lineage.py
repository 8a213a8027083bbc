"""OpenLineage facets, when the OpenLineage provider is installed (imported lazily; a no-op otherwise)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit


def _classes() -> tuple[Any, Any] | None:
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import Dataset
    except ImportError:
        return None
    return OperatorLineage, Dataset


def patsnap_input(base_url: str, path: str, identifiers: dict[str, Any]) -> tuple[str, str]:
    """(namespace, name) of what a PatSnap call reads: the endpoint plus the identifiers asked for."""
    query = "&".join(f"{k}={v}" for k, v in sorted(identifiers.items()) if v)
    return base_url, f"{path}?{query}" if query else path


def storage_output(uri: str) -> tuple[str, str]:
    """(namespace, name) for a written file, after OpenLineage's naming (``file``, ``s3://bucket``)."""
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        return "file", parts.path
    bucket, _, key = f"{parts.netloc}{parts.path}".partition("/")
    return f"{parts.scheme}://{bucket}", key


def operator_lineage(inputs: list[tuple[str, str]], outputs: list[tuple[str, str]]) -> Any:
    """``OperatorLineage`` for the given datasets, or ``None`` without the OpenLineage provider."""
    classes = _classes()
    if classes is None:
        return None
    lineage_cls, dataset_cls = classes
    return lineage_cls(
        inputs=[dataset_cls(namespace=ns, name=name) for ns, name in inputs],
        outputs=[dataset_cls(namespace=ns, name=name) for ns, name in outputs],
    )
