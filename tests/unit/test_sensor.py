"""PatsnapReportJobSensor's deferrable path: the window, Airflow's deferral timeout, soft_fail on the first look."""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_patsnap.billing import backends
from airflow_provider_patsnap.sensors.report_job import WAIT_KEY, PatsnapReportJobSensor
from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from airflow_provider_patsnap.version_compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)
from tests.support import TaskStateStore


class TI:
    max_tries = 0  # no retries configured: the run is 0


def running_job(emulator: PatsnapEmulator) -> str:
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    emulator.job_seconds = 600  # stays queued/exporting for the whole test
    return PatsnapHook().create_enterprise_report(company_name="Slow Report Co")


def sensor(job_id: str, **kwargs: Any) -> PatsnapReportJobSensor:
    return PatsnapReportJobSensor(
        task_id="wait", job_id=job_id, report_kind="enterprise", deferrable=True, poke_interval=5, **kwargs
    )


def test_airflow_is_told_the_remaining_window(emulator: PatsnapEmulator, emu_conn: str) -> None:
    job_id = running_job(emulator)
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        sensor(job_id, timeout=120).execute({})
    deferred = info.value
    end_time = deferred.trigger.end_time
    assert before + 119 <= end_time <= time.time() + 120
    # Airflow's deadline is the window plus a grace of one poll interval: a backstop behind the trigger's own.
    assert deferred.timeout is not None
    assert 120 <= deferred.timeout.total_seconds() <= 126


def test_a_retry_keeps_the_first_attempts_window(
    emulator: PatsnapEmulator, emu_conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backends, "AIRFLOW_V_3_3_PLUS", True)
    store = TaskStateStore()
    first_started = time.time() - 100  # the first attempt began 100 s ago
    store.data[WAIT_KEY] = {"started": first_started, "run": 0}
    context = {"task_state_store": store, "ti": TI(), "task": sensor("1")}

    job_id = running_job(emulator)
    with pytest.raises(TaskDeferred) as info:
        sensor(job_id, timeout=120).execute(context)
    assert info.value.trigger.end_time == pytest.approx(first_started + 120, abs=0.01)
    assert info.value.timeout.total_seconds() <= 20 + 5 + 1

    store.data[WAIT_KEY]["started"] = time.time() - 500  # the window is already over
    with pytest.raises(AirflowSensorTimeout, match="did not finish in time"):
        sensor(job_id, timeout=120).execute(context)
    with pytest.raises(AirflowSkipException):
        sensor(job_id, timeout=120, soft_fail=True).execute(context)


def test_the_first_window_is_recorded_for_later_attempts(
    emulator: PatsnapEmulator, emu_conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backends, "AIRFLOW_V_3_3_PLUS", True)
    store = TaskStateStore()
    context = {"task_state_store": store, "ti": TI(), "task": sensor("1")}
    job_id = running_job(emulator)
    with pytest.raises(TaskDeferred):
        sensor(job_id).execute(context)
    assert abs(store.data[WAIT_KEY]["started"] - time.time()) < 5


@pytest.mark.parametrize("soft_fail", [True, False])
def test_soft_fail_applies_to_the_first_synchronous_look(
    emulator: PatsnapEmulator, emu_conn: str, soft_fail: bool
) -> None:
    unknown = sensor("1234567890123456789", soft_fail=soft_fail)  # PatSnap answers 68300004: permanent
    expected = AirflowSkipException if soft_fail else AirflowFailException
    with pytest.raises(expected):
        unknown.execute({})
