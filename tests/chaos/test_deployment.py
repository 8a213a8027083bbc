"""The example DAGs in a small real Airflow 3.3 deployment, with processes killed under them.

One deployment per module, in a temporary AIRFLOW_HOME: SQLite, LocalExecutor, ``api-server``
(127.0.0.1, a free port, one worker; the execution API the workers talk to), ``dag-processor``,
``scheduler --skip-serve-logs`` and ``triggerer --skip-serve-logs``, each its own process group with
its output in ``<home>/components/<name>.log``. The DAGs folder is the repo's ``example_dags``;
the PatSnap connection points at an in-test emulator. DAGs are unpaused and triggered with the
``airflow`` CLI; states are read from the metadata DB.

One thing differs from production on purpose: the example DAGs wait 5 minutes between tries, so a
cluster policy (``<home>/config/airflow_local_settings.py``) sets ``retry_delay`` to 1 s.

Scenarios (each starts from an idle deployment, an empty archive and zeroed emulator counters):

a. enterprise refresh, two workers SIGKILLed mid-download: for company 1 the task process (as the
   OOM killer would: its supervisor reports the signal and Airflow marks the try up for retry), for
   company 2 the supervisor and the task process (a lost worker: nobody reports, the scheduler's
   heartbeat timeout fails the try and Airflow retries it). Each retry must archive the report whole.
b. the triggerer is SIGKILLed while the three sensors are deferred; a new triggerer takes their
   triggers over from the kwargs stored in the DB and the run finishes.
c. legal indicators for 3,000 patents with a P037 outage longer than the hook's retry budget: the
   Airflow retry resumes from the checkpointed batches.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from airflow_provider_patsnap.version_compat import AIRFLOW_V_3_3_PLUS
from tests.chaos._deployment import Deployment
from tests.chaos._procs import (
    EXAMPLE_DAGS,
    Procs,
    show,
    wait_for,
)
from tests.support import files_under, partial_files

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not AIRFLOW_V_3_3_PLUS,
        reason="needs Airflow 3.3+: on 2.x LocalExecutor needs a non-SQLite metadata DB (and the create "
        "reattach these runs rely on needs 3.3's task state store)",
    ),
]

MiB = 1024 * 1024
REFRESH = "patsnap_enterprise_report_refresh_stepwise"
LAKE = "patsnap_legal_indicators_to_lake"
COMPANIES = ["Example Robotics Ltd", "Acme Semiconductor Co", "Nordic Battery AB"]  # as in the example DAG


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="patsnap-chaos-deploy-") as home,
        PatsnapEmulator(job_seconds=3) as emu,
        Procs() as procs,
    ):
        dep = Deployment(Path(home), emu, procs, dags=EXAMPLE_DAGS, dag_ids=(REFRESH, LAKE))
        try:
            dep.start()
        except BaseException:
            procs.kill_all()
            raise
        dep.started_in = time.monotonic() - started
        yield dep
        procs.kill_all()
        assert not emu.errors, f"emulator raised internally: {emu.errors}"


# ------------------------------------------------------------------------------------ helpers


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def process_info(pid: int) -> tuple[str, int, str]:
    """(command line, parent pid, state letter) of a live process, from /proc."""
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return cmdline, int(fields[1]), fields[0]


def gone(pid: int) -> bool:
    try:
        return process_info(pid)[2] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return True


def is_locked(path: Path) -> bool:
    import fcntl

    with open(path, "rb") as probe:
        try:
            fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe.fileno(), fcntl.LOCK_UN)
        return False


def leftovers(root: Path) -> list[Path]:
    """Anything a write in progress leaves: staging files and checkpoint folders."""
    return [p for p in root.rglob("*") if ".patsnap-" in p.name or p.name.endswith(".part")] if root.exists() else []


def verify_archive(dep: Deployment, job_ids: list[str]) -> list[Path]:
    """Every report archived once, byte-identical to what the emulator serves; nothing else left."""
    archived = files_under(dep.archive)
    assert len(archived) == len(job_ids), f"expected {len(job_ids)} reports, found {archived}"
    assert sorted(sha256(p) for p in archived) == sorted(dep.emu.report_sha256(j) for j in job_ids)
    assert sorted(p.stat().st_size for p in archived) == sorted(dep.emu.report_size_of(j) for j in job_ids)
    assert not partial_files(dep.archive) and not leftovers(dep.archive), leftovers(dep.archive)
    return archived


def creates_per_report(dep: Deployment) -> dict[str, int]:
    return dep.emu.stats["creates_by_subject"]


# ------------------------------------------------------------------------------------ a. killed workers


def test_enterprise_refresh_survives_download_workers_killed_mid_stream(deployment: Deployment, capsys: Any) -> None:
    dep = deployment
    size = 8 * MiB
    jobs_before = dep.prepare(job_seconds=3.0, report_size=size, cdn_bandwidth=2 * MiB)  # 4 s per download
    started = time.monotonic()
    run_id = dep.trigger(REFRESH, "kill")
    diagnostics = lambda: dep.diagnostics(REFRESH, run_id)  # noqa: E731

    # map_index 1: kill the task process only; map_index 2: kill its supervisor too (the worker is lost).
    targets = {1: "task process", 2: "supervisor and task process"}
    killed: dict[int, dict[str, Any]] = {}

    def kill_when_part_way() -> bool:
        tis = dep.tis(REFRESH, run_id)
        for index, how in targets.items():
            if index in killed:
                continue
            ti = tis.get(("company_report.archive", index))
            if not ti or ti["state"] != "running" or not ti["pid"]:
                continue
            parts = [p for p in partial_files(dep.archive) if p.parent.name == str(index)]
            if not parts or parts[0].stat().st_size < size // 4:
                continue
            pid = ti["pid"]
            cmdline, parent, _ = process_info(pid)
            parent_cmdline = process_info(parent)[0]
            assert cmdline.startswith("airflow worker --") and "LocalExecutor" not in cmdline, cmdline
            assert "LocalExecutor" in parent_cmdline, parent_cmdline  # the supervisor: a LocalExecutor worker
            if index == 2:
                os.kill(parent, signal.SIGKILL)  # first, so it cannot report its child's death
            os.kill(pid, signal.SIGKILL)
            killed[index] = {
                "how": how,
                "pid": pid,
                "supervisor": parent,
                "part": parts[0],
                "at": parts[0].stat().st_size,
            }
        return len(killed) == len(targets)

    wait_for(kill_when_part_way, 150, "both downloads to be a quarter done (to kill them)", diagnostics, 0.05)
    for index, kill in killed.items():
        wait_for(lambda k=kill: gone(k["pid"]), 10, f"killed task process {kill['pid']} to die", diagnostics)
        if index == 2:
            wait_for(lambda k=kill: gone(k["supervisor"]), 10, "the killed supervisor to die", diagnostics)
        # Its staging file stays behind, for the retry to remove.
        part: Path = kill["part"]
        assert 0 < kill["at"] < size, kill
        kill["inode"] = part.stat().st_ino

    state = dep.wait_run(REFRESH, run_id, 240)
    elapsed = time.monotonic() - started
    assert state == "success", diagnostics()

    tis = dep.tis(REFRESH, run_id)
    assert {t["state"] for t in tis.values()} == {"success"}, diagnostics()
    tries = {i: tis[("company_report.archive", i)]["try_number"] for i in range(3)}
    assert tries == {0: 1, 1: 2, 2: 2}, tries  # each killed download was retried once, by Airflow
    # Company 1: the supervisor saw its task process die by SIGKILL and said so in the try's log.
    first_try = dep.task_log(REFRESH, run_id, "company_report.archive", 1, 1).read_text(errors="replace")
    assert "Process terminated by signal" in first_try and "Stored " not in first_try, first_try[-3000:]
    # Company 2: nobody reported; the scheduler's heartbeat timeout failed the try.
    timeouts = dep.db.rows(
        "SELECT map_index, try_number FROM log WHERE event = 'heartbeat timeout' AND dag_id = ? AND run_id = ?",
        REFRESH,
        run_id,
    )
    assert timeouts == [(2, 1)], timeouts
    for index, kill in killed.items():
        retry_log = dep.task_log(REFRESH, run_id, "company_report.archive", index, 2).read_text(errors="replace")
        assert "Stored " in retry_log, retry_log[-3000:]
        # The retry unlinked the killed try's leftover (never truncating it: it could be a second link to a
        # published report), staged under the same name and published the whole file.
        assert len(files_under(kill["part"].parent)) == 1, files_under(kill["part"].parent)
        assert re.fullmatch(r"\.patsnap-[0-9a-f]{32}\.part", kill["part"].name), kill["part"].name
        assert not kill["part"].exists(), "the killed try's staging file was left behind"

    job_ids = dep.emu.job_ids()[jobs_before:]
    creates = creates_per_report(dep)
    assert sorted(creates) == sorted(f"R001 company_name={c}" for c in COMPANIES), creates
    assert set(creates.values()) == {1}, creates  # no retry created a second report
    archived = verify_archive(dep, job_ids)
    stats = dep.emu.stats
    assert stats["downloads_completed"] == 3, stats
    wait_tries = [tis[("company_report.wait", i)]["try_number"] for i in range(3)]

    show(
        capsys,
        f"a. killed download workers: creates per report {sorted(creates.values())}; "
        + "; ".join(
            f"company {i} {k['how']} SIGKILLed at {k['at'] / MiB:.1f}/{size / MiB:.0f} MiB, retried (try 2)"
            for i, k in sorted(killed.items())
        )
        + f"; downloads started/completed {stats['downloads_started']}/{stats['downloads_completed']}; "
        f"sensor tries {wait_tries}; "
        f"{len(archived)} files sha256-verified, no staging files left; run success in {elapsed:.0f} s "
        f"(deployment started in {dep.started_in:.0f} s)",
    )


# ------------------------------------------------------------------------------------ b. triggerer killed


def trigger_logs(dep: Deployment, run_id: str, triggerer_job: int) -> dict[int, str]:
    """Text of the trigger logs a triggerer job wrote for this run's sensors, by map index."""
    out = {}
    for index in range(len(COMPANIES)):
        folder = dep.task_log(REFRESH, run_id, "company_report.wait", index, 1).parent
        for log in folder.glob(f"attempt=*.log.trigger.{triggerer_job}.log"):
            out[index] = out.get(index, "") + log.read_text(errors="replace")
    return out


