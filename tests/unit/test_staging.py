"""staging.py: files appear whole or not at all, a dead attempt's leftover is reused or swept, no clobbering."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import time
from pathlib import Path

import pytest

from airflow_provider_patsnap.errors import PatsnapDestinationError, PatsnapDownloadError
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
    assert Path(path).parent == tmp_path and re.fullmatch(r"\.patsnap-[0-9a-f]{32}\.part", Path(path).name)
    assert path == staging_path(local(tmp_path / "Report.pdf"), "enterprise:42")
    assert path != staging_path(final, "enterprise:43")


def test_a_killed_attempts_leftover_is_replaced_and_gone_after_publishing(tmp_path: Path) -> None:
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
    dead = tmp_path / f".patsnap-{'a' * 32}.part"
    dead_02 = tmp_path / ".a.pdf.patsnap-0123456789abcdef.part"  # 0.2's staging name
    fresh = tmp_path / f".patsnap-{'b' * 32}.part"
    held = tmp_path / f".patsnap-{'c' * 32}.part"
    other = tmp_path / "notes.part"
    # A report whose (sanitised) name looks like 0.2's staging pattern is a report, not a leftover.
    lookalike = tmp_path / "x.patsnap-0123456789abcdef.part"
    for path in (dead, dead_02, fresh, held, other, lookalike):
        path.write_bytes(b"x")
    for path in (dead, dead_02, held, other, lookalike):
        os.utime(path, (old, old))
    with open(held, "rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        swept = sweep_leftovers(str(tmp_path))
    assert sorted(swept) == sorted([dead.name, dead_02.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, held.name, other.name, lookalike.name])


def test_a_leftover_linked_to_the_published_report_is_unlinked_never_truncated(tmp_path: Path) -> None:
    """A worker killed between publishing (the hard link) and removing its staging name leaves a second
    name of the archived report: the retry must not write through it."""
    final = local(tmp_path / "Report.pdf")
    with staged_file(final, "k") as (handle, path):
        handle.write(b"%PDF-1.4 the archived report")
        handle.flush()
        os.link(path, tmp_path / "Report.pdf")  # published...
        os.link(path, tmp_path / "kept")  # (a way to look at the staging inode after the context)
    leftover = Path(staging_path(final, "k"))
    os.link(tmp_path / "kept", leftover)  # ...and killed before unlinking the staging name
    os.unlink(tmp_path / "kept")
    assert os.stat(leftover).st_nlink == 2

    with staged_file(final, "k") as (handle, _):
        handle.write(b"%PDF-1.4 another attempt's bytes")
        handle.flush()
        assert (tmp_path / "Report.pdf").read_bytes() == b"%PDF-1.4 the archived report"
    assert (tmp_path / "Report.pdf").read_bytes() == b"%PDF-1.4 the archived report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Report.pdf"]


@pytest.mark.parametrize("errno_code", [errno.EPERM, errno.EXDEV, errno.ENOTSUP])
def test_without_hard_links_a_rename_publishes_whole_and_never_clobbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, errno_code: int
) -> None:
    def no_links(source: str, target: str) -> None:
        raise OSError(errno_code, "no hard links here")

    monkeypatch.setattr(os, "link", no_links)
    final = local(tmp_path / "Report.pdf")
    with staged_file(final, "k") as (handle, path):
        handle.write(b"%PDF-1.4 whole")
        handle.flush()
        inode = os.stat(path).st_ino
        publish(final, path, overwrite=False)
    # The staging file itself was renamed into place: never a copy into the final name that a kill could cut.
    assert (tmp_path / "Report.pdf").read_bytes() == b"%PDF-1.4 whole"
    assert (tmp_path / "Report.pdf").stat().st_ino == inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Report.pdf"]

    with staged_file(final, "k2") as (handle, path):
        handle.write(b"other")
        handle.flush()
        with pytest.raises(FileExistsError):
            publish(final, path, overwrite=False)
    assert (tmp_path / "Report.pdf").read_bytes() == b"%PDF-1.4 whole"


def test_published_files_and_their_folder_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    final = local(tmp_path / "Report.pdf")
    with staged_file(final, "k") as (handle, path):
        handle.write(b"%PDF-1.4 whole")
        handle.flush()
        publish(final, path, overwrite=False)
        assert synced == [path, str(tmp_path)]


def test_other_file_systems_get_a_temporary_name_then_a_move() -> None:
    """Neither local nor an object store (sftp, webhdfs, smb...): fsspec's memory file system stands in."""
    from upath import UPath  # what ObjectStoragePath is built on; Airflow registers no memory:// store

    final = UPath("memory://archive/reports/Report.pdf")
    fs = final.fs
    moves: list[tuple[str, str]] = []
    real_mv = fs.mv

    def mv(source: str, target: str, **kwargs: object) -> None:
        assert not fs.exists(target) and fs.cat_file(source) == b"%PDF-1.4 whole"  # whole before it is moved
        moves.append((source, target))
        real_mv(source, target, **kwargs)

    fs.mv = mv
    try:
        with staged_file(final, "k") as (handle, path):
            handle.write(b"%PDF-1.4 whole")
            handle.flush()
            publish(final, path, overwrite=False)
        assert fs.cat_file(final.path) == b"%PDF-1.4 whole"
        ((source, target),) = moves
        assert target == final.path and re.fullmatch(r".*/\.patsnap-[0-9a-f]{32}\.part", source)
        assert fs.ls("/archive/reports", detail=False) == [final.path]
        with staged_file(final, "k") as (handle, path):
            handle.write(b"other")
            handle.flush()
            with pytest.raises(FileExistsError):
                publish(final, path, overwrite=False)
    finally:
        del fs.mv
        fs.rm("/archive", recursive=True)


