"""One process per run folder (issue 11): an advisory flock the operating system holds and drops when the
process dies. A second process is refused with one line naming the holder (pid, host, command); a SIGKILLed
holder's lock is free at once; a lock file from the PID-file era (another host, or a pid now used by an
unrelated live process) never blocks; `--break-lock` takes a lock whose holder is not running here."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from feedback_cli.workflow.lock import LOCK_NAME
from tests.conftest import EXAMPLE, read_json
from tests.test_checkpoint import finished_run, rewrite_state  # noqa: F401  (fixture)
from tests.test_safety import wait_for_items

OWNER_NAME = ".fbloop.lock.owner.json"  # who holds the lock, for the message


def start_run(out: Path, latency: str = "0.3") -> subprocess.Popen[str]:
    env = {**os.environ, "FBLOOP_OFFLINE_LATENCY": latency, "FBLOOP_OFFLINE_CONCURRENCY": "1"}
    return subprocess.Popen(
        [
            sys.executable, "-m", "feedback_cli", "run", str(EXAMPLE), "--workflow", "image-only", "--seed", "3",
            "--num-image-variations", "6", "--output-dir", str(out),
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def lock_is_free(run: Path) -> bool:
    from filelock import FileLock, Timeout

    lock = FileLock(str(run / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return False
    lock.release()
    return True


def test_a_second_process_is_refused_naming_the_holder(cli, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    proc = start_run(out)
    try:
        run = wait_for_items(out, "image_generation")
        result = cli("resume", run)
        assert result.exit_code == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        line = lines[0]
        assert "in use by another fbloop process" in line
        assert f"pid {proc.pid} on {socket.gethostname()}" in line
        assert "fbloop run " in line and "--num-image-variations 6" in line, line
        assert not lock_is_free(run)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert lock_is_free(run) and not (run / OWNER_NAME).exists(), "released when its holder stopped"


def test_a_sigkilled_holders_lock_is_free_at_once(cli, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    proc = start_run(out)
    try:
        run = wait_for_items(out, "image_generation")
        assert (run / OWNER_NAME).is_file()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (run / OWNER_NAME).is_file(), "the killed process left its note behind"
    assert lock_is_free(run), "the kernel dropped the lock with the process"
    result = cli("resume", run)
    assert result.exit_code == 0, result.stderr
    assert read_json(run / "workflow_summary.json")["status"] == "completed"
    assert not (run / OWNER_NAME).exists()


@pytest.mark.parametrize(
    "holder",
    [
        {"pid": os.getpid(), "host": socket.gethostname()},  # the pid now belongs to an unrelated live process
        {"pid": 1, "host": socket.gethostname()},
        {"pid": os.getpid(), "host": "another-machine.example"},  # written on another host
        {"pid": 2**22 + 12345, "host": socket.gethostname()},  # a dead process
    ],
    ids=["recycled-pid", "pid-1", "other-host", "dead-pid"],
)
def test_a_pid_file_era_lock_never_blocks(cli, finished_run: Path, holder: dict) -> None:  # noqa: F811
    rewrite_state(finished_run, lambda s: s.update(status="interrupted"))
    (finished_run / LOCK_NAME).write_text(json.dumps(holder))
    (finished_run / OWNER_NAME).write_text(json.dumps({**holder, "command": "fbloop run old"}))
    result = cli("resume", finished_run)
    assert result.exit_code == 0, result.stderr
    assert read_json(finished_run / "workflow_summary.json")["status"] == "completed"
    assert lock_is_free(finished_run)


HOLDER = """
import json, os, sys, time
from filelock import FileLock
run, host = sys.argv[1], sys.argv[2]
lock = FileLock(os.path.join(run, ".fbloop.lock"), timeout=0)
lock.acquire()
with open(os.path.join(run, ".fbloop.lock.owner.json"), "w") as fh:
    json.dump({"pid": os.getpid(), "host": host, "command": "fbloop resume elsewhere"}, fh)
print("held", flush=True)
time.sleep(120)
"""


def hold_lock(run: Path, host: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run), host], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_break_lock_takes_a_lock_whose_holder_is_not_running_here(cli, finished_run: Path) -> None:  # noqa: F811
    """A lock held on a shared folder by another machine's process (the note says so): refused, with the
    holder named and --break-lock suggested; --break-lock takes it, and the trace records that."""
    rewrite_state(finished_run, lambda s: s.update(status="interrupted"))
    holder = hold_lock(finished_run, "another-machine.example")
    try:
        refused = cli("resume", finished_run)
        assert refused.exit_code == 2
        line = refused.stderr.strip()
        assert "\n" not in line and f"pid {holder.pid} on another-machine.example" in line
        assert "'fbloop resume elsewhere'" in line and "--break-lock" in line
        taken = cli("resume", finished_run, "--break-lock")
        assert taken.exit_code == 0, taken.stderr
    finally:
        holder.kill()
        holder.wait()
    trace = read_json(finished_run / "workflow_trace.json")
    assert trace["status"] == "completed" and "--break-lock" in trace["resumes"][-1]["flags"]


def test_break_lock_never_takes_the_lock_of_a_process_running_here(cli, finished_run: Path) -> None:  # noqa: F811
    rewrite_state(finished_run, lambda s: s.update(status="interrupted"))
    holder = hold_lock(finished_run, socket.gethostname())
    try:
        for command in (("resume", finished_run, "--break-lock"), ("run", "--resume", finished_run, "--break-lock")):
            result = cli(*command)
            assert result.exit_code == 2
            assert f"pid {holder.pid} on {socket.gethostname()}" in result.stderr
            assert "never takes the lock from a running process" in result.stderr
        assert read_json(finished_run / "workflow_checkpoint.json")["state"]["status"] == "interrupted"
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0)  # the kernel released the holder's lock with the process
    assert lock_is_free(finished_run)
