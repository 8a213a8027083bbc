"""A real multi-worker run of the enterprise refresh example (``make fleet-demo``; a script, not a test).

In a temporary AIRFLOW_HOME: redis-server on a free 127.0.0.1 port (Celery broker in DB 0, results in
DB 1, the PatSnap account's shared rate budget in DB 2), the PatSnap emulator in this process
(``qps_limit=2``: the account's QPS, enforced server-side), and Airflow 3 on CeleryExecutor with a
SQLite metadata DB: ``api-server`` (127.0.0.1, free port; the execution API), ``dag-processor``,
``scheduler``, ``triggerer`` and two ``airflow celery worker`` processes (``-H w1`` / ``-H w2``,
concurrency 2 each), every component with its log server off so nothing listens beyond loopback.
The connection has ``qps=2`` and ``rate_limit_url=redis://.../2``: every worker and the triggerer
draw from one account budget. Its ledger is a throwaway PostgreSQL cluster on 127.0.0.1 (Debian's
``postgresql``, initdb/pg_ctl) with a daily budget of ``COMPANIES + 1`` units.

It triggers one run of ``patsnap_enterprise_report_refresh_stepwise`` (the scheduler's own runs are
off), waits for it, and checks:

* the run succeeded, and both Celery workers ran tasks (``task_instance.hostname``: each worker's
  task processes report ``w1``/``w2`` through ``[core] hostname_callable``);
* one OAuth token per process that called PatSnap: the emulator's API listener is wrapped here to
  map every call's client socket to the calling process (psutil), and that process to the
  component (worker w1/w2, triggerer) it descends from. On Airflow 3 every task try runs in a fresh
  process forked by the worker, so "per worker process" means per task process plus one for the
  triggerer's trigger runner;
* one create per report, the archive byte-identical to the emulator's reports (SHA-256);
* the account QPS never exceeded: the emulator rejected 0 calls, and the calls it served never
  numbered more than ``qps`` in any one-second window;
* the ledger recorded each create, answered, with its task instance and PatSnap's job id;
* every listening socket of the deployment (and of this script) is on 127.0.0.1.

Then it triggers a second run, whose three creates race (on both workers) for the one unit the
budget has left, and checks that PatSnap billed exactly the cap: one create bought, the other two
refused before any call, failed at their first try (never retried into the same wall), and the
ledger's day counter at the cap.

Exits 1 when a check fails (after printing each component's log tail), 2 when the deployment did
not come up or the run did not finish. Everything started is stopped however it ends (SIGTERM to
each process group and the processes below it, SIGKILL after a grace period), Ctrl-C included.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the deployment helpers of the chaos tests (standard library only)

from airflow_provider_patsnap.testing.emulator import PatsnapEmulator  # noqa: E402
from airflow_provider_patsnap.testing.emulator.protocol import ROUTES  # noqa: E402
from tests.chaos._procs import (  # noqa: E402
    AIRFLOW,
    EXAMPLE_DAGS,
    MetadataDB,
    Proc,
    airflow_env,
    free_port,
    run,
    tail,
    wait_for,
)
from tests.ledger_support import PostgresCluster  # noqa: E402

# The refresh in its three-task form: nine tasks per run, so both workers get some (the one-task
# form runs three, which Celery may well give to one worker).
DAG_ID = "patsnap_enterprise_report_refresh_stepwise"
COMPANIES = 3  # the example DAG's list (it has no knob for more)
BUDGET = COMPANIES + 1  # the daily cap: the first run spends 3, the second run's creates race for the last unit
ACCOUNT_QPS = 2
JOB_SECONDS = 5.0
WORKERS = ("w1", "w2")
WORKER_CONCURRENCY = 2
LOOPBACK = {"127.0.0.1", "::1"}
HOSTNAME_MODULE = '''"""[core] hostname_callable of the fleet demo's Celery workers: their name, not the machine's."""
import os


def hostname():
    return os.environ["FLEET_WORKER_NAME"]
'''


class DemoError(Exception):
    """A component exited while it should be running (exit 2)."""


# ------------------------------------------------------------------------------ who called PatSnap


@dataclass
class Call:
    at: float  # time.monotonic() when the emulator received it
    action: str  # "token", "create", "status", ... (the emulator's route), or the path when unknown
    pid: int | None
    component: str


class CallerTracker:
    """Attributes every call to the emulator's API listener to the process that sent it.

    The listener's handler class is swapped for a subclass whose ``dispatch`` first looks the client
    socket up (its local port is the request's client port, its peer the emulator) among the
    machine's TCP sockets; the caller is alive and connected while its request is being handled.
    """

    def __init__(self, emu: PatsnapEmulator, leaders: dict[int, str]) -> None:
        self.emu = emu
        self.leaders = leaders  # component leader pid -> component name, filled as they start
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        server = emu._servers[0]  # the API listener (the second one is the CDN)
        tracker = self

        class TracedApiHandler(server.RequestHandlerClass):  # type: ignore[name-defined,misc]
            def dispatch(self, body: bytes) -> None:
                tracker.record(self.command, self.path, self.client_address[1])
                super().dispatch(body)

        server.RequestHandlerClass = TracedApiHandler

    def record(self, method: str, raw_path: str, client_port: int) -> None:
        at = time.monotonic()
        path = urlsplit(raw_path).path
        route = ROUTES.get((method, path))
        pid = self._pid_of(client_port)
        call = Call(at, route.action if route else path, pid, self.component_of(pid))
        with self._lock:
            self.calls.append(call)

    def _pid_of(self, client_port: int) -> int | None:
        with contextlib.suppress(psutil.Error, OSError):
            for conn in psutil.net_connections(kind="tcp"):
                if conn.laddr and conn.laddr.port == client_port and conn.raddr and conn.raddr.port == self.emu.port:
                    return conn.pid
        return None

    def component_of(self, pid: int | None) -> str:
        if pid is None:
            return "unknown"
        with contextlib.suppress(psutil.Error):
            for proc in [psutil.Process(pid), *psutil.Process(pid).parents()]:
                if proc.pid in self.leaders:
                    return self.leaders[proc.pid]
        return "other"

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)


# ------------------------------------------------------------------------------ the deployment


class Fleet:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.logs = home / "components"
        self.archive = home / "archive"
        self.db = MetadataDB(home / "airflow.db")
        self.procs: dict[str, Proc] = {}
        self.redis_port = free_port()
        self.api_port = free_port()
        self.emu: PatsnapEmulator | None = None
        self.tracker: CallerTracker | None = None
        self.postgres: PostgresCluster | None = None
        self.ledger_url = ""
        self.env: dict[str, str] = {}

    # ----- processes

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        proc = self.procs[name] = Proc(name, argv, env, self.logs / f"{name}.log")
        return proc

    def leaders(self) -> dict[int, str]:
        return {proc.pid: name for name, proc in self.procs.items()}

    def stop_all(self, grace: float = 20.0) -> None:
        """Stop the Airflow components, then redis: SIGTERM to each leader (a Celery worker then finishes
        the tasks it runs: warm shutdown), SIGKILL to its group and every process below it after ``grace``."""
        names = [n for n in self.procs if n != "redis"]
        self._stop([self.procs[n] for n in reversed(names)], grace)
        if "redis" in self.procs:
            self._stop([self.procs["redis"]], 5.0)
        if self.postgres is not None:
            self.postgres.stop()

    @staticmethod
    def _stop(procs: list[Proc], grace: float) -> None:
        members: dict[int, psutil.Process] = {}
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                leader = psutil.Process(proc.pid)
                for member in [leader, *leader.children(recursive=True)]:  # task processes have their own group
                    members[member.pid] = member
            if proc.popen.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(p.popen.poll() is None for p in procs):
            time.sleep(0.1)
        _, alive = psutil.wait_procs(list(members.values()), timeout=max(0.0, deadline - time.monotonic()))
        for member in alive:
            with contextlib.suppress(psutil.Error):
                member.kill()
        for proc in procs:
            proc.kill()  # SIGKILL to the group (nothing when it is gone), reaps the leader

    # ----- start-up

    def up(self) -> None:
        (self.home / "redis").mkdir()
        redis_argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port)]
        redis_argv += ["--save", "", "--appendonly", "no", "--dir", str(self.home / "redis")]
        self.start("redis", redis_argv, dict(os.environ))
        wait_for(self.redis_ready, 30, "redis-server to answer PING", interval=0.1)

        self.emu = PatsnapEmulator(job_seconds=JOB_SECONDS, qps_limit=ACCOUNT_QPS).start()
        self.tracker = CallerTracker(self.emu, {})

        self.postgres = PostgresCluster()
        self.ledger_url = self.postgres.fresh_database("patsnap_ledger")

        redis_url = f"redis://127.0.0.1:{self.redis_port}"
        conn = self.emu.connection_json(
            qps=ACCOUNT_QPS, rate_limit_url=f"{redis_url}/2", ledger_url=self.ledger_url, budget_daily_units=BUDGET
        )
        self.env = airflow_env(
            self.home,
            EXAMPLE_DAGS,
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__CELERY__BROKER_URL=f"{redis_url}/0",
            AIRFLOW__CELERY__RESULT_BACKEND=f"{redis_url}/1",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{self.api_port}/execution/",
            AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{self.api_port}",
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(64),
            # Only the run this script triggers: no scheduled run of the @weekly DAG on unpause.
            AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
            PATSNAP_ARCHIVE_URI=self.archive.as_uri(),
            PATSNAP_POKE_INTERVAL="1",
            AIRFLOW_CONN_PATSNAP_DEFAULT=conn,
        )
        run([*AIRFLOW, "db", "migrate"], self.env, 180, self.logs / "db-migrate.log")

        pylib = self.home / "pylib"
        pylib.mkdir()
        (pylib / "fleet_hostname.py").write_text(HOSTNAME_MODULE)
        port = str(self.api_port)
        self.start(
            "api-server", [*AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", port, "--workers", "1"], self.env
        )
        self.start("dag-processor", [*AIRFLOW, "dag-processor"], self.env)
        self.start("scheduler", [*AIRFLOW, "scheduler", "--skip-serve-logs"], self.env)
        self.start("triggerer", [*AIRFLOW, "triggerer", "--skip-serve-logs"], self.env)
        for name in WORKERS:
            env = {
                **self.env,
                "FLEET_WORKER_NAME": name,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "fleet_hostname.hostname",
                "PYTHONPATH": os.pathsep.join(p for p in (str(pylib), os.environ.get("PYTHONPATH", "")) if p),
            }
            argv = [*AIRFLOW, "celery", "worker", "-H", name, "-c", str(WORKER_CONCURRENCY), "--skip-serve-logs"]
            self.start(name, argv, env)
        self.tracker.leaders.update(self.leaders())

        wait_for(self.api_healthy, 180, "the api-server's health check", interval=0.5)
        wait_for(lambda: DAG_ID in {r[0] for r in self.db.rows("SELECT dag_id FROM dag")}, 180, "the DAG to be parsed")
        wait_for(lambda: self.live_job("SchedulerJob"), 120, "the scheduler's heartbeat", interval=0.5)
        wait_for(lambda: self.live_job("TriggererJob"), 120, "the triggerer's heartbeat", interval=0.5)
        for name in WORKERS:
            ready = re.compile(rf"celery@{name} ready")
            wait_for(
                lambda n=name, r=ready: self.alive(n) and r.search(tail(self.procs[n].log, 400)),
                180,
                f"Celery worker {name} to be ready",
                interval=0.5,
            )

    def alive(self, name: str) -> bool:
        proc = self.procs[name]
        if not proc.alive:
            raise DemoError(f"{name} exited with {proc.popen.returncode} (its log is above)")
        return True

    def redis_ready(self) -> bool:
        self.alive("redis")
        with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def api_healthy(self) -> bool:
        for name in self.procs:
            self.alive(name)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def live_job(self, job_type: str) -> bool:
        return bool(
            self.db.rows(
                "SELECT id FROM job WHERE job_type = ? AND state = 'running' AND end_date IS NULL "
                "AND latest_heartbeat > datetime('now', '-15 seconds')",
                job_type,
            )
        )

    def cli(self, *args: str) -> str:
        return run([*AIRFLOW, *args], self.env, 120, self.logs / "cli.log")[1]

    # ----- inspection

    def listeners(self) -> list[tuple[str, str, int]]:
        """(component, address, port) of every listening TCP socket of the deployment and this script."""
        owners: dict[int, str] = {os.getpid(): "this script (emulator)"}
        for name, proc in self.procs.items():
            with contextlib.suppress(psutil.Error):
                leader = psutil.Process(proc.pid)
                for member in [leader, *leader.children(recursive=True)]:
                    owners[member.pid] = name
        return sorted(
            (owners[c.pid], c.laddr.ip, c.laddr.port)
            for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.pid in owners
        )

    def diagnostics(self, run_id: str | None = None) -> str:
        parts = [proc.report(40) for proc in self.procs.values()]
        if run_id:
            with contextlib.suppress(Exception):
                parts.append(f"--- run {run_id}: {self.db.run_state(DAG_ID, run_id)}")
                parts += [
                    f"  {t['task_id']}[{t['map_index']}] {t['state']} try {t['try_number']} on {t['hostname']}"
                    for t in self.db.task_instances(DAG_ID, run_id)
                ]
            for log in sorted((self.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}").rglob("*.log")):
                parts.append(f"--- {log.relative_to(self.home)}:\n{tail(log, 10)}")
        if self.emu is not None:
            parts.append(f"--- emulator stats: {self.emu.stats}; errors: {self.emu.errors}")
        return "\n".join(parts)


# ------------------------------------------------------------------------------ checks


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def peak_in_window(times: list[float], window: float = 1.0) -> int:
    """The most calls that fall in any half-open interval [t, t + window)."""
    times = sorted(times)
    peak, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= window:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


def verify(fleet: Fleet, run_id: str, state: str, run_seconds: float) -> list[tuple[str, bool, str]]:
    assert fleet.emu is not None and fleet.tracker is not None
    emu, stats = fleet.emu, fleet.emu.stats
    checks: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append((name, ok, detail))

    check("run", state == "success", f"{run_id} {state} in {run_seconds:.1f} s")

    tis = fleet.db.task_instances(DAG_ID, run_id)
    per_worker = Counter(t["hostname"] for t in tis)
    states = Counter(t["state"] for t in tis)
    check(
        "tasks per worker",
        set(per_worker) == set(WORKERS) and states == {"success": 3 * COMPANIES},
        f"{dict(sorted(per_worker.items()))} (task_instance.hostname of {len(tis)} tasks; states {dict(states)})",
    )

    calls = fleet.tracker.snapshot()
    by_pid: dict[int | None, list[Call]] = defaultdict(list)
    for call in calls:
        by_pid[call.pid].append(call)
    ran = {(t["hostname"], t["pid"]): f"{t['task_id'].split('.')[-1]}[{t['map_index']}]" for t in tis}
    processes = []
    for pid, made in sorted(by_pid.items(), key=lambda item: (item[1][0].component, item[1][0].at)):
        component = made[0].component
        # A deferred task resumes in a new process: the TI then shows the pid of the last one.
        what = ran.get((component, pid), "trigger runner" if component == "triggerer" else "(run before a deferral)")
        counts = Counter(c.action for c in made)
        processes.append((component, pid, what, counts))
    tokens = {pid: counts["token"] for _, pid, _, counts in processes}
    components = Counter(component for component, *_ in processes)
    per_component = ", ".join(
        f"{name} {n} / {sum(tokens[pid] for c, pid, *_ in processes if c == name)}"
        for name, n in sorted(components.items())
    )
    lines = []
    for component, pid, what, counts in processes:
        label = f"{component} pid {pid}" + (f" {what}" if what else "")
        lines.append(f"\n      {label:<40} " + ", ".join(f"{action} {n}" for action, n in sorted(counts.items())))
    check(
        "one token per process",
        all(n == 1 for n in tokens.values())
        and None not in tokens
        and stats["tokens_issued"] == len(tokens)
        and set(components) == {*WORKERS, "triggerer"},
        f"tokens issued {stats['tokens_issued']}, processes that called PatSnap {len(tokens)} "
        f"(processes / tokens: {per_component})" + "".join(lines),
    )

    creates = stats["creates_by_subject"]
    check(
        "one create per report",
        len(creates) == COMPANIES and set(creates.values()) == {1},
        f"{len(creates)} reports, creates per report {sorted(creates.values())}",
    )

    job_ids = emu.job_ids()
    files = sorted(p for p in fleet.archive.rglob("*") if p.is_file()) if fleet.archive.exists() else []
    archived = sorted(sha256(p) for p in files)
    expected = sorted(emu.report_sha256(j) for j in job_ids)
    check(
        "archive byte-identical",
        len(files) == COMPANIES and archived == expected,
        f"{len(files)} files, sha256 {'==' if archived == expected else '!='} the emulator's {len(job_ids)} reports",
    )

    api_times = [c.at for c in calls if c.action != "token"]
    span = max(api_times) - min(api_times) if len(api_times) > 1 else 0.0
    peak = peak_in_window(api_times)
    mean = (len(api_times) - 1) / span if span else 0.0
    check(
        "account QPS never exceeded",
        stats["rate_limited"] == 0 and peak <= ACCOUNT_QPS,
        f"rate_limited {stats['rate_limited']}; {len(api_times)} API calls over {span:.1f} s = {mean:.2f}/s mean, "
        f"peak {peak} in any 1 s window; account QPS {ACCOUNT_QPS}",
    )

    units = ledger_units(fleet)
    recorded = sorted((u["task_id"], u["map_index"], u["state"], u["units_billed"], u["job_id"]) for u in units)
    wanted = sorted((f"{GROUP}.create", i, "answered", 1, j) for i, j in enumerate(create_job_ids(fleet, run_id)))
    check(
        "ledger: every create recorded",
        recorded == wanted and sorted(str(j) for *_, j in recorded) == sorted(job_ids),
        f"{len(units)} units in PostgreSQL: "
        + ", ".join(f"{t.split('.')[-1]}[{i}] {st} {b} job {j}" for t, i, st, b, j in recorded),
    )

    check(
        "emulator clean",
        not emu.errors and stats["auth_rejected"] == 0 and stats["internal_errors"] == 0,
        f"auth_rejected {stats['auth_rejected']}, internal errors {len(emu.errors)}",
    )
    return checks


GROUP = "company_report"  # the stepwise DAG's mapped task group


def ledger_units(fleet: Fleet) -> list[dict[str, Any]]:
    """Every row of the ledger's units table, oldest first."""
    import sqlalchemy

    from airflow_provider_patsnap.ledger.schema import units

    engine = sqlalchemy.create_engine(fleet.ledger_url)
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(sqlalchemy.select(units).order_by(units.c.id))]
    finally:
        engine.dispose()


