"""Where the owner of billable state keeps its records: one interface, several stores.

The task state store (Airflow 3.3+) outlives a killed worker and is read by the next attempt of
the same task instance; it is the durable backend. Before 3.3 nothing outlives an attempt, so the
records live in memory for the attempt only, and the owner makes up for it by failing without
Airflow retries wherever a retry could buy twice. A cross-run ledger records the same lifecycle
through the same interface.
"""

from __future__ import annotations

from typing import Any, Protocol

from airflow_provider_patsnap.version_compat import AIRFLOW_V_3_3_PLUS


class Backend(Protocol):
    """Key/value records of one task instance (JSON values)."""

    #: Whether a later attempt of the task instance will see what is put here.
    durable: bool
    name: str

    def get(self, key: str) -> Any: ...

    def put(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...


class StateStoreBackend:
    """Airflow's task state store (``context["task_state_store"]``, 3.3+)."""

    durable = True
    name = "task state store"

    def __init__(self, store: Any) -> None:
        self.store = store

    def get(self, key: str) -> Any:
        return self.store.get(key)

    def put(self, key: str, value: Any) -> None:
        self.store.set(key, value)

    def delete(self, key: str) -> None:
        self.store.delete(key)


class AttemptBackend:
    """Records that last as long as this attempt (Airflow before 3.3, or no store in the context)."""

    durable = False
    name = "this attempt only"

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def put(self, key: str, value: Any) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def backend_for(context: Any) -> Backend:
    store = context.get("task_state_store") if AIRFLOW_V_3_3_PLUS and hasattr(context, "get") else None
    return StateStoreBackend(store) if store is not None else AttemptBackend()