def test_json_lines_keep_an_existing_output_unless_overwrite(tmp_path: Path) -> None:
    final = local(tmp_path / "records.jsonl")
    assert write_lines_atomically(final, iter([b'{"a": 1}\n']), overwrite=False) == 9
    # The same bytes again (a retry after the publish) is success; other bytes are refused, naming the file.
    assert write_lines_atomically(final, iter([b'{"a": 1}\n']), overwrite=False) == 9
    with pytest.raises(PatsnapDestinationError, match=r"records\.jsonl already exists with other content"):
        write_lines_atomically(final, iter([b'{"a": 2}\n']), overwrite=False)
    assert (tmp_path / "records.jsonl").read_bytes() == b'{"a": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["records.jsonl"]


def test_json_lines_replace_the_target_atomically(tmp_path: Path) -> None:
    final = local(tmp_path / "out" / "records.jsonl")
    assert write_lines_atomically(final, iter([b'{"a": 1}\n', b'{"a": 2}\n'])) == 18
    assert write_lines_atomically(final, iter([b'{"a": 3}\n'])) == 9
    assert (tmp_path / "out" / "records.jsonl").read_bytes() == b'{"a": 3}\n'
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["records.jsonl"]


def test_a_fifo_named_like_a_staging_file_neither_hangs_the_sweep_nor_is_removed(tmp_path: Path) -> None:
    fifo = tmp_path / f".patsnap-{'f' * 32}.part"
    os.mkfifo(fifo)
    os.utime(fifo, (0, 0), follow_symlinks=False)
    link = tmp_path / f".patsnap-{'e' * 32}.part"
    (tmp_path / "target").write_text("not ours")
    link.symlink_to(tmp_path / "target")
    os.utime(link, (0, 0), follow_symlinks=False)
    assert sweep_leftovers(str(tmp_path)) == []  # returns at once (pytest's timeout would catch a hang)
    assert fifo.exists() and link.is_symlink() and (tmp_path / "target").read_text() == "not ours"


def test_the_spool_folder_is_private_to_its_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_patsnap.staging import spool_dir

    monkeypatch.setenv("PATSNAP_SPOOL_DIR", str(tmp_path / "spool"))
    path = spool_dir()
    assert os.stat(path).st_mode & 0o777 == 0o700