def create_job_ids(fleet: Fleet, run_id: str) -> list[str]:
    """The job id each mapped create of the run returned (its XCom), by map index."""
    rows = fleet.db.rows(
        "SELECT map_index, value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = 'return_value' "
        "ORDER BY map_index",
        DAG_ID,
        run_id,
        f"{GROUP}.create",
    )
    return [json.loads(value) for _, value in rows]


def verify_race(fleet: Fleet, run_id: str, state: str, creates_before: int) -> list[tuple[str, bool, str]]:
    """The second run: its creates raced for the budget's last unit."""
    assert fleet.emu is not None
    creates = [t for t in fleet.db.task_instances(DAG_ID, run_id) if t["task_id"] == f"{GROUP}.create"]
    outcome = Counter(t["state"] for t in creates)
    refused = [t for t in creates if t["state"] == "failed"]
    logs = "".join(
        log.read_text(errors="replace")
        for t in refused
        for log in (fleet.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}").glob(
            f"task_id={GROUP}.create/map_index={t['map_index']}/*.log"
        )
    )
    billed = fleet.emu.stats["creates"]
    day_reserved = [u for u in ledger_units(fleet) if u["state"] == "answered"]
    checks = [
        (
            "budget race: billed = cap",
            billed == BUDGET and len(day_reserved) == BUDGET,
            f"PatSnap billed {billed} creates in all ({billed - creates_before} in this run) for a daily cap of "
            f"{BUDGET}; the ledger holds {len(day_reserved)} answered units",
        ),
        (
            "budget race: refused before paying, not retried",
            state == "failed"
            and outcome == {"success": 1, "failed": COMPANIES - 1}
            and all(t["try_number"] == 1 for t in refused)
            and logs.count(f"daily budget of {BUDGET} units") >= len(refused),
            f"run {state}; creates {dict(outcome)} on {sorted({t['hostname'] for t in creates})}; refused at try "
            f"{[t['try_number'] for t in refused]}, each log naming the daily budget",
        ),
    ]
    return checks


