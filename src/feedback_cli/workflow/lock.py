"""One process per run folder: an advisory `flock` on `.fbloop.lock` in the run folder (through `filelock`).

The operating system holds the lock and drops it when the process ends, however it ends (SIGKILL
included), so a lock is never left behind and never needs guessing from a pid: a pid recycled by an
unrelated process, or a lock file written on another machine, cannot keep a run locked.

Who holds it is written next to it, in `.fbloop.lock.owner.json` (pid, host, command, start time), only
for the message a second process prints; that file never decides anything. The lock file itself stays
in the folder (deleting it while another process waits on it would give two processes two locks).

`--break-lock` is for a filesystem that cannot lock (filelock then keeps a marker file instead, which a
process on another machine may leave behind): it removes the lock files and takes the lock, unless the
recorded holder is a live process on this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from feedback_cli.errors import InputError, RunLocked
from feedback_cli.files import read_regular, storage_errors
from feedback_cli.runstate.models import utcnow

LOCK_NAME = ".fbloop.lock"
OWNER_NAME = ".fbloop.lock.owner.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> str | None:
    """The kernel's start time of a process (clock ticks since boot), to tell a recycled pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: count fields after its closing ")"
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _command() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "fbloop"
    if name in ("__main__.py", "-m", "-c", "") or name.startswith("python"):
        name = "fbloop"
    return " ".join([name, *sys.argv[1:]])


class RunLock:
    def __init__(self, run_dir: Path, *, break_lock: bool = False) -> None:
        self.path = run_dir / LOCK_NAME
        self.owner_path = run_dir / OWNER_NAME
        self.break_lock = break_lock
        self.held = False
        self._lock: Any = None

    def acquire(self) -> None:
        if self.held:  # taken earlier by the same command (a resume locks before it starts)
            return
        if self._try():
            self._write_owner()
            return
        owner = self._owner()
        if self.break_lock:
            if self._holder_is_running(owner):
                raise RunLocked(
                    f"run {self.path.parent} is in use by a running fbloop process ({self._describe(owner)})",
                    hint="--break-lock never takes the lock from a running process; stop it first",
                )
            for stale in (self.path, self.owner_path):
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
            if self._try():
                self._write_owner()
                return
        raise RunLocked(
            f"run {self.path.parent} is in use by another fbloop process ({self._describe(owner)})",
            hint="wait for it to finish or stop it first; if none is running (a filesystem that cannot lock), "
            "run the same command with --break-lock",
        )

    def _try(self) -> bool:
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path), timeout=0, thread_local=False)
        try:
            with storage_errors(self.path):  # a read-only or full disk: a StorageError naming it, not RunLocked
                lock.acquire()
        except Timeout:
            return False
        except OSError as exc:
            raise RunLocked(f"could not take the lock of {self.path.parent}: {exc.strerror or exc}") from None
        self._lock = lock
        self.held = True
        return True

    def _write_owner(self) -> None:
        data = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": _command(),
            "started_at": utcnow(),
            "process_start": process_start(os.getpid()),
        }
        temp = self.owner_path.with_name(f"{OWNER_NAME}.{os.getpid()}.tmp")
        try:
            temp.write_text(json.dumps(data))
            os.replace(temp, self.owner_path)
        except OSError:  # the message about the holder is a courtesy; the lock itself is held
            with contextlib.suppress(OSError):
                temp.unlink()

    def _owner(self) -> dict[str, Any]:
        try:  # a FIFO here must not hang us; a hand-made file nested deep must not crash us
            data = json.loads(read_regular(self.owner_path, "lock owner file", 64 * 1024))
        except (OSError, ValueError, RecursionError, InputError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _describe(owner: dict[str, Any]) -> str:
        if not owner:
            return "holder unknown"
        parts = [f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}"]
        if owner.get("command"):
            parts.append(f"'{owner['command']}'")
        if owner.get("started_at"):
            parts.append(f"since {owner['started_at']}")
        return ", ".join(parts)

    @staticmethod
    def _holder_is_running(owner: dict[str, Any]) -> bool:
        pid = owner.get("pid")
        if owner.get("host") != socket.gethostname() or not isinstance(pid, int) or not _alive(pid):
            return False
        recorded = owner.get("process_start")
        return recorded is None or process_start(pid) in (None, recorded)

    def release(self) -> None:
        if self.held and self._lock is not None:
            with contextlib.suppress(OSError):
                if self._owner().get("pid") == os.getpid():
                    self.owner_path.unlink()
            self._lock.release()
            self._lock = None
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
