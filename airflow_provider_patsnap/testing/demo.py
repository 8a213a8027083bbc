"""`make demo`: run an example DAG end to end against the bundled emulator.

Starts a ``PatsnapEmulator``, points ``patsnap_default`` at it (with a ledger in a throw-away SQLite
file), migrates a throw-away Airflow metadata DB, runs ``airflow dags test`` on the DAG, prints what
was archived and ends with what the run would have cost: the ledger's units per endpoint, and the
emulated PatSnap statement of account for the day.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from airflow_provider_patsnap.testing.emulator import PatsnapEmulator

DEFAULT_DAG = "patsnap_enterprise_report_refresh"


def ledger_url(home: str) -> str:
    return f"sqlite:///{Path(home) / 'patsnap-ledger.db'}"


def airflow_env(home: str, dags_folder: Path, emulator: PatsnapEmulator, output: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_PATSNAP_DEFAULT": emulator.connection_json(
                qps=5, ledger_url=ledger_url(home), budget_daily_units=1000
            ),
            "PATSNAP_ARCHIVE_URI": output.as_uri(),
            "PATSNAP_LAKE_URI": output.as_uri(),
            "PATSNAP_POKE_INTERVAL": "1",
        }
    )
    return env


def run_dag(dag_id: str, dags_folder: Path, output: Path, job_seconds: float, timeout: int) -> int:
    home = tempfile.mkdtemp(prefix="patsnap-demo-home-")
    try:
        with PatsnapEmulator(job_seconds=job_seconds) as emulator:
            env = airflow_env(home, dags_folder, emulator, output)
            print(f"PatSnap emulator on {emulator.url} (downloads from {emulator.cdn_url})", flush=True)
            subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL
            )
            # `dags test` traps SIGTERM; `timeout -k` is the reliable stop.
            command = ["timeout", "-k", "15", str(timeout), sys.executable, "-m", "airflow", "dags", "test", dag_id]
            log_path = output / f"{dag_id}.log"
            print(f"Running `airflow dags test {dag_id}` (log: {log_path}) ...", flush=True)
            with open(log_path, "w") as log:
                result = subprocess.run(command, env=env, check=False, stdout=log, stderr=subprocess.STDOUT)
            written = sorted(p for p in output.rglob("*") if p.is_file() and p != log_path)
            stats = emulator.stats
            cost = what_it_cost(env["AIRFLOW_CONN_PATSNAP_DEFAULT"], emulator)
        print("\n== Demo result ==")
        for path in written:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            print(f"  wrote {path.relative_to(output.parent)}  ({path.stat().st_size} bytes, sha256 {digest}...)")
        print(
            f"  emulator: {stats['creates']} report job(s) created, {stats['status_polls']} status poll(s), "
            f"{stats['downloads_completed']} download(s), {stats['tokens_issued']} token(s) issued"
        )
        print(cost)
        if result.returncode != 0 or not written:
            print("".join(log_path.read_text().splitlines(keepends=True)[-40:]))
            print(f"Demo FAILED (airflow dags test exit code {result.returncode}, {len(written)} file(s))")
            return result.returncode or 1
        print(f"Demo OK: archive under {output}/")
        return 0
    finally:
        shutil.rmtree(home, ignore_errors=True)


def what_it_cost(connection: str, emulator: PatsnapEmulator) -> str:
    """The ledger's units per endpoint, and PatSnap's (emulated) statement of account for today."""
    import datetime as dt

    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook
    from airflow_provider_patsnap.ledger.report import render, summarise

    os.environ["AIRFLOW_CONN_PATSNAP_DEFAULT"] = connection
    hook = PatsnapHook()
    ledger = hook.ledger
    assert ledger is not None
    lines = ["\n== What this run would have cost (the ledger, per endpoint) =="]
    lines.append(render(summarise(ledger.rows(), "endpoint"), "endpoint", "table").rstrip())
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    statement = hook.get_usage_statement(today, today)
    billed = ", ".join(f"{row['serial_number']} {row['fee_times']}" for row in statement.get("usage", []))
    money = statement.get("usage_money")
    lines.append(f"  PatSnap's statement for {today} (emulated prices): {billed or 'nothing'}; {money} in all")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dag-id", default=DEFAULT_DAG)
    parser.add_argument("--dags-folder", type=Path, default=Path("example_dags"))
    parser.add_argument("--output", type=Path, default=Path("demo-output"))
    parser.add_argument("--job-seconds", type=float, default=3.0, help="emulated report generation time")
    parser.add_argument("--timeout", type=int, default=600)
    args = parser.parse_args(argv)
    output = args.output.resolve()
    # The archive refuses to overwrite files, so each demo starts from an empty folder.
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    return run_dag(args.dag_id, args.dags_folder.resolve(), output, args.job_seconds, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
