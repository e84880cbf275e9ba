"""A disk that refuses writes (read-only, immutable checkpoint, full) and checkpoints nobody could have written
(nested 200 000 levels deep): one line each, the right exit code, and the resume command where resuming
later can help.

The disk cases are real: a tmpfs mounted read-only or filled up, `chattr +i`. They need root with the right
capabilities (CI containers may lack CAP_SYS_ADMIN / CAP_LINUX_IMMUTABLE) and are skipped, saying why,
when the machine does not allow them. The /sys case needs nothing: sysfs refuses new files even to root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedback_cli.errors import StorageError
from feedback_cli.files import atomic_copy, atomic_write_bytes
from feedback_cli.runstate.runfolder import RunFolder
from feedback_cli.workflow.lock import RunLock
from tests.conftest import EXAMPLE, only_run, read_json
from tests.test_checkpoint import rewrite_state, snapshot

DEEP = 200_000


def resumable_run(cli, out: Path) -> Path:  # type: ignore[no-untyped-def]
    """A small finished run marked interrupted, so a resume has work to save."""
    result = cli("run", EXAMPLE, "--workflow", "prompt-only", "--seed", "1", "--output-dir", out)
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    rewrite_state(run, lambda s: s.update(status="interrupted"))
    return run


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("fbloop: error:")]


def assert_one_line_with_resume(result, run: Path, *names: str) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, (result.exit_code, result.stderr)
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert "internal error" not in line and "Traceback" not in result.stderr + result.stdout
    assert "Checkpoint saved" not in line, "nothing could be saved: the line must not claim it was"
    assert line.endswith(f"resume with: fbloop resume {run}"), line
    for name in names:
        assert name in line, line
    return line


# --- no privileges needed ----------------------------------------------------------------------------


@pytest.fixture
def sysfs_dir() -> Path:
    """/sys refuses to create files, also for root (EACCES): a write fbloop cannot do anywhere."""
    target = Path("/sys/kernel")
    probe = target / "fbloop-probe"
    if not target.is_dir():
        pytest.skip("no sysfs mounted at /sys")
    try:
        probe.write_bytes(b"x")
    except OSError:
        return target
    probe.unlink()
    pytest.skip("this /sys accepts new files")


def test_writes_the_disk_refuses_are_storage_errors(sysfs_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("x")
    for write in (
        lambda: atomic_write_bytes(sysfs_dir / "fbloop.json", b"{}"),
        lambda: atomic_copy(source, sysfs_dir / "copy.txt"),
        lambda: RunFolder(sysfs_dir).append_log("a line"),
        lambda: RunLock(sysfs_dir).acquire(),
    ):
        with pytest.raises(StorageError) as info:
            write()
        assert str(sysfs_dir) in info.value.message and "Permission denied" in info.value.message


def test_other_os_errors_are_not_mistaken_for_a_full_or_read_only_disk(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):  # a path under a file is a bug or a race, not the disk: not dressed up as one
        atomic_write_bytes(tmp_path / "file" / "below.json", b"{}")


# --- deep nesting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[" * DEEP + "]" * DEEP,
        '{"format": "fbloop-checkpoint", "schema_version": 1, "checksum": "0", "state": '
        + '{"a": ' * DEEP
        + "1"
        + "}" * DEEP
        + "}",
        '{"format": "fbloop-checkpoint", "schema_version": 1, "checksum": "0", "state": {"stages": '
        + "[" * 5000
        + "]" * 5000
        + "}}",
    ],
    ids=["top-level-lists", "state-dicts", "five-thousand"],
)
def test_a_deeply_nested_checkpoint_is_one_line_exit_2(cli, tmp_path: Path, body: str) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "runs"
    run = resumable_run(cli, out)
    (run / "workflow_checkpoint.json").write_text(body)
    before = snapshot(run)
    for args in (["resume", run], ["run", "--resume", run], ["inspect", run], ["inspect", run, "--json"]):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.exit_code, result.stderr)
        assert result.stderr.strip() == (
            f"fbloop: error: checkpoint {run / 'workflow_checkpoint.json'} is not valid: its JSON is nested too deeply"
        ), args
    listed = cli("inspect", "--output-dir", out, "--json")
    assert listed.exit_code == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert "nested too deeply" in entry["problem"]
    assert snapshot(run) == before


# --- a real read-only file system, an immutable checkpoint, a full disk ----------------------------------


def _mount_tmpfs(path: Path, size: str) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (no CAP_SYS_ADMIN?): {done.stderr.decode().strip()}")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "mnt"
    _mount_tmpfs(mount_point, "16m")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_resume_on_a_read_only_file_system(cli, tmpfs: Path) -> None:  # type: ignore[no-untyped-def]
    run = resumable_run(cli, tmpfs / "runs")
    before = snapshot(run)
    remount = subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], capture_output=True)
    if remount.returncode != 0:
        pytest.skip(f"cannot remount read-only: {remount.stderr.decode().strip()}")
    result = cli("resume", run)
    assert_one_line_with_resume(result, run, "Read-only file system", "make it writable")
    subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
    assert snapshot(run) == before
    again = cli("resume", run)  # once the file system is writable, the resume the line offered works
    assert again.exit_code == 0, again.stderr
    assert read_json(run / "workflow_summary.json")["status"] == "completed"


@pytest.fixture
def immutable_checkpoint(cli, tmp_path: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    run = resumable_run(cli, tmp_path / "runs")
    checkpoint = run / "workflow_checkpoint.json"
    if shutil.which("chattr") is None:
        pytest.skip("chattr(1) is not installed")
    done = subprocess.run(["chattr", "+i", str(checkpoint)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not possible here: {done.stderr.decode().strip()}")
    try:
        yield run
    finally:
        subprocess.run(["chattr", "-i", str(checkpoint)], capture_output=True)


def test_resume_with_an_immutable_checkpoint(cli, immutable_checkpoint: Path) -> None:  # type: ignore[no-untyped-def]
    run = immutable_checkpoint
    checkpoint = (run / "workflow_checkpoint.json").read_bytes()
    result = cli("resume", run)
    assert_one_line_with_resume(result, run, f"cannot write {run / 'workflow_checkpoint.json'}", "immutable")
    assert (run / "workflow_checkpoint.json").read_bytes() == checkpoint
    assert not list(run.glob(".workflow_checkpoint.json.*")), "no temp file left behind"
    lock = RunLock(run)
    lock.acquire()  # the lock was released: it can be taken at once
    lock.release()
    subprocess.run(["chattr", "-i", str(run / "workflow_checkpoint.json")], check=True)
    again = cli("resume", run)
    assert again.exit_code == 0, again.stderr
    assert read_json(run / "workflow_summary.json")["status"] == "completed"


def _fill(folder: Path) -> Path:
    """Write until the file system says ENOSPC (big blocks, then small ones); return the filler file."""
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (1 << 20, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


def test_resume_on_a_full_disk(cli, tmpfs: Path) -> None:  # type: ignore[no-untyped-def]
    run = resumable_run(cli, tmpfs / "runs")
    checkpoint = (run / "workflow_checkpoint.json").read_bytes()
    filler = _fill(tmpfs)
    result = cli("resume", run)
    assert_one_line_with_resume(result, run, "No space left on device", "free some space")
    assert (run / "workflow_checkpoint.json").read_bytes() == checkpoint, "the last checkpoint stands"
    filler.unlink()
    again = cli("resume", run)
    assert again.exit_code == 0, again.stderr
    assert read_json(run / "workflow_summary.json")["status"] == "completed"


def test_a_run_whose_disk_fills_up_mid_stage_stops_with_the_resume_line(cli, tmpfs: Path) -> None:  # type: ignore[no-untyped-def]
    """Stage 2 writes images into a full disk: the run stops (no item quietly marked failed for it)."""
    out = tmpfs / "runs"
    result = cli("run", EXAMPLE, "--workflow", "image-only", "--num-image-variations", "2", "--output-dir", out)
    assert result.exit_code == 0, result.stderr
    run = only_run(out)

    def undo_stage2(state: dict) -> None:
        state["status"] = "interrupted"
        state["stages"][1].update(status="interrupted", items=[], artifacts=[], outputs={}, scores={})
        state["ledger"] = [e for e in state["ledger"] if e["stage"] != "image_generation"]

    rewrite_state(run, undo_stage2)
    for path in (run / "stage_2_image_generation").iterdir():
        path.unlink()
    (run / "run.log").write_text("")
    # room for the lock, the log and small JSON, not for images
    filler = _fill(tmpfs)
    filler_size = filler.stat().st_size
    with filler.open("r+b") as fh:
        fh.truncate(max(0, filler_size - 24 * 1024))
    result = cli("resume", run)
    assert_one_line_with_resume(result, run, "No space left on device")
    state = read_json(run / "workflow_checkpoint.json")["state"]
    assert all(item["status"] != "failed" for item in state["stages"][1]["items"]), "the disk is not the item's fault"
    filler.unlink()
    again = cli("resume", run)
    assert again.exit_code == 0, again.stderr
    assert read_json(run / "workflow_summary.json")["status"] == "completed"


@pytest.mark.timeout(120)  # a FIFO in place of the lock's owner file used to block for ever
@pytest.mark.parametrize("owner", ["fifo", "deep", "list"])
def test_a_hand_made_lock_owner_file_is_ignored_not_waited_on(cli, tmp_path: Path, owner: str) -> None:  # type: ignore[no-untyped-def]
    from filelock import FileLock

    from feedback_cli.workflow.lock import LOCK_NAME, OWNER_NAME

    run = resumable_run(cli, tmp_path / "runs")
    path = run / OWNER_NAME
    if owner == "fifo":
        os.mkfifo(path)
    else:
        path.write_text("[" * DEEP + "]" * DEEP if owner == "deep" else "[1, 2]")
    held = FileLock(str(run / LOCK_NAME), timeout=0, thread_local=False)
    held.acquire()  # another holder: the resume reads the owner file to say who
    try:
        result = cli("resume", run)
    finally:
        held.release()
    assert result.exit_code == 2, result.stderr
    (line,) = error_lines(result.stderr)
    assert "is in use by another fbloop process (holder unknown)" in line
    again = cli("resume", run)  # and once the holder is gone, the resume goes ahead
    assert again.exit_code == 0, again.stderr
    assert read_json(run / "workflow_summary.json")["status"] == "completed"


@pytest.mark.timeout(120)
def test_a_fifo_in_place_of_the_lock_file_does_not_block(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from feedback_cli.workflow.lock import LOCK_NAME

    run = resumable_run(cli, tmp_path / "runs")
    (run / LOCK_NAME).unlink(missing_ok=True)  # the lock file stays after a run (a lock is its flock, not the file)
    os.mkfifo(run / LOCK_NAME)
    result = cli("resume", run)
    assert result.exit_code in (0, 2), result.stderr
    assert len(error_lines(result.stderr)) == (0 if result.exit_code == 0 else 1), result.stderr


def test_a_new_run_on_a_full_disk_is_one_line_and_leaves_no_half_made_folder(cli, tmpfs: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmpfs / "runs"
    out.mkdir()
    _fill(tmpfs)
    result = cli("run", EXAMPLE, "--workflow", "prompt-only", "--output-dir", out)
    assert result.exit_code in (1, 2), result.stderr  # 2 when even the run folder cannot be made
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "No space left on device" in lines[0], result.stderr
    assert "internal error" not in lines[0] and "resume" not in lines[0], "no checkpoint: nothing to resume"
    assert list(out.iterdir()) == [], "no broken run folder left behind"


def test_an_html_report_the_disk_refuses_is_one_line(cli, tmp_path: Path, sysfs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    run = resumable_run(cli, tmp_path / "runs")
    result = cli("inspect", run, "--html", sysfs_dir / "report.html")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.strip() == (
        f"fbloop: error: the HTML report: cannot write {sysfs_dir / 'report.html'}: "
        "Permission denied (make it writable)"
    )
