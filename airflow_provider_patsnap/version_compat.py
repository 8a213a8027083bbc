"""The one place that knows where Airflow 2.11 and 3.x keep the names this provider uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow import __version__ as _airflow_version
from airflow.triggers.base import BaseTrigger, TriggerEvent
from packaging.version import Version

_BASE = Version(Version(_airflow_version).base_version)
AIRFLOW_V_3_0_PLUS = Version("3.0.0") <= _BASE
AIRFLOW_V_3_3_PLUS = Version("3.3.0") <= _BASE

# Each name is tried at its newest home first: some reached ``airflow.sdk`` only in 3.1 (BaseHook,
# the exceptions), so the Airflow major version alone does not tell where to look.
try:
    from airflow.sdk import BaseHook
except ImportError:  # Airflow 2.11, 3.0
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,assignment,attr-defined,unused-ignore]
try:
    from airflow.sdk import BaseOperator, BaseOperatorLink, BaseSensorOperator, PokeReturnValue
except ImportError:  # Airflow 2.11
    from airflow.models import BaseOperator  # type: ignore[no-redef,assignment,attr-defined,unused-ignore]
    from airflow.models.baseoperatorlink import (  # type: ignore[no-redef,assignment,attr-defined,unused-ignore]
        BaseOperatorLink,
    )
    from airflow.sensors.base import (  # type: ignore[no-redef,assignment,attr-defined,unused-ignore]
        BaseSensorOperator,
        PokeReturnValue,
    )
try:
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
except ImportError:  # Airflow 2.11, 3.0
    from airflow.exceptions import (  # type: ignore[no-redef,assignment,attr-defined,unused-ignore]
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
try:
    from airflow.sdk import conf
except ImportError:  # Airflow 2.11, 3.0
    from airflow.configuration import conf  # type: ignore[no-redef,assignment,attr-defined,unused-ignore]
try:
    from airflow.sdk.log import mask_secret
except ImportError:  # Airflow 2.11, 3.0
    from airflow.utils.log.secrets_masker import (  # type: ignore[no-redef,assignment,attr-defined,unused-ignore]
        mask_secret,
    )

try:
    from airflow.sdk.observability.stats import Stats
except ImportError:  # Airflow 2.11, 3.0-3.2
    try:
        from airflow.sdk._shared.observability.metrics.stats import Stats  # type: ignore[no-redef]
    except ImportError:
        from airflow.stats import Stats  # type: ignore[no-redef,assignment,attr-defined,unused-ignore]

try:
    from airflow.sdk import ResumableJobMixin
except ImportError:  # before Airflow 3.3: no task state store to resume from

    class ResumableJobMixin:  # type: ignore[no-redef]
        """Stand-in: each try submits, polls and returns, as operators did before the state store."""

        external_id_key = "remote_job_id"

        def __init__(self, *, durable: bool = False, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.durable = False

        def execute_resumable(self, context: Any) -> Any:
            external_id = self.submit_job(context)  # type: ignore[attr-defined]
            self.poll_until_complete(external_id, context)  # type: ignore[attr-defined]
            return self.get_job_result(external_id, context)  # type: ignore[attr-defined]


if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def object_storage_path(uri: str, conn_id: str | None = None) -> ObjectStoragePath:
    """``ObjectStoragePath`` (imported on use: fsspec and friends are heavy for DAG parsing)."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import ObjectStoragePath as _Path
    else:
        from airflow.io.path import ObjectStoragePath as _Path  # type: ignore[no-redef,assignment,attr-defined,unused-ignore]
    return _Path(uri, conn_id=conn_id)


def asset(uri: str) -> Any:
    """An ``Asset`` (3.x) or ``Dataset`` (2.11) for ``uri``."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import Asset

        return Asset(uri)
    from airflow.datasets import Dataset

    return Dataset(uri)


async def aget_connection(conn_id: str) -> Any:
    """Fetch a connection without blocking the triggerer's event loop."""
    if hasattr(BaseHook, "aget_connection"):
        return await BaseHook.aget_connection(conn_id)
    from asgiref.sync import sync_to_async

    return await sync_to_async(BaseHook.get_connection)(conn_id)


async def amask_secret(secret: str) -> None:
    """``mask_secret`` for code on the triggerer's event loop (the sync one talks to the supervisor)."""
    try:
        from airflow.sdk.log import amask_secret as _amask
    except ImportError:
        from asgiref.sync import sync_to_async

        await sync_to_async(mask_secret)(secret)
    else:
        await _amask(secret)


def current_context() -> Any:
    """The running task's context, or None outside a task (a hook used from a script)."""
    try:
        from airflow.sdk import get_current_context
    except ImportError:  # Airflow 2.11
        try:
            from airflow.operators.python import get_current_context  # type: ignore[no-redef,attr-defined,unused-ignore]
        except ImportError:
            return None
    try:
        return get_current_context()
    except Exception:  # no task is running here
        return None


def default_deferrable() -> bool:
    return conf.getboolean("operators", "default_deferrable", fallback=False)


__all__ = [
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "BaseTrigger",
    "PokeReturnValue",
    "ResumableJobMixin",
    "Stats",
    "TaskDeferred",
    "TriggerEvent",
    "aget_connection",
    "amask_secret",
    "asset",
    "conf",
    "current_context",
    "default_deferrable",
    "mask_secret",
    "object_storage_path",
]
