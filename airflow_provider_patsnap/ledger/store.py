"""PatsnapLedger: every unit bought from PatSnap, recorded and budgeted in a SQL database.

A billable call's unit is *reserved* before it is sent (in one transaction that checks the day's,
the month's and the task's caps and adds to the period counters, locking them, so racing
processes on any number of machines never pass a cap together), marked *sent* when the request is
handed to the transport, and *settled* to what PatSnap billed once it answers (an indicator batch
reserves its size and settles to the results returned), *refused* when PatSnap proved it did
nothing (the reservation is given back), or left *ambiguous* (it stays reserved: it may have been
billed). A unit that could not be recorded is never sent.

Only the *sent* mark must be on disk before PatSnap is called. On PostgreSQL every other write
commits without waiting for its WAL flush (``synchronous_commit`` off for the ledger's connections,
on again for the mark; the rows are visible to every other process at once, so budgets hold): the
mark's flush carries the reservation before it, and a settlement lost to a database crash leaves
the unit *sent* and still reserved, the safe side. One flush per billable call instead of three.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from airflow_provider_patsnap.ledger import schema
from airflow_provider_patsnap.ledger.engine import engine_for
from airflow_provider_patsnap.ledger.model import Budget, BudgetExceeded, Purchase, TaskRef
from airflow_provider_patsnap.ledger.schema import budgets, reconciliations, results, units

#: A unit row's states (``billing.UnitState`` plus what the ledger alone knows).
INTENT, SENT, ANSWERED, AMBIGUOUS, REFUSED, REUSED = "intent", "sent", "answered", "ambiguous", "refused", "reused"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class PatsnapLedger:
    """The ledger of one PatSnap account in one database (see the module docstring)."""

    def __init__(self, url: str, account: str, budget: Budget | None = None, *, read_only: bool = False) -> None:
        """``read_only``: a reader (the spend page): nothing is created, migrated or written, no write lock
        is taken, and ``version`` says what the database holds (None: no ledger yet)."""
        self.url = url
        self.account = account
        self.budget = budget or Budget()
        self.zone = ZoneInfo(self.budget.timezone)
        self.engine: Engine = engine_for(url, read_only=read_only)
        self.version = schema.stored_version(self.engine) if read_only else schema.ensure_schema(self.engine)

    @classmethod
    def for_connection(cls, patsnap_conn_id: str = "patsnap_default") -> PatsnapLedger | None:
        """The ledger a PatSnap connection is configured with (``ledger_url``/``ledger_conn_id``), or None."""
        # Airflow resolves the connection's hook (PatsnapHook, which reads the extras): the ledger
        # itself never imports the hooks that use it.
        from airflow_provider_patsnap.version_compat import BaseHook

        ledger: PatsnapLedger | None = BaseHook.get_hook(patsnap_conn_id).ledger  # type: ignore[attr-defined]
        return ledger

    def __repr__(self) -> str:
        return f"PatsnapLedger(account={self.account!r})"  # never the URL: it may carry a password

    # ------------------------------------------------------------------ periods

    def periods(self, when: dt.datetime) -> tuple[str, str]:
        """(day, month) of ``when`` in the budget time zone: ``YYYY-MM-DD``, ``YYYY-MM``."""
        local = when.astimezone(self.zone)
        return local.strftime("%Y-%m-%d"), local.strftime("%Y-%m")

    def _lock_periods(self, connection: Connection, day: str, month: str) -> dict[str, int]:
        """The day's and month's reserved units, their rows created if missing and locked (always in the
        same order, so two transactions never wait for each other) until the transaction ends."""
        periods = sorted((f"day:{day}", f"month:{month}"))
        rows = [{"account": self.account, "period": period, "reserved": 0} for period in periods]
        dialect = connection.dialect.name
        if dialect == "postgresql":  # one statement creates, locks and reads both rows
            upsert = postgresql.insert(budgets).values(rows)
            upsert = upsert.on_conflict_do_update(
                index_elements=[budgets.c.account, budgets.c.period], set_={"reserved": budgets.c.reserved}
            )
            return {
                period: int(reserved)
                for period, reserved in connection.execute(upsert.returning(budgets.c.period, budgets.c.reserved))
            }
        if dialect == "sqlite":
            connection.execute(sqlite.insert(budgets).values(rows).on_conflict_do_nothing())
        else:  # another database: insert what is missing
            have = set(connection.execute(select(budgets.c.period).where(self._period_rows(periods))).scalars())
            missing = [row for row in rows if row["period"] not in have]
            if missing:
                connection.execute(budgets.insert(), missing)
        query = select(budgets.c.period, budgets.c.reserved).where(self._period_rows(periods))
        if dialect != "sqlite":  # SQLite's BEGIN IMMEDIATE already holds the database's write lock
            query = query.order_by(budgets.c.period).with_for_update()
        return {period: int(reserved) for period, reserved in connection.execute(query)}

    def _period_rows(self, periods: Sequence[str]) -> Any:
        return and_(budgets.c.account == self.account, budgets.c.period.in_(periods))

    def _add(self, connection: Connection, day: str, month: str, delta: int) -> None:
        """Add ``delta`` units to the day's and month's counters (locked by :meth:`_lock_periods`)."""
        if delta:
            floor = func.max if connection.dialect.name == "sqlite" else func.greatest
            connection.execute(
                budgets.update()
                .where(self._period_rows((f"day:{day}", f"month:{month}")))
                .values(reserved=floor(budgets.c.reserved + delta, 0))
            )

    # ------------------------------------------------------------------ the lifecycle

    def reserve(self, purchase: Purchase, task: TaskRef | None = None, task_cap: int | None = None) -> int:
        """Record the intent to buy ``purchase`` and reserve its units; the unit's id. Raises
        ``BudgetExceeded`` (nothing recorded, nothing reserved) when a cap would be passed."""
        now = _now()
        day, month = self.periods(now)
        with self.engine.begin() as connection:
            locked = self._lock_periods(connection, day, month)
            for period, cap in ((f"day:{day}", self.budget.daily), (f"month:{month}", self.budget.monthly)):
                reserved = locked[period]
                if cap is not None and reserved + purchase.units > cap:
                    raise BudgetExceeded(
                        f"the {'daily' if period.startswith('day') else 'monthly'} budget of {cap} units for "
                        f"{period.split(':', 1)[1]} ({self.budget.timezone}) has {reserved} spent or reserved; "
                        f"this call needs {purchase.units} more",
                        period=period,
                        spent=reserved,
                        cap=cap,
                    )
            if task is not None and task_cap is not None:
                used = self._task_units(connection, task)
                if used + purchase.units > task_cap:
                    raise BudgetExceeded(
                        f"max_billable_units={task_cap} of this task's run has {used} spent or reserved; this call "
                        f"needs {purchase.units} more",
                        period="task",
                        spent=used,
                        cap=task_cap,
                    )
            self._add(connection, day, month, purchase.units)
            inserted = connection.execute(
                units.insert().values(
                    **self._unit_columns(purchase, task, now, day, month),
                    state=INTENT,
                    units_reserved=purchase.units,
                    units_reused=0,
                )
            )
            return _new_id(inserted)

    def _unit_columns(
        self, purchase: Purchase, task: TaskRef | None, now: dt.datetime, day: str, month: str
    ) -> dict[str, Any]:
        return {
            "account": self.account,
            "endpoint": purchase.endpoint,
            "serial": purchase.serial,
            "subject": purchase.subject[:512],
            "variant": purchase.variant,
            "created_at": now,
            "day": day,
            "month": month,
            **(
                {
                    "dag_id": task.dag_id,
                    "run_id": task.run_id,
                    "task_id": task.task_id,
                    "map_index": task.map_index,
                    "task_run": task.task_run,
                    "try_number": task.try_number,
                }
                if task is not None
                else {}
            ),
        }

    def _task_units(self, connection: Connection, task: TaskRef) -> int:
        """Units of this task's run: what settled units billed, what open ones reserve."""
        counted = case(
            (units.c.state == ANSWERED, func.coalesce(units.c.units_billed, 0)), else_=units.c.units_reserved
        )
        query = select(func.coalesce(func.sum(counted), 0)).where(
            units.c.account == self.account,
            units.c.dag_id == task.dag_id,
            units.c.run_id == task.run_id,
            units.c.task_id == task.task_id,
            units.c.map_index == task.map_index,
            units.c.task_run == task.task_run,
            units.c.state.notin_([REFUSED, REUSED]),
        )
        return int(connection.execute(query).scalar_one())

    def sent(self, unit_id: int) -> None:
        """The request is being handed to the transport: PatSnap may have it from now on."""
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":  # on disk before the request leaves (module docstring)
                connection.exec_driver_sql("SET LOCAL synchronous_commit TO ON")
            connection.execute(units.update().where(units.c.id == unit_id).values(state=SENT, sent_at=_now()))

    def settle(self, unit_id: int, billed: int, *, job_id: str | None = None) -> None:
        """PatSnap answered: ``billed`` units (the reservation is corrected to them)."""
        self._close(unit_id, ANSWERED, billed=billed, job_id=job_id)

    def refuse(self, unit_id: int) -> None:
        """PatSnap proved it did nothing (or it was never sent): the reservation is given back."""
        self._close(unit_id, REFUSED, billed=0)

    def ambiguous(self, unit_id: int) -> None:
        """Sent, and no answer proves nothing was billed: it stays reserved, for reconciliation to settle."""
        with self.engine.begin() as connection:
            connection.execute(units.update().where(units.c.id == unit_id).values(state=AMBIGUOUS, settled_at=_now()))

    def _close(self, unit_id: int, state: str, *, billed: int, job_id: str | None = None) -> None:
        """Close an open unit (a closed one stays as it is: closing twice never counts twice)."""
        open_unit = and_(units.c.id == unit_id, units.c.state.in_((INTENT, SENT, AMBIGUOUS)))
        values: dict[str, Any] = {"state": state, "units_billed": billed, "settled_at": _now()}
        if job_id is not None:
            values["job_id"] = job_id
        with self.engine.begin() as connection:
            unit = select(units.c.units_reserved, units.c.day, units.c.month).where(open_unit)
            if connection.dialect.name != "sqlite":  # two closers of one unit: the second finds it closed
                unit = unit.with_for_update()
            row = connection.execute(unit).first()
            if row is None:
                return
            delta = billed - int(row.units_reserved)
            if delta:  # the unit's row, then the budget's: no transaction locks them the other way round
                self._lock_periods(connection, row.day, row.month)
                self._add(connection, row.day, row.month, delta)
            connection.execute(units.update().where(open_unit).values(**values))

    def attach_result(self, *, serial: str, job_id: str, uri: str, sha256: str) -> None:
        """Where the report a unit bought was archived (what a later run may reuse)."""
        with self.engine.begin() as connection:
            connection.execute(
                units.update()
                .where(units.c.account == self.account, units.c.serial == serial, units.c.job_id == job_id)
                .values(result_uri=uri, result_sha256=sha256)
            )

    # ------------------------------------------------------------------ reuse

    def reusable_report(self, serial: str, subject: str, variant: str, since: dt.datetime) -> dict[str, Any] | None:
        """The newest report of this kind, subject and variant *bought* since ``since`` (a reuse never
        extends the window), with ``result_uri``/``result_sha256`` of its newest archived copy, if any."""
        bought = (
            select(units)
            .where(
                units.c.account == self.account,
                units.c.serial == serial,
                units.c.subject == subject,
                units.c.variant == variant,
                units.c.created_at >= since,
                units.c.job_id.isnot(None),
                units.c.state == ANSWERED,
            )
            .order_by(units.c.created_at.desc(), units.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as connection:
            row = connection.execute(bought).first()
            if row is None:
                return None
            found = schema.row_dict(row)
            copies = (
                select(units.c.result_uri, units.c.result_sha256)
                .where(
                    units.c.account == self.account,
                    (units.c.id == found["id"]) | (units.c.reused_from == found["id"]),
                    units.c.result_uri.isnot(None),
                    units.c.result_sha256.isnot(None),
                )
                .order_by(units.c.id.desc())
                .limit(1)
            )
            copy = connection.execute(copies).first()
        found["result_uri"], found["result_sha256"] = (copy[0], copy[1]) if copy else (None, None)
        return found

    def record_reuse(self, purchase: Purchase, source: dict[str, Any], task: TaskRef | None, **result: Any) -> int:
        """A unit served from an earlier purchase: recorded, billed 0, counted as reused."""
        now = _now()
        day, month = self.periods(now)
        with self.engine.begin() as connection:
            inserted = connection.execute(
                units.insert().values(
                    **self._unit_columns(purchase, task, now, day, month),
                    state=REUSED,
                    units_reserved=0,
                    units_billed=0,
                    units_reused=purchase.units,
                    reused_from=source["id"],
                    job_id=source.get("job_id"),
                    settled_at=now,
                    result_uri=result.get("uri", source.get("result_uri")),
                    result_sha256=result.get("sha256", source.get("result_sha256")),
                )
            )
            return _new_id(inserted)

    def cached_results(self, serial: str, keys: Sequence[str], since: dt.datetime) -> dict[str, tuple[Any, str]]:
        """PatSnap's items for these patents (normalised keys) fetched since ``since``: key -> (item, fetched_at)."""
        found: dict[str, tuple[Any, str]] = {}
        with self.engine.connect() as connection:
            for chunk in _chunks(list(keys), 500):
                query = select(results.c.patent, results.c.payload, results.c.fetched_at).where(
                    results.c.account == self.account,
                    results.c.serial == serial,
                    results.c.patent.in_(chunk),
                    results.c.fetched_at >= since,
                )
                for patent, payload, fetched_at in connection.execute(query):
                    found[patent] = (json.loads(payload), _iso(fetched_at))
        return found

    def store_results(self, serial: str, items: dict[str, Any], fetched_at: dt.datetime) -> None:
        """Keep the latest item per patent (what ``reuse_within`` serves later)."""
        if not items:
            return
        with self.engine.begin() as connection:
            dialect = connection.dialect.name
            insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
            for chunk in _chunks(sorted(items.items()), 500):  # one lock order for every writer
                rows = [
                    {
                        "account": self.account,
                        "serial": serial,
                        "patent": key,
                        "fetched_at": fetched_at,
                        "payload": json.dumps(item, default=float, ensure_ascii=False),
                    }
                    for key, item in chunk
                ]
                if insert is None:
                    keys = [r["patent"] for r in rows]
                    connection.execute(
                        results.delete().where(
                            results.c.account == self.account, results.c.serial == serial, results.c.patent.in_(keys)
                        )
                    )
                    connection.execute(results.insert(), rows)
                    continue
                statement: Any = insert(results)
                connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=["account", "serial", "patent"],
                        set_={"fetched_at": statement.excluded.fetched_at, "payload": statement.excluded.payload},
                    ),
                    rows,
                )

    # ------------------------------------------------------------------ reading

    def rows(self, since_day: str | None = None, until_day: str | None = None) -> list[dict[str, Any]]:
        """Every unit of the account between two days (inclusive, budget time zone), oldest first."""
        query = select(units).where(units.c.account == self.account)
        if since_day:
            query = query.where(units.c.day >= since_day)
        if until_day:
            query = query.where(units.c.day <= until_day)
        with self.engine.connect() as connection:
            return [schema.row_dict(row) for row in connection.execute(query.order_by(units.c.id))]

    def rows_between(self, begin: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
        """Every unit of the account sent (or, if never sent, created) in ``[begin, end)``, oldest first."""
        when = func.coalesce(units.c.sent_at, units.c.created_at)
        begin, end = begin.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)
        query = select(units).where(units.c.account == self.account, when >= begin, when < end)
        with self.engine.connect() as connection:
            return [schema.row_dict(row) for row in connection.execute(query.order_by(units.c.id))]

    def reserved(self, period: str) -> int:
        """Units reserved or spent in a period (``day:YYYY-MM-DD``, ``month:YYYY-MM``)."""
        with self.engine.connect() as connection:
            value = connection.execute(select(budgets.c.reserved).where(self._period_rows((period,)))).scalar()
        return int(value or 0)

    def record_reconciliation(self, result: dict[str, Any], task: TaskRef | None = None) -> None:
        """Keep a reconciliation's outcome per endpoint, replacing the last one of the same period (an
        upsert: two reconciliations of one period racing both succeed, the later one wins)."""
        start, end = result["period"]
        now = _now()
        rows: dict[str, dict[str, Any]] = {}
        for entry in result["endpoints"]:
            endpoint = str(entry["path"])[:255]
            rows[endpoint] = {
                "account": self.account,
                "period_start": start,
                "period_end": end,
                "endpoint": endpoint,
                "serial": str(entry.get("serial") or "")[:255],
                "fee_times": int(entry.get("fee_times") or 0),
                "ledger_units": entry.get("ledger_units"),
                "ambiguous_units": entry.get("ambiguous_units"),
                "difference": entry.get("difference"),
                "closed": 0 if entry.get("partial") else 1,
                "reconciled_at": now,
                "dag_id": task.dag_id if task else None,
                "run_id": task.run_id if task else None,
                "task_id": task.task_id if task else None,
                "map_index": task.map_index if task else None,
            }
        period = and_(
            reconciliations.c.account == self.account,
            reconciliations.c.period_start == start,
            reconciliations.c.period_end == end,
        )
        keys = ["account", "period_start", "period_end", "endpoint"]
        with self.engine.begin() as connection:
            gone = and_(period, reconciliations.c.endpoint.not_in(list(rows))) if rows else period
            connection.execute(reconciliations.delete().where(gone))
            if not rows:
                return
            ordered = [rows[endpoint] for endpoint in sorted(rows)]  # one lock order for every writer
            insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(connection.dialect.name)
            if insert is None:
                connection.execute(
                    reconciliations.delete().where(and_(period, reconciliations.c.endpoint.in_(list(rows))))
                )
                connection.execute(reconciliations.insert(), ordered)
                return
            statement: Any = insert(reconciliations)
            changed = {name: statement.excluded[name] for name in ordered[0] if name not in keys}
            connection.execute(statement.on_conflict_do_update(index_elements=keys, set_=changed), ordered)

    def resolve_ambiguous(self, ids: Iterable[int], *, billed: bool) -> None:
        """Reconciliation settled these ambiguous units: they were billed (or not)."""
        for unit_id in ids:
            with self.engine.begin() as connection:
                row = connection.execute(select(units.c.units_reserved).where(units.c.id == unit_id)).first()
            if row is not None:
                self._close(unit_id, ANSWERED if billed else REFUSED, billed=int(row[0]) if billed else 0)


def _new_id(inserted: Any) -> int:
    key = inserted.inserted_primary_key
    assert key is not None and key[0] is not None, "the database gave no id for the new unit"
    return int(key[0])


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # SQLite gives naive UTC back
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat(timespec="seconds")
    return str(value)
