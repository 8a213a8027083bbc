"""P037 legal indicators for any number of patents, to XCom or to JSON Lines in storage."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from airflow_provider_patsnap import validation
from airflow_provider_patsnap.hooks.patsnap import LEGAL_INDICATORS_PATH, PatsnapHook
from airflow_provider_patsnap.links import PatsnapApiDocsLink
from airflow_provider_patsnap.models import LegalIndicatorRecord
from airflow_provider_patsnap.operators._common import airflow_failure_semantics, annotate_outlet_events, lineage_of
from airflow_provider_patsnap.storage import Destination, user_uri, write_lines_atomically
from airflow_provider_patsnap.version_compat import BaseOperator

DEFAULT_FILENAME = "legal_indicators.jsonl"


class PatsnapLegalIndicatorsOperator(BaseOperator):
    """Fetches P037 legal indicators for any number of patents (batched 100 per request).

    Without ``destination`` it returns the list of flat, typed records (one per patent found).
    With ``destination`` (a file path or URI; a value ending in ``/`` is a folder, where
    ``legal_indicators.jsonl`` is written) it writes JSON Lines there, atomically, and returns
    ``{"uri", "records", "requested", "missing"}``; ``missing`` lists the inputs PatSnap
    returned nothing for. (Not called ``output``: that name is Airflow's own XComArg property.)
    """

    template_fields: Sequence[str] = ("patent_numbers", "patent_ids", "destination", "destination_conn_id")
    operator_extra_links = (PatsnapApiDocsLink(),)
    api_docs_path = LEGAL_INDICATORS_PATH
    ui_color = "#f3e8d0"

    def __init__(
        self,
        *,
        patent_numbers: list[str] | str | None = None,
        patent_ids: list[str] | str | None = None,
        destination: str | None = None,
        destination_conn_id: str | None = None,
        patsnap_conn_id: str = PatsnapHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.patent_numbers = patent_numbers
        self.patent_ids = patent_ids
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.patsnap_conn_id = patsnap_conn_id

    def execute(self, context: Any) -> list[LegalIndicatorRecord] | dict[str, Any]:
        with airflow_failure_semantics():
            numbers, ids = validation.patents(self.patent_numbers, self.patent_ids)
            target = Destination.parse(self.destination, self.destination_conn_id) if self.destination else None
            records = PatsnapHook(self.patsnap_conn_id).get_legal_indicators(patent_numbers=numbers, patent_ids=ids)
        self._requested = len(numbers) + len(ids)
        missing = missing_inputs(numbers, ids, records)
        if missing:
            preview = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            self.log.warning(
                "PatSnap returned nothing for %d of %d patent(s): %s", len(missing), len(numbers) + len(ids), preview
            )
        if target is None:
            return records
        final = target.resolve(DEFAULT_FILENAME)
        size = write_lines_atomically(final, _json_lines(records))
        result = {
            "uri": user_uri(final),
            "records": len(records),
            "requested": len(numbers) + len(ids),
            "missing": missing,
        }
        self.log.info("Wrote %d record(s), %d bytes, to %s", len(records), size, result["uri"])
        annotate_outlet_events(self, context, result)
        self._written_uri = result["uri"]
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return lineage_of(self, {"patents": getattr(self, "_requested", None)})


def missing_inputs(numbers: list[str], ids: list[str], records: list[LegalIndicatorRecord]) -> list[str]:
    """Inputs with no record in the answer (compared case-insensitively, as PatSnap does)."""
    found_numbers = {str(r.get("pn") or "").upper() for r in records}
    found_ids = {str(r.get("patent_id") or "").lower() for r in records}
    return [n for n in numbers if n.upper() not in found_numbers] + [i for i in ids if i.lower() not in found_ids]


def _json_lines(records: list[LegalIndicatorRecord]) -> Iterator[bytes]:
    for record in records:
        yield (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
