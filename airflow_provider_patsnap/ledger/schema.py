"""The ledger's tables, their version, and how a database is brought to this version.

SQLAlchemy Core only (no ORM), written for both SQLAlchemy 1.4 (Airflow 2.11) and 2.x (Airflow 3).
The schema version lives in ``patsnap_ledger_meta``; :func:`ensure_schema` creates the tables on a
new database, applies every migration step after the stored version in order (each step is a
function here, keyed by the version it produces), and refuses a database written by a newer
provider. Adding a column is one more step in ``MIGRATIONS`` and one more version: never an edit of
a released one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    inspect,
    select,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

SCHEMA_VERSION = 2
VERSION_KEY = "schema_version"

metadata = MetaData()

meta = Table(
    "patsnap_ledger_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

#: One row per billable unit bought (or refused, or reused): a create, an indicator batch, a billable call.
units = Table(
    "patsnap_units",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account", String(128), nullable=False),  # the host and a hash of the principal, never a secret
    Column("endpoint", String(255), nullable=False),  # the path billed
    Column("serial", String(255), nullable=False),  # R001, R002, P035-P040, or the path of a generic call
    Column("subject", String(512), nullable=False),  # e.g. company_name=ACME, patent_number=CN1, batch:<key>
    Column("variant", String(64), nullable=False),  # e.g. pdf/logo for reports, "" otherwise
    Column("state", String(16), nullable=False),  # intent, sent, answered, ambiguous, refused, reused
    Column("units_reserved", Integer, nullable=False),
    Column("units_billed", Integer),  # set when settled (PatSnap answered)
    Column("units_reused", Integer, nullable=False),
    Column("reused_from", Integer),
    Column("job_id", String(64)),
    Column("dag_id", String(250)),
    Column("run_id", String(250)),
    Column("task_id", String(250)),
    Column("map_index", Integer),
    Column("task_run", Integer),  # ti.max_tries: the attempts of one run share it
    Column("try_number", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Column("settled_at", DateTime(timezone=True)),
    Column("day", String(10), nullable=False),  # YYYY-MM-DD in the budget time zone
    Column("month", String(7), nullable=False),
    Column("result_uri", String(1024)),
    Column("result_sha256", String(64)),
)
Index("ix_patsnap_units_account_day", units.c.account, units.c.day)
Index("ix_patsnap_units_reuse", units.c.account, units.c.serial, units.c.subject, units.c.variant, units.c.created_at)
Index("ix_patsnap_units_task", units.c.dag_id, units.c.run_id, units.c.task_id, units.c.map_index)
Index("ix_patsnap_units_job", units.c.job_id)
#: v2: what the spend page lists as open questions (ambiguous and unanswered units).
open_units_index = Index("ix_patsnap_units_open", units.c.account, units.c.state)

#: Units reserved per account and period (``day:YYYY-MM-DD``, ``month:YYYY-MM``): the rows locked to
#: reserve atomically, so racing processes never pass a cap together.
budgets = Table(
    "patsnap_budget",
    metadata,
    Column("account", String(128), nullable=False),
    Column("period", String(16), nullable=False),
    Column("reserved", Integer, nullable=False),
    PrimaryKeyConstraint("account", "period"),
)

#: The latest result PatSnap returned per account, indicator and patent (the reuse cache).
results = Table(
    "patsnap_results",
    metadata,
    Column("account", String(128), nullable=False),
    Column("serial", String(255), nullable=False),
    Column("patent", String(128), nullable=False),  # the normalised input key (n:NUMBER or i:uuid)
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Column("payload", Text, nullable=False),  # PatSnap's item, JSON
    PrimaryKeyConstraint("account", "serial", "patent"),
)

#: v2: the last reconciliation of each period and endpoint (what the spend page shows as differences).
reconciliations = Table(
    "patsnap_reconciliations",
    metadata,
    Column("account", String(128), nullable=False),
    Column("period_start", String(10), nullable=False),  # YYYY-MM-DD, PatSnap's (China) days
    Column("period_end", String(10), nullable=False),
    Column("endpoint", String(255), nullable=False),
    Column("serial", String(255), nullable=False),
    Column("fee_times", Integer, nullable=False),  # what PatSnap's statement billed
    Column("ledger_units", Integer),
    Column("ambiguous_units", Integer),
    Column("difference", Integer),
    Column("closed", Integer, nullable=False),  # 1: the period is over (plus the statement lag)
    Column("reconciled_at", DateTime(timezone=True), nullable=False),
    Column("dag_id", String(250)),
    Column("run_id", String(250)),
    Column("task_id", String(250)),
    Column("map_index", Integer),
    PrimaryKeyConstraint("account", "period_start", "period_end", "endpoint"),
)


def _v2(connection: Connection) -> None:
    reconciliations.create(connection, checkfirst=True)
    open_units_index.create(connection, checkfirst=True)


#: version -> the step that brings a database of version - 1 to it.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _v2}


class SchemaError(RuntimeError):
    """The database holds a ledger this provider cannot use."""


def _stored_version(connection: Connection) -> int | None:
    if not inspect(connection).has_table(meta.name):
        return None
    row = connection.execute(select(meta.c.value).where(meta.c.key == VERSION_KEY)).first()
    return int(row[0]) if row else None


def stored_version(engine: Engine) -> int | None:
    """The version a database's ledger is at (None: no ledger there), read without changing anything."""
    with engine.connect() as connection:
        return _stored_version(connection)


def ensure_schema(engine: Engine) -> int:
    """Create or migrate the ledger's tables; return the version. Safe when processes race to do it."""
    for _ in range(3):
        try:
            with engine.begin() as connection:
                return _ensure(connection)
        except (IntegrityError, OperationalError, ProgrammingError):
            continue  # another process created a table or the version row first: look again
    with engine.begin() as connection:
        return _ensure(connection)


def _ensure(connection: Connection) -> int:
    version = _stored_version(connection)
    if version is None:
        metadata.create_all(connection, checkfirst=True)
        if connection.execute(select(meta.c.value).where(meta.c.key == VERSION_KEY)).first() is None:
            connection.execute(meta.insert().values(key=VERSION_KEY, value=str(SCHEMA_VERSION)))
        return SCHEMA_VERSION
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"the ledger's schema is version {version}, newer than this provider's ({SCHEMA_VERSION}): "
            "upgrade airflow-provider-patsnap on this machine"
        )
    for step in range(version + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[step](connection)
        connection.execute(meta.update().where(meta.c.key == VERSION_KEY).values(value=str(step)))
    return SCHEMA_VERSION


def row_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)
