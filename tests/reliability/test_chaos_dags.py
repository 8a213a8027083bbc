"""Chaos runs: the report DAGs through real Airflow against an emulator that misbehaves on purpose.

20% of API calls fail transiently (PatSnap's 68300008, a gateway's 503 HTML page, 429 with
``Retry-After: 1``; a create meets only the 429, since a 68300008 or 503 on a create does not
prove nothing ran and fails it at once, by design: test_ambiguous_create.py), OAuth tokens live
2 s (and are revoked whenever a job is created), and every report's first download is cut off half
way.
Every task must still succeed at its first try, each intended report must be created exactly once
(creates are billable), and the archive must hold exactly the emulator's bytes, with no staging file
left behind. The fault sequence is seeded, so a failure reproduces.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_patsnap.testing.emulator import PatsnapEmulator
from tests.support import files_under, partial_files, state_of, task_states, xcom_texts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

CHAOS_SEED = 20260107


@pytest.fixture
def chaos(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[PatsnapEmulator]:
    with PatsnapEmulator(
        job_seconds=0.6,
        fault_rate=0.2,
        token_ttl=2,
        truncate_first_download=True,
        seed=CHAOS_SEED,
    ) as emu:
        emu.create_fault_kinds = ("rate_limited",)
        monkeypatch.setenv(
            "AIRFLOW_CONN_PATSNAP_DEFAULT",
            emu.connection_json(
                qps=0,
                retry_wait_min=0.01,
                retry_wait_max=0.1,
                max_retries=8,
                ledger_url=f"sqlite:///{tmp_path}/ledger.db",
            ),
        )
        # A short run may end before a 2 s token lapses: also revoke every token as soon as a job
        # is created, so the next call surely meets a refused token (67200003) and must refresh.
        create_job = emu._create_job

        def create_then_revoke_tokens(*args: Any, **kwargs: Any) -> Any:
            job = create_job(*args, **kwargs)
            emu.expire_tokens()
            return job

        monkeypatch.setattr(emu, "_create_job", create_then_revoke_tokens)
        yield emu
    assert not emu.errors, f"emulator raised internally: {emu.errors}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_survived_chaos(run: Any, emu: PatsnapEmulator, archive: Path, archive_root: Path, creates: int) -> None:
    states = task_states(run)
    assert state_of(run) == "success", states
    assert set(states.values()) == {"success"}, states
    # The hook absorbed every transient fault: no task needed one of Airflow's own retries.
    tries = {(ti.task_id, ti.map_index): ti.try_number for ti in run.get_task_instances()}
    assert set(tries.values()) == {1}, tries

    stats = emu.stats
    assert stats["creates"] == creates, stats  # one billable create per intended report, none repeated
    job_ids = emu.job_ids()
    assert len(job_ids) == creates
    # The chaos really happened (otherwise this test proves nothing).
    assert stats["faults"] >= 1, stats
    assert stats["auth_rejected"] >= 1, stats  # a stale token was refused...
    assert stats["tokens_issued"] >= 2, stats  # ...and replaced
    for job_id in job_ids:
        assert emu.job(job_id)["download_attempts"] >= 2  # the first download was cut short
    assert stats["downloads_completed"] == creates, stats
    assert stats["rejected_auth_header_downloads"] == 0, stats

    archived = files_under(archive)
    assert len(archived) == creates, archived
    assert sorted(sha256(p) for p in archived) == sorted(emu.report_sha256(j) for j in job_ids)
    assert not partial_files(archive_root), partial_files(archive_root)
    assert all(".part" not in p.name for p in archive_root.rglob("*"))  # no staging folders either

    # What each download task returned matches the file it wrote.
    results = [text for (task, _, key), text in xcom_texts(run.dag_id, run.run_id).items() if key == "return_value"]
    for path in archived:
        assert any(sha256(path) in text for text in results), f"no XCom names the sha256 of {path.name}"


def test_enterprise_refresh_survives_faults_token_expiry_and_cut_downloads(
    dagbag: Any, chaos: PatsnapEmulator, archive_root: Path
) -> None:
    run = dagbag.get_dag("patsnap_enterprise_report_refresh").test()

    assert len(task_states(run)) == 3
    assert_survived_chaos(run, chaos, archive_root / "enterprise", archive_root, creates=3)
    assert chaos.stats["creates_by_kind"] == {"enterprise": 3, "patent_value": 0}


def test_patent_value_report_survives_faults_token_expiry_and_cut_downloads(
    dagbag: Any, chaos: PatsnapEmulator, archive_root: Path
) -> None:
    run = dagbag.get_dag("patsnap_patent_value_report").test()

    assert len(task_states(run)) == 3
    assert_survived_chaos(run, chaos, archive_root / "patent_value", archive_root, creates=1)
    assert chaos.stats["creates_by_kind"] == {"enterprise": 0, "patent_value": 1}
