"""Output checks before any work, and the run lock (bezkit.files.run_dir)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bezkit.files.run_dir import (
    OutputPathError,
    RunLock,
    RunLocked,
    check_output_dir,
    check_output_file,
    lock_path_for,
)


def test_a_fresh_nested_folder_is_accepted_and_not_created(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    assert check_output_dir(out) == out
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the write probe is removed


def test_a_file_given_as_output_folder_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(OutputPathError, match="not a folder"):
        check_output_dir(f)
    with pytest.raises(OutputPathError, match="is not a folder"):
        check_output_dir(f / "below")


def test_an_unwritable_folder_is_refused() -> None:
    # /proc refuses new files even for root (a chmod'ed folder would not stop root)
    with pytest.raises(OutputPathError, match="cannot write in /proc"):
        check_output_dir("/proc/bezkit-out")


def test_a_full_disk_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match="MiB free"):
        check_output_dir(tmp_path, min_free_bytes=2**62)


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_special_files_are_refused_as_output_files(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match="not a regular file"):
        check_output_file("/dev/null")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OutputPathError, match="not a regular file"):
        check_output_file(fifo)
    with pytest.raises(OutputPathError, match="a folder"):
        check_output_file(tmp_path)


def test_a_symlink_output_resolves_to_its_target_and_a_dangling_one_is_refused(
    tmp_path: Path,
) -> None:
    target = tmp_path / "real.json"
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert check_output_file(link) == target
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "missing" / "x.json")
    with pytest.raises(OutputPathError, match="does not exist"):
        check_output_file(dangling)


def test_lock_file_names(tmp_path: Path) -> None:
    assert lock_path_for(tmp_path / "run", folder=True) == tmp_path / "run" / ".bezkit.lock"
    assert lock_path_for(tmp_path / "flow", folder=False) == tmp_path / "flow.lock"


def test_a_second_lock_on_the_same_output_is_refused_and_released_after(tmp_path: Path) -> None:
    with RunLock(tmp_path / "flow", folder=False, what="training run") as lock:
        assert lock.held
        with pytest.raises(RunLocked, match="another training run is using"):
            RunLock(tmp_path / "flow", folder=False, what="training run").acquire()
        RunLock(tmp_path / "other", folder=False).acquire().release()  # other outputs are free
    assert not lock.held
    with RunLock(tmp_path / "flow", folder=False):  # free again
        pass


def test_the_lock_of_a_killed_process_is_free(tmp_path: Path) -> None:
    """A crash never leaves a stale lock: the kernel drops it with the process."""
    code = textwrap.dedent(
        f"""
        import os, sys
        from bezkit.files.run_dir import RunLock
        lock = RunLock({str(tmp_path / "run")!r}, folder=True).acquire()
        print("locked", flush=True)
        sys.stdin.read()
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"locked"
        with pytest.raises(RunLocked):
            RunLock(tmp_path / "run", folder=True).acquire()
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with RunLock(tmp_path / "run", folder=True):
        pass


def test_atomic_writes_follow_links_and_refuse_special_files(tmp_path: Path) -> None:
    from bezkit.files.atomic import remove_stale_temp_files, write_json

    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert write_json(link, {"a": 1}) == target
    assert link.is_symlink() and target.read_text() == '{\n  "a": 1\n}\n'
    with pytest.raises(OutputPathError, match="not a regular file"):
        write_json("/dev/null", {"a": 1})
    with pytest.raises(ValueError, match="Out of range float"):
        write_json(tmp_path / "nan.json", {"a": float("nan")})
    assert not (tmp_path / "nan.json").exists()
    stale = tmp_path / ".real.json.abc123.tmp"
    stale.write_text("half")
    other = tmp_path / ".other.json.abc123.tmp"
    other.write_text("not ours")
    with RunLock(tmp_path / "real", folder=False) as owner:
        assert remove_stale_temp_files(target, owner=owner) == [stale]
    assert other.exists() and not stale.exists()


def test_temp_files_are_removed_only_under_a_lock_held_over_the_target(tmp_path: Path) -> None:
    from bezkit.files.atomic import remove_stale_temp_files

    target = tmp_path / "flow.safetensors"
    stale = tmp_path / ".flow.safetensors.abc123.tmp"
    stale.write_text("half")
    not_held = RunLock(tmp_path / "flow", folder=False)
    with pytest.raises(ValueError, match=r"only under a lock held over it.*not held"):
        remove_stale_temp_files(target, owner=not_held)
    with (
        RunLock(tmp_path / "other", folder=False) as elsewhere,
        pytest.raises(ValueError, match="does not cover"),
    ):
        remove_stale_temp_files(target, owner=elsewhere)
    assert stale.exists()
    with RunLock(tmp_path, folder=True) as folder_lock:  # a folder lock covers its files
        assert RunLock.held_over(target) is folder_lock
        assert remove_stale_temp_files(target, owner=folder_lock) == [stale]
    assert RunLock.held_over(target) is None


