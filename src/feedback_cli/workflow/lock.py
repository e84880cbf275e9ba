"""One process per run folder: an exclusive lock file holding the owner's pid.

A lock left by a process that no longer exists (killed with SIGKILL) is stale and taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from types import TracebackType

from feedback_cli.errors import InputError, RunLocked
from feedback_cli.workflow.files import read_regular, storage_errors

LOCK_NAME = ".fbloop.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_NAME
        self.held = False

    def acquire(self) -> None:
        payload = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
        for _ in range(2):
            try:
                with storage_errors(self.path):
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._stale():
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
                    continue
                raise RunLocked(
                    f"run {self.path.parent} is in use by another fbloop process ({self._owner()})",
                    hint="wait for it to finish or stop it first",
                ) from None
            try:
                with storage_errors(self.path), os.fdopen(fd, "wb") as fh:
                    fh.write(payload)
            except BaseException:
                with contextlib.suppress(OSError):
                    self.path.unlink()  # an empty lock would only confuse the next process
                raise
            self.held = True
            return
        raise RunLocked(f"could not take the lock of {self.path.parent}")

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(read_regular(self.path, "lock file", 64 * 1024))  # a FIFO here must not hang us
        except (OSError, ValueError, RecursionError, InputError):  # unreadable or hand-made: no owner
            return {}
        return data if isinstance(data, dict) else {}

    def _owner(self) -> str:
        data = self._read()
        return f"pid {data.get('pid', '?')} on {data.get('host', '?')}"

    def _stale(self) -> bool:
        data = self._read()
        pid = data.get("pid")
        if data.get("host") not in (None, socket.gethostname()):
            return False  # another machine's process: we cannot tell, so respect it
        return not isinstance(pid, int) or not _alive(pid)

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
