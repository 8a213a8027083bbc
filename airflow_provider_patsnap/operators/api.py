"""PatsnapApiOperator: any PatSnap endpoint the provider does not wrap, through the hook's rules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, ClassVar

from airflow_provider_patsnap import validation
from airflow_provider_patsnap.billing import TaskRun
from airflow_provider_patsnap.hooks._purchase import billed_product
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.links import PatsnapApiDocsLink
from airflow_provider_patsnap.models import plain_json
from airflow_provider_patsnap.operators._common import airflow_failure_semantics, lineage_of, spending, units_cap
from airflow_provider_patsnap.version_compat import BaseOperator

API_KEY = "patsnap_api_call"


class PatsnapApiOperator(BaseOperator):
    """Calls one PatSnap endpoint and returns the envelope's ``data`` as XCom.

    Same authentication, rate limit, retries and outcome rules as every other PatSnap task.

    :param method: ``GET``, ``POST``, ``PUT``, ``PATCH`` or ``DELETE``.
    :param endpoint: a path on the connection's host, e.g. ``/search/patent/query-search-count/v2``
        (templated). Never a full URL: credentials only go to the connection's host.
    :param query: query-string parameters (templated; a list becomes PatSnap's comma list). Not
        ``params``: that is Airflow's own DAG-params argument.
    :param json: the JSON body (templated).
    :param billable: whether PatSnap charges for the call (default: True for POST and for the products
        PatSnap bills, e.g. an indicator path). A billable call is replayed only when PatSnap surely
        did not run it; a doubtful outcome fails the task without Airflow retries, saying how to check.

    The XCom is plain JSON: decimals from PatSnap become ``float`` (use ``PatsnapHook.run`` in a
    ``@task`` to keep them exact). A billable call is made once across attempts as well: on Airflow
    3.3+ a retry returns the answer the first attempt recorded (answers up to 64 KiB; a larger one
    fails the retry, saying so); before 3.3 the answer is pushed to XCom (``patsnap_api_call``)
    inside ``execute``, and on any version a call interrupted after it was sent fails without
    Airflow retries. Clearing the task calls again.
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
        max_billable_units: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        units_cap(max_billable_units)
        self.max_billable_units = max_billable_units
        self.method = validation.http_method(method)
        self.endpoint = endpoint
        self.query = query
        self.json = json
        self.billable = billable
        self.patsnap_conn_id = patsnap_conn_id

    @cached_property
    def hook(self) -> PatsnapHook:
        return PatsnapHook(self.patsnap_conn_id)

    @property
    def api_docs_path(self) -> str:
        return self.endpoint if isinstance(self.endpoint, str) and "{{" not in self.endpoint else ""

    def execute(self, context: Any) -> Any:
        with airflow_failure_semantics(), spending(context, self.max_billable_units):
            path = validation.endpoint_path(self.endpoint)
            billable = billed_product(self.method, path) if self.billable is None else bool(self.billable)

            # A template that rendered None or a list as text must not reach PatSnap (let alone be billed).
            query = validation.rendered_values("query", self.query)
            body = validation.rendered_values("json", self.json)

            def call(on_send: Callable[[], None] | None = None) -> Any:
                data = self.hook.run(
                    self.method, self.endpoint, params=query, json=body, billable=billable, on_send=on_send
                )
                return plain_json(data)

            if not billable:
                return call()
            # Once across attempts too: a retry returns what the first attempt got (3.3+, small answers),
            # and a call interrupted after it was sent fails without Airflow retries.
            return TaskRun(context, self.log).buy_once(API_KEY, f"{self.method} {self.endpoint}", call)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return lineage_of(self.hook, [self.api_docs_path], None)
