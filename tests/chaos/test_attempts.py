"""Attempts nobody scripted, on a real deployment (LocalExecutor, scheduler, api-server, triggerer):

1. a deploy between attempts: the DAG file's ``retries`` changes while the task is up for retry, and
   the retry must still reattach to the report the first try bought (0.2 bought a second one);
2. a worker killed after ``execute`` returned (the indicators were written, success was not
   recorded): the retry must return the published output without buying the portfolio again;
3. an ``execution_timeout`` while the create waits in the rate limiter: nothing was sent, so the
   retry creates, once (0.2 recorded "may have run" and every retry failed);
4. a portfolio file rewritten while the task waits for its retry, after a worker was killed part-way:
   the retry buys only the rest of the list the run started with.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from airflow_provider_patsnap.version_compat import AIRFLOW_V_3_3_PLUS
from tests.chaos._deployment import Deployment
from tests.chaos._procs import Procs, show, wait_for
from tests.support import files_under

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="a LocalExecutor deployment on SQLite needs Airflow 3"),
]

SOURCE = Path(__file__).resolve().parent / "attempt_dags" / "patsnap_attempts.py"
DEPLOY, KILLED, TIMEOUT, CHANGED = (
    "attempts_deploy_between_retries",
    "attempts_killed_after_execute",
    "attempts_timeout_in_the_limiter",
    "attempts_portfolio_changed",
)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    with (
        tempfile.TemporaryDirectory(prefix="patsnap-chaos-attempts-") as home,
        PatsnapEmulator(job_seconds=1) as emu,
        Procs() as procs,
    ):
        dags = Path(home) / "dags"
        dags.mkdir()
        (dags / SOURCE.name).write_text(SOURCE.read_text())  # a copy the test may redeploy
        dep = Deployment(
            Path(home),
            emu,
            procs,
            dags=dags,
            dag_ids=(DEPLOY, KILLED, TIMEOUT, CHANGED),
            fast_retries=False,  # the DAGs set their own retry delays
            AIRFLOW_CONN_PATSNAP_SLOW=emu.connection_json(qps=0.1),
            AIRFLOW_CONN_PATSNAP_SERIAL=emu.connection_json(qps=0, max_concurrency=1),
            AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="1",
        )
        try:
            dep.start()
        except BaseException:
            procs.kill_all()
            raise
        yield dep
        procs.kill_all()
        assert not emu.errors, f"emulator raised internally: {emu.errors}"


def ti_of(dep: Deployment, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    return dep.tis(dag_id, run_id)[(task_id, -1)]


def wait_for_retry(dep: Deployment, dag_id: str, run_id: str, task_id: str, what: str) -> None:
    """Until the task waits for its retry (the window in which a test changes the world)."""
    wait_for(
        lambda: ti_of(dep, dag_id, run_id, task_id)["state"] == "up_for_retry",
        120,
        what,
        lambda: dep.diagnostics(dag_id, run_id),
        0.2,
    )


def test_a_deploy_between_attempts_does_not_buy_a_second_report(deployment: Deployment, capsys: Any) -> None:
    dep = deployment
    dep.prepare(job_seconds=1)
    run_id = dep.trigger(DEPLOY, "deploy")
    wait_for_retry(dep, DEPLOY, run_id, "create", "the first try to die after its create")
    assert dep.emu.stats["creates"] == 1
    # A deploy while the task waits for its retry: the DAG file now says retries=5.
    dag_file = dep.home / "dags" / SOURCE.name
    dag_file.write_text(re.sub(r"^RETRIES = 2$", "RETRIES = 5", dag_file.read_text(), flags=re.M))
    assert "RETRIES = 5" in dag_file.read_text()

    state = dep.wait_run(DEPLOY, run_id, 180)

    ti = ti_of(dep, DEPLOY, run_id, "create")
    assert state == "success" and ti["try_number"] == 2, dep.diagnostics(DEPLOY, run_id)
    assert dep.emu.stats["creates_by_subject"] == {"R001 company_name=Deploy Between Retries Ltd": 1}
    retry_log = dep.task_log(DEPLOY, run_id, "create", -1, 2).read_text(errors="replace")
    assert "Reattached: an earlier attempt already made the R001 create" in retry_log, retry_log[-3000:]
    show(
        capsys,
        "deploy between attempts: try 1 created and died, retries 2 -> 5 redeployed, try 2 reattached; creates=1",
    )


def test_a_worker_killed_after_execute_returned_does_not_buy_the_portfolio_again(
    deployment: Deployment, capsys: Any
) -> None:
    dep = deployment
    dep.prepare()
    run_id = dep.trigger(KILLED, "killed")

    state = dep.wait_run(KILLED, run_id, 180)

    ti = ti_of(dep, KILLED, run_id, "indicators")
    assert state == "success" and ti["try_number"] == 2, dep.diagnostics(KILLED, run_id)
    calls = dep.emu.stats["calls"].get("GET /patent-valuation-data/legal_indicators", 0)
    assert calls == 3, calls  # three batches, bought once: the retry called nothing
    assert dep.emu.billed("/legal_indicators") == 250
    (output,) = files_under(dep.lake)  # and nothing left beside it
    assert output.name == "legal_indicators.jsonl" and len(output.read_text().splitlines()) == 250
    first_try = dep.task_log(KILLED, run_id, "indicators", -1, 1).read_text(errors="replace")
    assert "Wrote 250 record(s)" in first_try, first_try[-3000:]
    retry_log = dep.task_log(KILLED, run_id, "indicators", -1, 2).read_text(errors="replace")
    assert "already wrote" in retry_log and "no call" in retry_log, retry_log[-3000:]
    show(
        capsys,
        f"killed after execute: try 1 wrote 250 records and was SIGKILLed; try 2 returned them; P037 calls={calls}",
    )


def test_a_timeout_while_the_create_waits_for_its_slot_lets_the_retry_create_once(
    deployment: Deployment, capsys: Any
) -> None:
    dep = deployment
    dep.prepare(job_seconds=1)
    run_id = dep.trigger(TIMEOUT, "timeout")

    state = dep.wait_run(TIMEOUT, run_id, 180)

    ti = ti_of(dep, TIMEOUT, run_id, "create")
    assert state == "success" and ti["try_number"] == 2, dep.diagnostics(TIMEOUT, run_id)
    assert dep.emu.stats["creates_by_subject"] == {"R001 company_name=Queued Create Co": 1}
    first_try = dep.task_log(TIMEOUT, run_id, "create", -1, 1).read_text(errors="replace")
    assert "Timeout" in first_try, first_try[-3000:]
    retry_log = dep.task_log(TIMEOUT, run_id, "create", -1, 2).read_text(errors="replace")
    assert "stopped before the R001 create was sent" in retry_log, retry_log[-3000:]
    show(capsys, "timeout in the limiter: try 1 timed out waiting for its slot (nothing sent), try 2 created once")


def test_a_portfolio_file_rewritten_between_attempts_is_not_bought(deployment: Deployment, capsys: Any) -> None:
    dep = deployment
    dep.prepare()
    original = [f"CN{800000 + i}A" for i in range(250)]  # three P037 batches
    dep.portfolio.write_text("".join(f"{n}\n" for n in original))
    run_id = dep.trigger(CHANGED, "changed")
    wait_for_retry(dep, CHANGED, run_id, "indicators", "the first try to die after two batches")
    first_calls = dep.emu.stats["calls"].get("GET /patent-valuation-data/legal_indicators", 0)
    # While the task waits for its retry, an upstream job rewrites the file.
    dep.portfolio.write_text("".join(f"US{900000 + i}B\n" for i in range(250)))

    state = dep.wait_run(CHANGED, run_id, 180)

    ti = ti_of(dep, CHANGED, run_id, "indicators")
    assert state == "success" and ti["try_number"] == 2, dep.diagnostics(CHANGED, run_id)
    calls = dep.emu.stats["calls"].get("GET /patent-valuation-data/legal_indicators", 0)
    assert first_calls in (2, 3) and calls - first_calls == 1, (first_calls, calls)  # only the batch not kept
    assert dep.emu.billed("/legal_indicators") <= 250 + 50  # at most the last batch, in flight at the kill, twice
    (output,) = files_under(dep.lake)  # and nothing left beside it
    assert [line.split('"pn": "')[1].split('"')[0] for line in output.read_text().splitlines()] == original
    retry_log = dep.task_log(CHANGED, run_id, "indicators", -1, 2).read_text(errors="replace")
    assert "Using the 250 patent(s) this run started with" in retry_log, retry_log[-3000:]
    assert "Resumed: 2 batch(es) came from an earlier attempt's checkpoint" in retry_log, retry_log[-3000:]
    show(
        capsys,
        f"portfolio file rewritten between attempts: try 1 killed after 2 batches, try 2 fetched 1 batch of the "
        f"run's list; P037 calls={calls}",
    )
