"""PatsnapUsageOperator: PatSnap's statement of account, kept and reconciled with the ledger."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_provider_patsnap import validation
from airflow_provider_patsnap.errors import PatsnapInputError
from airflow_provider_patsnap.hooks._purchase import task_of
from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
from airflow_provider_patsnap.ledger.model import STATEMENT_LAG, STATEMENT_TIMEZONE
from airflow_provider_patsnap.links import PatsnapOutputLink
from airflow_provider_patsnap.models import plain_json
from airflow_provider_patsnap.operators._common import airflow_failure_semantics, annotate_outlet_events
from airflow_provider_patsnap.staging import write_lines_atomically
from airflow_provider_patsnap.storage import Destination, user_uri
from airflow_provider_patsnap.version_compat import AirflowFailException, BaseOperator


class PatsnapUsageOperator(BaseOperator):
    """Reads PatSnap's statement of account for ``start``..``end`` (dates or ``YYYYMMDD``, both included)
    and, with a ledger on the connection, reconciles it per endpoint.

    Returns ``{"period": [start, end], "timezone", "closed", "endpoints": [{"path", "serial", "fee_times",
    "ledger_units", "difference", "partial", ...}], "matched", "statement"}`` and, with ``destination``,
    writes that as JSON there (replacing an earlier reconciliation of the same file) and adds ``"uri"``.
    Days are PatSnap's (``statement_timezone``, Asia/Shanghai), and ledger units count on the day they
    were sent. A period is closed once its last day ended more than ``statement_lag`` ago (default one
    day: PatSnap's statement may lag); only a closed period settles the ledger's unsure units (see
    ``ledger.reconcile``), and ``fail_on_mismatch`` fails the task on a difference in a closed period.
    An open one is reconciled all the same, flagged ``partial``. Reading the statement costs nothing;
    its request carries the client secret, which is never logged.
    """

    template_fields: Sequence[str] = ("start", "end", "destination", "destination_conn_id")
    operator_extra_links = (PatsnapOutputLink(),)
    ui_color = "#fdf3d8"

    def __init__(
        self,
        *,
        start: Any,
        end: Any,
        destination: str | None = None,
        destination_conn_id: str | None = None,
        reconcile: bool = True,
        fail_on_mismatch: bool = False,
        statement_timezone: str = STATEMENT_TIMEZONE,
        statement_lag: dt.timedelta | int = STATEMENT_LAG,
        patsnap_conn_id: str = PatsnapHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.start = start
        self.end = end
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.reconcile = reconcile
        self.fail_on_mismatch = fail_on_mismatch
        self.statement_timezone = statement_timezone
        self.statement_lag = statement_lag
        self.patsnap_conn_id = patsnap_conn_id

    @cached_property
    def hook(self) -> PatsnapHook:
        return PatsnapHook(self.patsnap_conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_provider_patsnap.ledger.reconcile import reconcile

        with airflow_failure_semantics():
            start = _day("start", self.start)
            end = _day("end", self.end)
            if start > end:
                raise PatsnapInputError("end", f"{end} is before start {start}")
            zone = _zone(self.statement_timezone)
            lag = _lag(self.statement_lag)
            statement = plain_json(self.hook.get_usage_statement(start, end))
            ledger = self.hook.ledger if self.reconcile else None
            now = dt.datetime.now(dt.timezone.utc)
            result = reconcile(ledger, statement, start, end, now=now, zone=zone, lag=lag)
            if ledger is not None:  # what the spend page shows as open differences
                ledger.record_reconciliation(result, task_of(context))
            result["statement"] = statement
            self._log_endpoints(result, ledger is not None)
            if self.destination:
                target = Destination.parse(self.destination, self.destination_conn_id)
                final = target.resolve(f"patsnap_usage_{result['period'][0]}_{result['period'][1]}.json")
                body = (json.dumps(result, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")
                write_lines_atomically(final, iter([body]), key="usage", overwrite=True)
                result["uri"] = self._written_uri = user_uri(final)
                annotate_outlet_events(self.outlets, context, result)
        closed = [e for e in result["endpoints"] if not e["partial"] and e["difference"] not in (0, None)]
        if self.fail_on_mismatch and closed:
            listed = "; ".join(
                f"{e['serial'] or e['path']}: PatSnap {e['fee_times']}, ledger {e['ledger_units']}" for e in closed
            )
            raise AirflowFailException(f"PatSnap's statement and the ledger differ for {result['period']}: {listed}")
        return result

    def _log_endpoints(self, result: dict[str, Any], reconciled: bool) -> None:
        for entry in result["endpoints"]:
            if reconciled:
                self.log.info(
                    "%s %s: PatSnap billed %s, the ledger has %s (difference %s)%s.",
                    entry["serial"],
                    entry["path"],
                    entry["fee_times"],
                    entry["ledger_units"],
                    entry["difference"],
                    ", the period is not closed yet" if entry["partial"] else "",
                )
            else:
                self.log.info("%s %s: PatSnap billed %s.", entry["serial"], entry["path"], entry["fee_times"])


def _day(parameter: str, value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = validation.statement_day(parameter, value)
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))


def _zone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ValueError, KeyError, ZoneInfoNotFoundError):
        raise PatsnapInputError("statement_timezone", f"{value!r} is not a time zone, e.g. Asia/Shanghai") from None
    return str(value)


def _lag(value: Any) -> dt.timedelta:
    if isinstance(value, dt.timedelta) and value >= dt.timedelta(0):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return dt.timedelta(seconds=value)
    raise PatsnapInputError("statement_lag", f"give a timedelta or seconds, 0 or more, got {value!r}")
