"""Real processes for the chaos tests: start each in its own process group, log to a file, poll
conditions with deadlines, and kill whole groups (SIGKILL) however the test ends."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
CHAOS_DAGS = Path(__file__).resolve().parent / "dags"
EXAMPLE_DAGS = REPO / "example_dags"
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
AIRFLOW = [sys.executable, "-m", "airflow"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


class Proc:
    """One started process (and the group it leads), its output in ``log``."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            out.write(f"\n===== {name}: {' '.join(self.argv)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                self.argv,
                env=env,
                cwd=str(cwd or REPO),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() takes its children too
            )
        self.pid = self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (idempotent), reap the leader, wait for the rest to die."""
        if self.popen.returncode is not None and not self.group_alive():
            return  # reaped and nothing left: its id may belong to someone else by now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        deadline = time.monotonic() + 10
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    def group_alive(self) -> bool:
        """Whether a process of the group still runs (zombies awaiting their reaper do not count)."""
        return bool(group_members(self.pid))

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not finish within {timeout:.0f} s\n{self.report()}") from None

    def report(self, lines: int = 40) -> str:
        state = "running" if self.alive else f"exited {self.popen.returncode}"
        return f"--- {self.name} (pid {self.pid}, {state}), last lines of {self.log}:\n{tail(self.log, lines)}"


class Procs:
    """Every process a test starts; ``kill_all`` in a ``finally`` / fixture teardown."""

    def __init__(self) -> None:
        self.items: list[Proc] = []
        atexit.register(self.kill_all)  # a safety net should the test process end without its teardown

    def start(self, name: str, argv: Sequence[str], env: dict[str, str], log: Path) -> Proc:
        proc = Proc(name, argv, env, log)
        self.items.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in reversed(self.items):
            proc.kill()

    def report(self, lines: int = 40) -> str:
        return "\n".join(p.report(lines) for p in self.items)

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill_all()


def run(
    argv: Sequence[str], env: dict[str, str], timeout: float, log: Path, procs: Procs | None = None, check: bool = True
) -> tuple[int, str]:
    """Run a command to completion in its own group; kill the group on timeout. Returns (rc, output)."""
    name = "airflow " + " ".join(argv[3:5]) if list(argv[:3]) == AIRFLOW else " ".join(argv[:3])
    proc = Proc(name, argv, env, log)
    if procs is not None:
        procs.items.append(proc)
    start = log.stat().st_size if log.exists() else 0
    try:
        rc = proc.wait(timeout)
    finally:
        proc.kill()  # whatever the leader left behind
    output = log.read_bytes()[start:].decode(errors="replace")
    if check and rc != 0:
        raise AssertionError(f"{' '.join(argv)} exited {rc}:\n{output[-4000:]}")
    return rc, output


def wait_for(
    condition: Callable[[], T],
    timeout: float,
    what: str,
    diagnostics: Callable[[], str] = lambda: "",
    interval: float = 0.1,
) -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` and diagnostics."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
        except (sqlite3.OperationalError, OSError) as exc:  # a busy DB or a file mid-rename: poll again
            value, last_error = None, exc  # type: ignore[assignment]
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}"
                + (f" (last error: {last_error!r})" if last_error else "")
                + f"\n{diagnostics()}"
            )
        time.sleep(interval)


class MetadataDB:
    """Read-only queries on a deployment's SQLite metadata DB (no Airflow import, no CLI start-up)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)) as conn:
            return conn.execute(sql, params).fetchall()

    def dag_ids(self) -> set[str]:
        return {r[0] for r in self.rows("SELECT dag_id FROM dag")}

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        found = self.rows("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return found[0][0] if found else None

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        cols = ("task_id", "map_index", "state", "try_number", "pid", "hostname")
        rows = self.rows(
            f"SELECT {', '.join(cols)} FROM task_instance WHERE dag_id = ? AND run_id = ? ORDER BY task_id, map_index",
            dag_id,
            run_id,
        )
        return [dict(zip(cols, r, strict=True)) for r in rows]


def airflow_env(home: Path, dags_folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a process of a private Airflow installation at ``home``.

    Nothing of the test session's own Airflow settings leaks in (``AIRFLOW*`` and ``PATSNAP_*`` are
    dropped); ``dags_folder`` is also the only DAG bundle (Airflow 3 runs only DAGs of a bundle).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PATSNAP_", "PYTEST_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
        AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST=json.dumps(
            [{"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}}]
        ),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def show(capsys: Any, line: str) -> None:
    """Print a result line into the run's output even under ``pytest -q`` (captured otherwise)."""
    with capsys.disabled():
        print(f"\n[chaos] {line}", flush=True)
