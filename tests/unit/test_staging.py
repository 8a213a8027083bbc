"""staging.py: files appear whole or not at all, a dead attempt's leftover is reused or swept, no clobbering."""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path

import pytest

from airflow_provider_patsnap.errors import PatsnapDownloadError
from airflow_provider_patsnap.staging import (
    STALE_AFTER,
    publish,
    sha256_of,
    staged_file,
    staging_path,
    sweep_leftovers,
    write_lines_atomically,
)
from airflow_provider_patsnap.version_compat import object_storage_path


def local(path: Path) -> object:
    return object_storage_path(path.as_uri())


def test_the_staging_name_is_hidden_beside_the_target_and_the_same_for_every_attempt(tmp_path: Path) -> None:
    final = local(tmp_path / "Report.pdf")
    path = staging_path(final, "enterprise:42")
    assert Path(path).parent == tmp_path and Path(path).name.startswith(".Report.pdf.patsnap-")
    assert path == staging_path(local(tmp_path / "Report.pdf"), "enterprise:42")
    assert path != staging_path(final, "enterprise:43")


def test_a_killed_attempts_leftover_is_reused_and_gone_after_publishing(tmp_path: Path) -> None:
    final = local(tmp_path / "Report.pdf")
    leftover = Path(staging_path(final, "k"))
    leftover.write_bytes(b"half a report from a worker that was killed")

    with staged_file(final, "k") as (handle, path):
        assert path == str(leftover) and handle.tell() == 0 and leftover.stat().st_size == 0
        handle.write(b"%PDF-1.4 whole")
        handle.flush()
        publish(final, path, overwrite=False)

    assert (tmp_path / "Report.pdf").read_bytes() == b"%PDF-1.4 whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Report.pdf"]


def test_a_failed_attempt_leaves_nothing(tmp_path: Path) -> None:
    final = local(tmp_path / "Report.pdf")
    with pytest.raises(RuntimeError), staged_file(final, "k") as (handle, _):
        handle.write(b"partial")
        raise RuntimeError("cut short")
    assert list(tmp_path.iterdir()) == []


def test_a_live_writer_is_not_disturbed(tmp_path: Path) -> None:
    final = local(tmp_path / "Report.pdf")
    with staged_file(final, "k") as (handle, path):
        handle.write(b"in progress")
        handle.flush()
        with pytest.raises(PatsnapDownloadError, match="another live attempt"), staged_file(final, "k"):
            pass
        assert Path(path).read_bytes() == b"in progress"


def test_publishing_never_clobbers_unless_asked(tmp_path: Path) -> None:
    (tmp_path / "Report.pdf").write_bytes(b"the archived one")
    final = local(tmp_path / "Report.pdf")
    with staged_file(final, "k") as (handle, path):
        handle.write(b"a new one")
        handle.flush()
        with pytest.raises(FileExistsError):
            publish(final, path, overwrite=False)
        assert (tmp_path / "Report.pdf").read_bytes() == b"the archived one"
        publish(final, path, overwrite=True)
    assert (tmp_path / "Report.pdf").read_bytes() == b"a new one"
    assert sha256_of(final) == (9, hashlib.sha256(b"a new one").hexdigest())


def test_sweeping_removes_only_dead_and_old_leftovers(tmp_path: Path) -> None:
    old = time.time() - STALE_AFTER - 10
    dead = tmp_path / ".a.pdf.patsnap-0123456789abcdef.part"
    fresh = tmp_path / ".b.pdf.patsnap-0123456789abcdef.part"
    held = tmp_path / ".c.pdf.patsnap-0123456789abcdef.part"
    other = tmp_path / "notes.part"
    for path in (dead, fresh, held, other):
        path.write_bytes(b"x")
    for path in (dead, held, other):
        os.utime(path, (old, old))
    with open(held, "rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        swept = sweep_leftovers(str(tmp_path))
    assert swept == [dead.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, held.name, other.name])


def test_json_lines_replace_the_target_atomically(tmp_path: Path) -> None:
    final = local(tmp_path / "out" / "records.jsonl")
    assert write_lines_atomically(final, iter([b'{"a": 1}\n', b'{"a": 2}\n'])) == 18
    assert write_lines_atomically(final, iter([b'{"a": 3}\n'])) == 9
    assert (tmp_path / "out" / "records.jsonl").read_bytes() == b'{"a": 3}\n'
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["records.jsonl"]
