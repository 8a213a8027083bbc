"""Every billable call the hook makes, through the ledger: reserved before it is sent, settled after.

This is where the hook meets the ledger and the metrics, whoever calls it (an operator, a sensor,
users' own ``@task`` code). A :class:`Scope` says which task the units are bought for and the task's
own cap (``max_billable_units``); operators set it around their work (:func:`scope`), and outside
one the running task's Airflow context fills it. Without a ledger a call goes out as before, but a
cap (which needs one to count against) is refused.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_patsnap import metrics
from airflow_provider_patsnap.errors import (
    Outcome,
    PatsnapBudgetExceededError,
    PatsnapError,
    PatsnapInputError,
    PatsnapRetryableError,
)
from airflow_provider_patsnap.ledger.model import BudgetExceeded, Purchase, TaskRef
from airflow_provider_patsnap.models import ReportKind
from airflow_provider_patsnap.valuation import INDICATORS, Batch
from airflow_provider_patsnap.version_compat import current_context

if TYPE_CHECKING:
    from airflow_provider_patsnap.ledger.store import PatsnapLedger

T = TypeVar("T")
log = logging.getLogger(__name__)
LEDGER_NEEDED = "needs a ledger to count against: set the PatSnap connection's extra ledger_url or ledger_conn_id"


@dataclass
class Scope:
    """The task units are bought for, its cap, and what this scope bought and reused so far."""

    task: TaskRef | None = None
    task_cap: int | None = None
    billed: int = 0
    reused: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, billed: int = 0, reused: int = 0) -> None:
        with self._lock:
            self.billed += billed
            self.reused += reused


_SCOPE: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("patsnap_purchase_scope", default=None)


@contextlib.contextmanager
def scope(task: TaskRef | None, task_cap: int | None = None) -> Iterator[Scope]:
    """Units bought inside the block are for ``task``, within ``task_cap`` (None: no cap of its own)."""
    if task_cap is not None and task_cap < 0:
        raise PatsnapInputError("max_billable_units", f"must be 0 or more (None: no cap), got {task_cap!r}")
    current = Scope(task, task_cap)
    token = _SCOPE.set(current)
    try:
        yield current
    finally:
        _SCOPE.reset(token)


def current_scope() -> Scope:
    """The scope set by an operator, else one for the running task (if any), without a cap."""
    found = _SCOPE.get()
    return found if found is not None else Scope(task_of(current_context()))


def task_of(context: Any) -> TaskRef | None:
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is None:
        return None
    try:
        return TaskRef(
            dag_id=str(ti.dag_id),
            run_id=str(ti.run_id),
            task_id=str(ti.task_id),
            map_index=int(getattr(ti, "map_index", -1)),
            task_run=int(getattr(ti, "max_tries", 0) or 0),
            try_number=int(getattr(ti, "try_number", 1) or 1),
        )
    except (AttributeError, TypeError, ValueError):
        return None


def report_subject(body: dict[str, str]) -> str:
    """A report's subject as the ledger keys it: its identifiers, sorted and percent-escaped, so no value
    can pass for two (``company_name=ACME Ltd``; ``company_name=A%26org_number%3D9``)."""
    return "&".join(f"{_escape(k)}={_escape(str(v))}" for k, v in sorted(body.items()) if k != "report_type")


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("&", "%26").replace("=", "%3D")


def report_variant(report_type: str, logo: bool) -> str:
    return f"{report_type}/{'logo' if logo else 'no-logo'}"


def report_purchase(kind: ReportKind, body: dict[str, str], logo: bool) -> Purchase:
    return Purchase(
        endpoint=kind.create_path(logo),
        serial=kind.code,
        subject=report_subject(body),
        variant=report_variant(body["report_type"], logo),
        units=1,
    )


def batch_purchase(batch: Batch) -> Purchase:
    """A batch reserves its size (PatSnap bills per result returned: it settles to the results)."""
    return Purchase(
        endpoint=batch.indicator.path,
        serial=batch.indicator.code,
        subject=f"batch:{batch.key}",
        units=len(batch.patents),
    )


def known_purchase(path: str, query: Any, body: Any) -> tuple[Purchase, Callable[[Any], int]] | None:
    """What a call of one of the products the provider knows buys, made through ``PatsnapHook.run``
    (``@task`` code), and how its answer counts: an indicator batch reserves its patents and is
    billed per result returned, a report create one unit; None for any other path."""
    for indicator in INDICATORS.values():
        if path == indicator.path:
            asked = {
                f"{name}:{value.strip()}"
                for name in ("patent_number", "patent_id")
                for value in str((query or {}).get(name) or "").split(",")
                if value.strip()
            }
            purchase = Purchase(path, indicator.code, request_subject(query, body), max(1, len(asked)))
            return purchase, lambda data: len(data) if isinstance(data, list) else 0
    for kind in ReportKind:
        for logo in (True, False):
            if path == kind.create_path(logo):
                return Purchase(path, kind.code, request_subject(query, body), 1), lambda _: 1
    return None


def billed_product(method: str, path: str) -> bool:
    """Whether a call bills, unless its caller says otherwise: a POST, or a product PatSnap bills."""
    return method.upper() == "POST" or known_purchase(path, None, None) is not None


def request_subject(query: Any, body: Any) -> str:
    """A generic call's subject: a digest of what it asked for."""
    text = json.dumps([query, body], sort_keys=True, default=str)
    return "request:" + hashlib.sha256(text.encode()).hexdigest()[:24]


