"""A small real Airflow 3.3 deployment for the chaos tests (see test_deployment.py's docstring).

SQLite, LocalExecutor, ``api-server`` (127.0.0.1, a free port, one worker: the execution API the workers
talk to), ``dag-processor``, ``scheduler --skip-serve-logs`` and ``triggerer --skip-serve-logs``, each its
own process group with its output in ``<home>/components/<name>.log``; the PatSnap connection points at
an in-test emulator.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from tests.chaos._procs import AIRFLOW, MetadataDB, Proc, Procs, airflow_env, free_port, run, tail, wait_for

RETRY_POLICY = '''"""Test deployment only: retry after 1 s instead of the example DAGs' production 5 minutes."""
from datetime import timedelta


def task_policy(task):
    task.retry_delay = timedelta(seconds=1)
'''


class Deployment:
    """The running components, the emulator they use, and what the scenarios need to look at.

    ``dags``: the DAGs folder; ``dag_ids``: the DAGs to wait for and unpause; ``fast_retries``: a cluster
    policy sets every task's ``retry_delay`` to 1 s (the example DAGs wait 5 minutes between tries).
    """

    def __init__(
        self,
        home: Path,
        emu: PatsnapEmulator,
        procs: Procs,
        *,
        dags: Path,
        dag_ids: tuple[str, ...],
        fast_retries: bool = True,
        **env: str,
    ) -> None:
        self.home = home
        self.emu = emu
        self.procs = procs
        self.dag_ids = dag_ids
        self.port = free_port()
        self.archive = home / "archive"
        self.lake = home / "lake"
        self.portfolio = home / "portfolio.txt"
        self.logs = home / "components"
        self.db = MetadataDB(home / "airflow.db")
        (home / "config").mkdir()
        if fast_retries:
            (home / "config" / "airflow_local_settings.py").write_text(RETRY_POLICY)
        self.env = airflow_env(
            home,
            dags,
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="8",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{self.port}/execution/",
            AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{self.port}",
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
            # Only the runs a test triggers: no scheduled run of the @weekly DAGs on unpause.
            AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
            # A lost worker is noticed after 20 s instead of 5 minutes (scenario a).
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="20",
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="2",
            # A dead triggerer's triggers are taken over after 6 s instead of 30 (scenario b).
            AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="1",
            AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD="6",
            PATSNAP_ARCHIVE_URI=self.archive.as_uri(),
            PATSNAP_LAKE_URI=self.lake.as_uri(),
            PATSNAP_POKE_INTERVAL="1",
            PATSNAP_PORTFOLIO_FILE=str(self.portfolio),
            # A SQLite ledger every process shares (the example refresh reuses reports: that needs one).
            AIRFLOW_CONN_PATSNAP_DEFAULT=emu.connection_json(
                qps=0, retry_wait_min=0.05, retry_wait_max=0.2, ledger_url=f"sqlite:///{home}/ledger.db"
            ),
            **env,
        )
        self.components: dict[str, Proc] = {}
        self.triggerer: Proc | None = None
        self.started_in = 0.0  # seconds from nothing to a deployment ready for runs

    # ----- lifecycle

    def start(self) -> None:
        run([*AIRFLOW, "db", "migrate"], self.env, 180, self.logs / "db-migrate.log", self.procs)
        port = str(self.port)
        self.start_component("api-server", "api-server", "--host", "127.0.0.1", "--port", port, "--workers", "1")
        self.start_component("dag-processor", "dag-processor")
        self.start_component("scheduler", "scheduler", "--skip-serve-logs")
        self.triggerer = self.start_component("triggerer-1", "triggerer", "--skip-serve-logs")
        wait_for(self.api_healthy, 180, "the api-server to answer its health check", self.diagnostics, 0.5)
        wait_for(lambda: set(self.dag_ids) <= self.db.dag_ids(), 180, "the DAG processor to parse the DAGs")
        wait_for(lambda: self.live_job("SchedulerJob"), 120, "the scheduler's heartbeat", self.diagnostics, 0.5)
        wait_for(lambda: self.live_job("TriggererJob"), 120, "the triggerer's heartbeat", self.diagnostics, 0.5)
        self.cli("dags", "unpause", "--treat-dag-id-as-regex", "-y", f"^({'|'.join(self.dag_ids)})$")

    def start_component(self, name: str, *args: str) -> Proc:
        proc = self.components[name] = self.procs.start(name, [*AIRFLOW, *args], self.env, self.logs / f"{name}.log")
        return proc

    def api_healthy(self) -> bool:
        for proc in self.components.values():
            assert proc.alive, f"{proc.name} exited during start-up\n{proc.report(60)}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/monitor/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def live_job(self, job_type: str) -> int | None:
        """Id of the newest running job of this type with a heartbeat in the last 10 s (DB clock: UTC)."""
        rows = self.db.rows(
            "SELECT id FROM job WHERE job_type = ? AND state = 'running' AND end_date IS NULL "
            "AND latest_heartbeat > datetime('now', '-10 seconds') ORDER BY id DESC LIMIT 1",
            job_type,
        )
        return rows[0][0] if rows else None

    def cli(self, *args: str, timeout: float = 120) -> str:
        return run([*AIRFLOW, *args], self.env, timeout, self.logs / "cli.log", self.procs)[1]

    # ----- runs

    def prepare(self, **knobs: Any) -> int:
        """An idle deployment, empty archive and lake, zeroed counters, these emulator knobs.
        Returns how many jobs the emulator had made before (this scenario's jobs come after)."""
        wait_for(
            lambda: not self.db.rows("SELECT run_id FROM dag_run WHERE state IN ('queued', 'running')"),
            120,
            "earlier runs to finish",
            self.diagnostics,
            0.5,
        )
        for root in (self.archive, self.lake):
            shutil.rmtree(root, ignore_errors=True)
        self.emu.end_outages()
        defaults = {"job_seconds": 3.0, "report_size": None, "cdn_bandwidth": None, "create_gateway_timeouts": 0}
        for name, value in {**defaults, **knobs}.items():
            setattr(self.emu, name, value)
        self.emu.reset_stats()
        return len(self.emu.job_ids())

    def trigger(self, dag_id: str, label: str) -> str:
        run_id = f"chaos-{label}-{int(time.time())}"
        self.cli("dags", "trigger", dag_id, "--run-id", run_id)
        return run_id

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        return wait_for(
            lambda: (state := self.db.run_state(dag_id, run_id)) in ("success", "failed") and state,
            timeout,
            f"run {run_id} of {dag_id} to finish",
            lambda: self.diagnostics(dag_id, run_id),
            0.5,
        )

    def tis(self, dag_id: str, run_id: str) -> dict[tuple[str, int], dict[str, Any]]:
        return {(t["task_id"], t["map_index"]): t for t in self.db.task_instances(dag_id, run_id)}

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int, attempt: int) -> Path:
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder /= f"map_index={map_index}"
        return folder / f"attempt={attempt}.log"

    def diagnostics(self, dag_id: str | None = None, run_id: str | None = None) -> str:
        parts = [proc.report(30) for proc in self.components.values()]
        if dag_id and run_id:
            with contextlib.suppress(Exception):
                states = [
                    f"  {t['task_id']}[{t['map_index']}] {t['state']} try {t['try_number']}"
                    for t in self.db.task_instances(dag_id, run_id)
                ]
                parts.append(f"--- run {run_id}: {self.db.run_state(dag_id, run_id)}\n" + "\n".join(states))
            for log in sorted((self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}").rglob("*.log")):
                parts.append(f"--- {log.relative_to(self.home)}:\n{tail(log, 8)}")
        parts.append(f"--- emulator stats: {self.emu.stats}")
        return "\n".join(parts)
