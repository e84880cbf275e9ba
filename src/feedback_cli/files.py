"""File primitives the run folder relies on: atomic writes, hashing, paths kept inside a folder."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from feedback_cli.errors import CheckpointError, InputError, StorageError


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: files are shared with the person auditing the run: the usual 0644, not mkstemp's 0600
FILE_MODE = 0o666 & ~_umask()


#: errors of the place a run is written to (not of fbloop, nor of what the user typed): what each needs
STORAGE_PROBLEMS = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space or raise the quota",
    errno.EROFS: "make it writable",
    errno.EACCES: "make it writable",
    errno.EPERM: "the file is immutable or protected; lift that",
}


@contextlib.contextmanager
def storage_errors(path: Path) -> Iterator[None]:
    """Turn a write that the disk refuses into a StorageError naming the file and what to fix."""
    try:
        yield
    except OSError as exc:
        advice = STORAGE_PROBLEMS.get(exc.errno or 0)
        if advice is None:
            raise
        raise StorageError(f"cannot write {path}: {exc.strerror} ({advice})") from None


def open_regular(path: Path, what: str) -> BinaryIO:
    """Open a file the user named for reading, refusing anything but a regular file.

    A FIFO (also behind a symlink) would block the open or the read forever, a device could stream
    without end: the open does not block (O_NONBLOCK) and the type is checked on the opened file itself,
    so nothing can swap it in between."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a directory, not a file") from None
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be read: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"{what} {path} is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise InputError(f"{what} {path} is a {_file_type(mode)}, not a regular file")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _file_type(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def read_regular(path: Path, what: str, limit: int | None = None) -> bytes:
    """The bytes of a regular file (see `open_regular`); with `limit`, at most limit + 1 bytes."""
    with open_regular(path, what) as fh:
        try:
            return fh.read() if limit is None else fh.read(limit + 1)
        except OSError as exc:
            raise InputError(f"{what} {path} cannot be read: {exc.strerror}") from None


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Temp file in the same folder, flush (+ fsync when durable), os.replace: readers see the old or the
    new file, never half. Files that can be rebuilt from the checkpoint skip the fsync."""
    with storage_errors(path):
        _atomic_write(path, lambda fh: fh.write(data), durable)


def atomic_copy(source: Path, target: Path, what: str = "file") -> None:
    """Copy a regular file in atomically. The copy gets FILE_MODE like every file fbloop writes: the
    source's permission bits (0600, 0755, 0444...) are the source's business, not the run folder's."""
    with open_regular(source, what) as src, storage_errors(target):

        def copy(fh: BinaryIO) -> None:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                fh.write(chunk)

        _atomic_write(target, copy, durable=True)


def _atomic_write(path: Path, write: Any, durable: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if not durable:
        return
    # the rename itself is durable only once the directory entry is flushed
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())


def inside(root: Path, relative: str) -> Path:
    """Resolve a run-relative path, refusing anything that escapes `root`."""
    candidate = Path(relative)
    if candidate.is_absolute() or relative.startswith(("/", "\\")):
        raise CheckpointError(f"path {relative!r} is absolute; run folder paths must be relative")
    resolved = (root / candidate).resolve()
    root_resolved = root.resolve()
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise CheckpointError(f"path {relative!r} points outside the run folder")
    return resolved