def test_deferred_sensors_resume_on_a_new_triggerer(deployment: Deployment, capsys: Any) -> None:
    dep = deployment
    jobs_before = dep.prepare(job_seconds=20.0)
    started = time.monotonic()
    run_id = dep.trigger(REFRESH, "triggerer")
    diagnostics = lambda: dep.diagnostics(REFRESH, run_id)  # noqa: E731
    old = dep.triggerer
    assert old is not None and old.alive, diagnostics()
    old_job = wait_for(lambda: dep.live_job("TriggererJob"), 60, "the first triggerer's job", diagnostics)

    # All three sensors deferred, their triggers running in the first triggerer.
    def deferred_in_old_triggerer() -> bool:
        tis = dep.tis(REFRESH, run_id)
        waits = [tis.get(("company_report.wait", i), {}).get("state") for i in range(len(COMPANIES))]
        logs = trigger_logs(dep, run_id, old_job)
        return waits == ["deferred"] * 3 and len(logs) == 3 and all("starting" in t for t in logs.values())

    wait_for(deferred_in_old_triggerer, 120, "the sensors to defer to triggerer 1", diagnostics, 0.2)
    assert dep.emu.stats["creates"] == 3, dep.emu.stats
    unfinished = [j for j in dep.emu.job_ids()[jobs_before:] if dep.emu.job(j)["status"] not in (2, 3)]
    assert len(unfinished) == 3, "a report job finished before the triggerer could be killed"
    old.kill()
    assert not old.group_alive(), "triggerer 1 survived SIGKILL"
    killed_at = time.monotonic()

    new = dep.triggerer = dep.start_component("triggerer-2", "triggerer", "--skip-serve-logs")
    new_job = wait_for(
        lambda: (job := dep.live_job("TriggererJob")) and job != old_job and job,
        120,
        "triggerer 2 to heartbeat",
        diagnostics,
        0.5,
    )
    # Triggerer 2 takes the triggers over once triggerer 1's heartbeat is stale, rebuilding them from the DB.
    wait_for(
        lambda: (
            all("starting" in text for text in trigger_logs(dep, run_id, new_job).values())
            and len(trigger_logs(dep, run_id, new_job)) == 3
        ),
        120,
        "triggerer 2 to start the three triggers",
        diagnostics,
        0.2,
    )
    taken_over_after = time.monotonic() - killed_at
    state = dep.wait_run(REFRESH, run_id, 240)
    elapsed = time.monotonic() - started
    assert state == "success", diagnostics()
    assert new.alive and not old.group_alive(), diagnostics()

    # Every trigger fired in triggerer 2, rebuilt from what the DB held; none in triggerer 1.
    fired_new = trigger_logs(dep, run_id, new_job)
    fired_old = trigger_logs(dep, run_id, old_job)
    assert sorted(fired_new) == [0, 1, 2], fired_new
    assert all("Trigger fired event" in text for text in fired_new.values()), fired_new
    assert not any("Trigger fired event" in text for text in fired_old.values()), fired_old
    job_ids = dep.emu.job_ids()[jobs_before:]
    creates = creates_per_report(dep)
    assert len(creates) == 3 and set(creates.values()) == {1}, creates
    archived = verify_archive(dep, job_ids)

    show(
        capsys,
        f"b. triggerer 1 (job {old_job}) SIGKILLed with 3 sensors deferred; triggerer 2 (job {new_job}) took "
        f"their triggers over {taken_over_after:.0f} s later and fired all {len(fired_new)}, triggerer 1 none; "
        f"creates per report {sorted(creates.values())}; {len(archived)} files "
        f"sha256-verified; run success in {elapsed:.0f} s",
    )


