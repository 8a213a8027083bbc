"""PatsnapApiOperator: any PatSnap endpoint the provider does not wrap, through the hook's rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from airflow_provider_patsnap import validation
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.links import PatsnapApiDocsLink
from airflow_provider_patsnap.models import plain_json
from airflow_provider_patsnap.operators._common import airflow_failure_semantics, lineage_of
from airflow_provider_patsnap.version_compat import BaseOperator


class PatsnapApiOperator(BaseOperator):
    """Calls one PatSnap endpoint and returns the envelope's ``data`` as XCom.

    Same authentication, rate limit, retries and outcome rules as every other PatSnap task.

    :param method: ``GET``, ``POST``, ``PUT``, ``PATCH`` or ``DELETE``.
    :param endpoint: a path on the connection's host, e.g. ``/search/patent/query-search-count/v2``
        (templated). Never a full URL: credentials only go to the connection's host.
    :param query: query-string parameters (templated; a list becomes PatSnap's comma list). Not
        ``params``: that is Airflow's own DAG-params argument.
    :param json: the JSON body (templated).
    :param billable: whether PatSnap charges for the call (default: True for POST). A billable call is
        replayed only when PatSnap surely did not run it; a doubtful outcome fails the task without
        Airflow retries, saying how to check.

    The XCom is plain JSON: decimals from PatSnap become ``float`` (use ``PatsnapHook.run`` in a
    ``@task`` to keep them exact).
    """

    template_fields: Sequence[str] = ("endpoint", "query", "json")
    template_fields_renderers: ClassVar[dict[str, str]] = {"json": "json", "query": "json"}
    operator_extra_links = (PatsnapApiDocsLink(),)
    ui_color = "#ede7f6"

    def __init__(
        self,
        *,
        method: str,
        endpoint: str,
        query: dict[str, Any] | None = None,
        json: Any = None,
        billable: bool | None = None,
        patsnap_conn_id: str = PatsnapHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.method = validation.http_method(method)
        self.endpoint = endpoint
        self.query = query
        self.json = json
        self.billable = billable
        self.patsnap_conn_id = patsnap_conn_id

    @property
    def api_docs_path(self) -> str:
        return self.endpoint if isinstance(self.endpoint, str) and "{{" not in self.endpoint else ""

    def execute(self, context: Any) -> Any:
        with airflow_failure_semantics():
            data = PatsnapHook(self.patsnap_conn_id).run(
                self.method, self.endpoint, params=self.query, json=self.json, billable=self.billable
            )
        return plain_json(data)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return lineage_of(self, dict(self.query or {}))
