"""A download worker SIGKILLed mid-stream, then retried: the archive ends up whole, with nothing left over.

Each attempt is a real ``airflow tasks test chaos_download download <date>`` process (the DAG is in
``tests/chaos/dags``, the only DAG bundle of a private AIRFLOW_HOME), downloading a 20 MiB report
that the in-test emulator sends at 4 MiB/s. The first attempt's whole process group is SIGKILLed
when about a quarter of the report has been served, as the kernel's OOM killer or a lost node would:
no ``finally``, no cleanup. The staging file it leaves is then the retry's to reuse and remove; an
unlocked leftover two hours old (another report's, from a long-dead attempt) is swept on the way.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from tests.chaos._procs import AIRFLOW, CHAOS_DAGS, Procs, airflow_env, show, wait_for
from tests.support import files_under, partial_files

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MiB = 1024 * 1024
REPORT_SIZE = 20 * MiB
BANDWIDTH = 4 * MiB  # bytes per second: the download takes about 5 s
COMPANY = "Example Robotics Ltd"
SUBJECT = f"R001 company_name={COMPANY}"
#: ``.patsnap-<32 hex>.part``: the provider's staging file beside the target.
STAGING_NAME = re.compile(r"^\.patsnap-[0-9a-f]{32}\.part$")


@pytest.fixture(scope="module")
def airflow_home() -> Iterator[Path]:
    """A private, migrated AIRFLOW_HOME whose only DAG bundle is tests/chaos/dags."""
    with tempfile.TemporaryDirectory(prefix="patsnap-chaos-worker-") as home:
        env = airflow_env(Path(home), CHAOS_DAGS)
        done = subprocess.run(
            [*AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=180, check=False
        )
        assert done.returncode == 0, f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        yield Path(home)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def is_locked(path: Path) -> bool:
    """Whether a live process holds the file's flock (the provider's writer does while it streams)."""
    with open(path, "rb") as probe:
        try:
            fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe.fileno(), fcntl.LOCK_UN)
        return False


def test_a_download_killed_mid_stream_is_finished_whole_by_the_retry(
    airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from airflow_provider_patsnap.hooks.patsnap import PatsnapHook

    archive_root = tmp_path / "archive"
    destination = archive_root / "enterprise" / "2026-01-02" / "0"
    with PatsnapEmulator(job_seconds=0, report_size=REPORT_SIZE, cdn_bandwidth=BANDWIDTH) as emu, Procs() as procs:
        conn = emu.connection_json(qps=0, retry_wait_min=0.05, retry_wait_max=0.2)
        # The upstream create task's work (the one billable step), done once here.
        monkeypatch.setenv("AIRFLOW_CONN_PATSNAP_DEFAULT", conn)
        job_id = PatsnapHook().create_enterprise_report(company_name=COMPANY)
        env = airflow_env(
            airflow_home,
            CHAOS_DAGS,
            AIRFLOW_CONN_PATSNAP_DEFAULT=conn,
            PATSNAP_CHAOS_JOB_ID=job_id,
            PATSNAP_CHAOS_DESTINATION=destination.as_uri() + "/",
        )
        command = [*AIRFLOW, "tasks", "test", "chaos_download", "download", "2026-01-02"]
        log = tmp_path / "tasks-test.log"

        # Attempt 1: SIGKILL its whole process group a quarter of the way through the report.
        first = procs.start("attempt 1 (airflow tasks test)", command, env, log)

        def part_way() -> int:
            assert first.alive, f"attempt 1 ended before it could be killed\n{first.report(60)}"
            served = emu.stats["bytes_served"]
            return served if served >= REPORT_SIZE // 4 else 0

        wait_for(part_way, 150, "attempt 1 to stream a quarter of the report", lambda: first.report(60), 0.02)
        (live_part,) = partial_files(archive_root)
        held_by_writer = is_locked(live_part)
        first.kill()
        assert not first.group_alive(), "attempt 1's process group survived SIGKILL"
        stats = emu.stats
        served_at_kill = stats["bytes_served"]
        assert served_at_kill < REPORT_SIZE and stats["downloads_completed"] == 0, stats

        # What the dead attempt left: one hidden, unlocked staging file, and no published report.
        leftovers = partial_files(archive_root)
        assert leftovers == [live_part], files_under(archive_root)
        leftover = leftovers[0]
        match = STAGING_NAME.match(leftover.name)
        assert match and leftover.parent == destination, leftover
        leftover_size = leftover.stat().st_size
        assert 0 < leftover_size < REPORT_SIZE, leftover_size
        assert held_by_writer, "the live attempt did not hold a lock on its staging file"
        assert not is_locked(leftover), "the killed attempt's lock outlived it"
        assert files_under(archive_root) == [leftover]
        leftover_inode = leftover.stat().st_ino
        # And one that an attempt killed two hours ago left for another report: stale, unlocked, to be swept.
        stale = destination / f".patsnap-{'0123456789abcdef' * 2}.part"
        stale.write_bytes(b"%PDF-1.4 half of an older report")
        two_hours_ago = time.time() - 7200
        os.utime(stale, (two_hours_ago, two_hours_ago))

        # Attempt 2: the same command, as Airflow's retry would run it.
        started = time.monotonic()
        second = procs.start("attempt 2 (airflow tasks test)", command, env, log)
        staging_seen: set[tuple[str, int]] = set()  # (name, inode) of every staging file the retry used
        while second.alive and time.monotonic() - started < 180:
            for part in partial_files(archive_root):
                if part == stale:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    staging_seen.add((part.name, part.stat().st_ino))
            time.sleep(0.05)
        rc = second.wait(5)
        retry_seconds = time.monotonic() - started
        assert rc == 0, f"the retry failed (exit {rc})\n{second.report(80)}"

        archived = files_under(archive_root)
        assert len(archived) == 1 and archived[0].parent == destination, f"expected one report, found {archived}"
        final = archived[0]
        expected = hashlib.sha256(emu.report_bytes(job_id)).hexdigest()
        assert final.stat().st_size == REPORT_SIZE
        assert sha256(final) == expected, "the archived report differs from the emulator's bytes"
        assert not partial_files(archive_root) and not stale.exists()  # the stale leftover was swept too
        assert not [p for p in archive_root.rglob("*") if ".patsnap-" in p.name], list(archive_root.rglob("*"))
        # The retry staged under the very name the killed attempt left, after unlinking (never truncating)
        # the leftover: a leftover may be a second link to a published report.
        assert {name for name, _ in staging_seen} == {leftover.name}, staging_seen
        assert leftover_inode > 0
        stats = emu.stats
        assert stats["creates_by_subject"] == {SUBJECT: 1}, stats["creates_by_subject"]
        assert stats["downloads_started"] == 2 and stats["downloads_completed"] == 1, stats
        assert f"Stored {final.as_uri()}" in log.read_text(errors="replace"), second.report(80)

    show(
        capsys,
        f"killed worker (Airflow {airflow_version()}): attempt 1 SIGKILLed after {served_at_kill / MiB:.1f} of "
        f"{REPORT_SIZE / MiB:.0f} MiB (leftover {leftover.name}, {leftover_size / MiB:.1f} MiB, unlocked); "
        f"retry took {retry_seconds:.1f} s, replaced that staging file and swept a 2-hour-old one, "
        f"archived {REPORT_SIZE} bytes sha256-identical; "
        f"creates={stats['creates_by_subject'][SUBJECT]}, downloads started/completed="
        f"{stats['downloads_started']}/{stats['downloads_completed']}, files under archive root: {len(archived)}",
    )


def airflow_version() -> str:
    from airflow import __version__

    return f"{__version__}, python {sys.version_info.major}.{sys.version_info.minor}"