# ------------------------------------------------------------------------------------ c. P037 outage


def test_legal_indicators_resume_after_an_outage_longer_than_the_hook_budget(
    deployment: Deployment, capsys: Any
) -> None:
    dep = deployment
    patents = [f"CN{100000 + i}A" for i in range(3000)]
    dep.prepare()
    dep.portfolio.write_text("# generated by the chaos test\n" + "\n".join(patents) + "\n")
    # After 10 batches P037 answers 500 for 1.5 s: more than the hook absorbs (a batch answered 500 may
    # have been billed, so it is sent once more at most), less than Airflow's 2 retries 1 s apart span.
    dep.emu.outage("legal", seconds=1.5, after_calls=10)
    started = time.monotonic()
    run_id = dep.trigger(LAKE, "outage")
    diagnostics = lambda: dep.diagnostics(LAKE, run_id)  # noqa: E731

    state = dep.wait_run(LAKE, run_id, 240)
    elapsed = time.monotonic() - started
    assert state == "success", diagnostics()
    ti = dep.tis(LAKE, run_id)[("legal_indicators", -1)]
    assert ti["try_number"] >= 2, diagnostics()  # the outage failed a try; an Airflow retry finished it
    stats = dep.emu.stats
    assert stats["outage_answers"] >= 1, stats
    billed = dep.emu.billed("/legal_indicators")
    assert len(patents) <= billed <= len(patents) + 100, billed

    (output,) = files_under(dep.lake)  # the checkpoint folder is gone once the file is written
    assert output.name == "legal_indicators.jsonl" and output.parent.name.startswith("dt="), output
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["pn"] for r in records] == patents
    assert not leftovers(dep.lake), leftovers(dep.lake)

    show(
        capsys,
        f"c. P037 outage (1.5 s after 10 batches): billed {billed}/{len(patents)} needed "
        f"(+{billed - len(patents)}), {stats['outage_answers']} outage answers, succeeded on try {ti['try_number']}; "
        f"{len(records)} records in order, no checkpoint left; run success in {elapsed:.0f} s",
    )