def wait_run(fleet: Fleet, run_id: str, timeout: float) -> str:
    fleet.cli("dags", "trigger", DAG_ID, "--run-id", run_id)
    return wait_for(
        lambda: (s := fleet.db.run_state(DAG_ID, run_id)) in ("success", "failed") and s,
        timeout,
        f"run {run_id} to finish",
        interval=0.5,
    )


def check_listeners(fleet: Fleet) -> tuple[str, bool, str]:
    found = fleet.listeners()
    outside = [f"{who} {ip}:{port}" for who, ip, port in found if ip not in LOOPBACK]
    shown = ", ".join(f"{who} {ip}:{port}" for who, ip, port in found)
    return ("loopback only", not outside, f"not on loopback: {outside}" if outside else f"listening: {shown}")


# ------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary AIRFLOW_HOME (logs, DB, archive)")
    parser.add_argument("--run-timeout", type=float, default=300.0, help="seconds the DAG run may take")
    args = parser.parse_args()
    if not shutil.which("redis-server"):
        print("fleet demo: redis-server is not on PATH (apt-get install redis-server)", file=sys.stderr)
        return 2

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_sigterm)
    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="patsnap-fleet-"))
    fleet = Fleet(home)
    run_id = f"fleet-{int(time.time())}"
    failed = True
    try:
        fleet.up()
        up_seconds = time.monotonic() - started
        listeners_idle = check_listeners(fleet)
        fleet.cli("dags", "unpause", DAG_ID)
        triggered = time.monotonic()
        state = wait_run(fleet, run_id, args.run_timeout)
        run_seconds = time.monotonic() - triggered
        checks = [*verify(fleet, run_id, state, run_seconds), check_listeners(fleet)]
        assert fleet.emu is not None
        creates_before = fleet.emu.stats["creates"]
        run_id = f"{run_id}-race"
        checks += verify_race(fleet, run_id, wait_run(fleet, run_id, args.run_timeout), creates_before)
        if not listeners_idle[1]:
            checks.append(listeners_idle)
        failed = not all(ok for _, ok, _ in checks)
        width = max(len(name) for name, _, _ in checks)
        print(
            f"fleet demo: {DAG_ID} on CeleryExecutor ({len(WORKERS)} workers x concurrency {WORKER_CONCURRENCY}, "
            f"separate triggerer, Redis broker + shared budget on 127.0.0.1:{fleet.redis_port}, SQLite metadata DB, "
            f"PostgreSQL ledger); {COMPANIES} companies, account QPS {ACCOUNT_QPS}, daily budget {BUDGET} units"
        )
        for name, ok, detail in checks:
            print(f"  [{'ok' if ok else 'FAIL'}] {name:<{width}}  {detail}")
        print(
            f"fleet demo: {'FAILED' if failed else 'passed'}: deployment up in {up_seconds:.0f} s, "
            f"run {run_seconds:.0f} s, total {time.monotonic() - started:.0f} s"
        )
        if failed:
            print(fleet.diagnostics(run_id), file=sys.stderr)
        return 1 if failed else 0
    except Exception as exc:  # the deployment did not come up, a CLI call failed, the run did not finish
        print(fleet.diagnostics(run_id), file=sys.stderr)
        print(f"fleet demo: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fleet demo: interrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        stopping = time.monotonic()
        fleet.stop_all()
        if fleet.emu is not None:
            fleet.emu.stop()
        print(
            f"fleet demo: everything stopped in {time.monotonic() - stopping:.0f} s; "
            f"wall time {time.monotonic() - started:.0f} s",
            flush=True,
        )
        if args.keep or (failed and os.environ.get("FLEET_KEEP_ON_FAILURE")):
            print(f"fleet demo: AIRFLOW_HOME kept at {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