def test_lock_coverage_of_a_file_prefix(tmp_path: Path) -> None:
    lock = RunLock(tmp_path / "flow", folder=False)
    assert lock.covers(tmp_path / "flow.safetensors") and lock.covers(tmp_path / "flow.json")
    assert lock.covers(tmp_path / "flow.train.safetensors")
    assert not lock.covers(tmp_path / "flow2.json")
    assert not lock.covers(tmp_path / "sub" / "flow.json")


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_an_atomic_write_gives_a_new_file_the_mode_of_a_plain_write(
    tmp_path: Path, umask: int
) -> None:
    from bezkit.files.atomic import atomic_write, write_json

    before = os.umask(umask)
    try:
        with open(tmp_path / "plain.json", "w") as fh:
            fh.write("{}")
        write_json(tmp_path / "atomic.json", {})
        atomic_write(tmp_path / "via-callback.bin", lambda tmp: Path(tmp).write_bytes(b"x"))
    finally:
        os.umask(before)
    expected = 0o666 & ~umask
    assert (tmp_path / "plain.json").stat().st_mode & 0o777 == expected
    assert (tmp_path / "atomic.json").stat().st_mode & 0o777 == expected
    assert (tmp_path / "via-callback.bin").stat().st_mode & 0o777 == expected


def test_an_atomic_write_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path) -> None:
    from bezkit.files.atomic import write_json

    target = tmp_path / "results.json"
    target.write_text("old")
    target.chmod(0o640)
    write_json(target, {"a": 1})
    assert target.stat().st_mode & 0o777 == 0o640 and target.read_text().startswith("{")
    target.chmod(0o444)  # read-only: replaced (a rename, as before), still read-only
    write_json(target, {"a": 2})
    assert target.stat().st_mode & 0o777 == 0o444 and '"a": 2' in target.read_text()


def test_cli_claim_output_dir_refuses_a_second_claim(tmp_path: Path) -> None:
    from bezkit.cli.common import CLIError, release_claimed_outputs
    from bezkit.cli.outputs import claim_output_dir

    lock = claim_output_dir(tmp_path / "exp", what="experiment")
    assert (tmp_path / "exp").is_dir()
    with pytest.raises(CLIError, match="--out: another experiment is using"):
        claim_output_dir(tmp_path / "exp", what="experiment")
    release_claimed_outputs()  # what bezkit.cli.main does when a command ends
    assert not lock.held
    claim_output_dir(tmp_path / "exp", what="experiment")  # free again
    release_claimed_outputs()
    with pytest.raises(CLIError, match="--out: cannot write in /proc"):
        claim_output_dir("/proc/x", what="experiment")


def test_the_file_writers_import_no_torch() -> None:
    """The atomic writers and the output checks are usable where torch is not loaded (the course
    kit writes through them)."""
    code = "import sys, bezkit.files; print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_stale_temp_files_of_a_name_with_glob_characters(tmp_path: Path) -> None:
    """A target named like a glob pattern removes its own temporary files and no other's."""
    from bezkit.files.atomic import remove_stale_temp_files

    target = tmp_path / "run[1].json"
    ours = tmp_path / ".run[1].json.abc123.tmp"
    ours.write_text("half")
    theirs = tmp_path / ".run1.json.abc123.tmp"  # what the unescaped pattern [1] would match
    theirs.write_text("another file's write in flight")
    with RunLock(tmp_path, folder=True) as owner:
        assert remove_stale_temp_files(target, owner=owner) == [ours]
    assert theirs.exists() and not ours.exists()


def test_a_released_lock_removes_its_file_and_the_next_lock_works(tmp_path: Path) -> None:
    """Issue 17: empty lock files stayed behind after successful runs."""
    for folder in (True, False):
        lock = RunLock(tmp_path / "out", folder=folder).acquire()
        assert lock.lock_file.exists()
        lock.release()
        assert not lock.lock_file.exists()
        with RunLock(tmp_path / "out", folder=folder), pytest.raises(RunLocked):
            RunLock(tmp_path / "out", folder=folder).acquire()


def test_a_lock_on_a_file_its_holder_unlinked_is_taken_again_on_the_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race that removing lock files opens: this process opens the lock file, its holder
    releases (unlinks it) and a third process creates and locks a new one before this process
    locks the old, unlinked file. Holding that one would be two holders of one lock."""
    import bezkit.files.run_dir as run_dir

    first = RunLock(tmp_path / "flow", folder=False).acquire()
    stale = os.open(first.lock_file, os.O_RDWR)  # the file the racing process opened
    real_open = os.open
    calls = []

    def open_then_race(path, flags, mode=0o777):
        if not calls:  # the holder releases, a third process locks a fresh file
            calls.append(path)
            first.release()
            third.acquire()
            return stale
        return real_open(path, flags, mode)

    third = RunLock(tmp_path / "flow", folder=False)
    monkeypatch.setattr(run_dir.os, "open", open_then_race)
    with pytest.raises(RunLocked):
        RunLock(tmp_path / "flow", folder=False).acquire()
    monkeypatch.undo()
    assert third.held
    third.release()