def buy(
    ledger: PatsnapLedger | None,
    purchase: Purchase,
    send: Callable[[Callable[[], None]], T],
    *,
    billed: Callable[[T], int],
    job_id: Callable[[T], str | None] | None = None,
    on_send: Callable[[], None] | None = None,
    where: Scope | None = None,
) -> T:
    """Make a billable call (``send(mark)``, where ``mark`` must run just before the request is handed
    to the transport) with its unit reserved in ``ledger`` first and settled after."""
    where = where if where is not None else current_scope()
    dag_id = where.task.dag_id if where.task else None
    endpoint = f"{purchase.endpoint}"

    if ledger is None:
        if where.task_cap is not None:
            raise PatsnapInputError("max_billable_units", LEDGER_NEEDED)

        def mark_only() -> None:
            if on_send is not None:
                on_send()

        result = send(mark_only)
        units = billed(result)
        where.add(billed=units)
        metrics.count("units.billed", units, serial=purchase.serial, dag_id=dag_id)
        return result

    try:
        unit = ledger.reserve(purchase, where.task, where.task_cap)
    except BudgetExceeded as exc:
        metrics.count("budget.refused", 1, serial=purchase.serial, dag_id=dag_id)
        raise PatsnapBudgetExceededError(
            f"{exc}; nothing was sent. Raise the cap, or wait for the next period",
            period=exc.period,
            spent=exc.spent,
            cap=exc.cap,
            endpoint=endpoint,
        ) from None
    except Exception as exc:  # the database is down, locked for too long, or refuses us
        raise _unrecorded(endpoint, exc) from None

    sent: list[bool] = []

    def mark() -> None:
        try:
            ledger.sent(unit)
        except Exception as exc:
            raise _unrecorded(endpoint, exc) from None
        sent.append(True)
        if on_send is not None:
            on_send()

    try:
        result = send(mark)
    except BaseException as exc:
        outcome = exc.outcome if isinstance(exc, PatsnapError) else Outcome.MAY_HAVE_RUN
        if not sent or outcome in (Outcome.NOT_SENT, Outcome.REJECTED):
            quietly(ledger.refuse, unit)
        else:
            quietly(ledger.ambiguous, unit)
            metrics.count("calls.ambiguous", 1, serial=purchase.serial, dag_id=dag_id)
        raise
    units = billed(result)
    quietly(ledger.settle, unit, units, job_id=job_id(result) if job_id else None)
    where.add(billed=units)
    metrics.count("units.billed", units, serial=purchase.serial, dag_id=dag_id)
    return result


def _unrecorded(endpoint: str, exc: BaseException) -> PatsnapRetryableError:
    return PatsnapRetryableError(
        f"the ledger could not record this billable call ({type(exc).__name__}); nothing was sent",
        endpoint=endpoint,
        outcome=Outcome.NOT_SENT,
    )


def quietly(step: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """A ledger update after PatSnap answered: the answer is kept even if the ledger cannot be written
    now (reconciliation with PatSnap's statement finds the unit it left open)."""
    try:
        step(*args, **kwargs)
    except Exception as exc:
        log.error(
            "The ledger could not record what PatSnap answered (%s); reconcile with the statement.", type(exc).__name__
        )
