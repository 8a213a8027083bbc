"""The one place that knows where Airflow 2.11 and 3.x keep the names this provider uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow import __version__ as _airflow_version
from airflow.triggers.base import BaseTrigger, TriggerEvent
from packaging.version import Version

_BASE = Version(Version(_airflow_version).base_version)
AIRFLOW_V_3_0_PLUS = Version("3.0.0") <= _BASE
AIRFLOW_V_3_3_PLUS = Version("3.3.0") <= _BASE

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import BaseHook, BaseOperator, BaseOperatorLink, BaseSensorOperator, PokeReturnValue, conf
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.sdk.log import mask_secret
else:  # Airflow 2.11
    from airflow.configuration import conf  # type: ignore[no-redef,assignment,attr-defined,unused-ignore]
    from airflow.exceptions import (  # type: ignore[no-redef,assignment,attr-defined,unused-ignore]
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,assignment,attr-defined,unused-ignore]
    from airflow.models import BaseOperator  # type: ignore[no-redef,assignment,attr-defined,unused-ignore]
    from airflow.models.baseoperatorlink import BaseOperatorLink  # type: ignore[no-redef,assignment,attr-defined,unused-ignore]
    from airflow.sensors.base import BaseSensorOperator, PokeReturnValue  # type: ignore[no-redef,assignment,attr-defined,unused-ignore]
    from airflow.utils.log.secrets_masker import mask_secret  # type: ignore[no-redef,assignment,attr-defined,unused-ignore]


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
    "TaskDeferred",
    "TriggerEvent",
    "aget_connection",
    "asset",
    "conf",
    "default_deferrable",
    "mask_secret",
    "object_storage_path",
]
