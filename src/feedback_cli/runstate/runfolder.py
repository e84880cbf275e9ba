"""The run folder: creation (never reusing a name), safe writes, and secret redaction.

Every file fbloop writes for a run goes through here, so two promises hold in one place:
paths stay inside the folder, and no secret value reaches disk.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from feedback_cli.errors import InputError
from feedback_cli.files import atomic_write_bytes, inside, sha256_bytes, storage_errors
from feedback_cli.redaction import Redactor
from feedback_cli.runstate.models import Artifact


def new_run_dir(output_dir: Path, now: datetime | None = None, taken: set[str] | frozenset[str] = frozenset()) -> Path:
    """Create `{YYYYMMDD_HHMMSS}` under output_dir, adding `_2`, `_3`... if the name exists or is in `taken`
    (the run ids elsewhere under the same output folder, so that an id names one run)."""
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError(f"output dir {output_dir} exists and is not a directory")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output dir {output_dir}: {exc.strerror}") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise InputError(f"output dir {output_dir} is not writable")
    stamp = (now or datetime.now()).strftime("%Y%m%d_%H%M%S")
    for n in range(1, 1000):
        candidate = output_dir / (stamp if n == 1 else f"{stamp}_{n}")
        if candidate.name in taken:
            continue
        try:
            candidate.mkdir()  # exclusive: two runs started in the same second get different folders
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"cannot create run folder in {output_dir}: {exc.strerror}") from None
        return candidate
    raise InputError(f"too many runs named {stamp} in {output_dir}")


def new_named_run_dir(run_dir: Path) -> Path:
    """Create exactly `run_dir` (its parents as needed); refuse if it exists: a folder is never reused."""
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir()
    except FileExistsError:
        raise InputError(f"run folder {run_dir} already exists") from None
    except OSError as exc:
        raise InputError(f"cannot create run folder {run_dir}: {exc.strerror}") from None
    return run_dir


class RunFolder:
    def __init__(self, root: Path, secrets: list[str] | None = None) -> None:
        self.root = root
        #: the run's one redactor (`Settings.secrets()`); the engine's events and the checkpoint use it too
        self.redactor = Redactor(secrets or [])

    def path(self, relative: str) -> Path:
        return inside(self.root, relative)

    def rel(self, path: Path) -> str:
        return path.resolve().relative_to(self.root.resolve()).as_posix()

    def redact(self, text: str) -> str:
        return self.redactor.redact(text)

    def write_bytes(
        self, relative: str, data: bytes, kind: Literal["image", "video", "json", "text"], durable: bool = True
    ) -> Artifact:
        target = self.path(relative)
        atomic_write_bytes(target, data, durable)
        return Artifact(path=relative, sha256=sha256_bytes(data), bytes=len(data), kind=kind)

    def write_text(self, relative: str, text: str) -> Artifact:
        return self.write_bytes(relative, self.redact(text).encode(), "text")

    def write_json(self, relative: str, data: Any, durable: bool = True) -> Artifact:
        # strings first (a secret with a quote or backslash is escaped in the JSON text), then the text
        text = json.dumps(self.redactor.scrub(data), indent=2, ensure_ascii=False, default=str) + "\n"
        return self.write_bytes(relative, self.redact(text).encode(), "json", durable)

    def append_log(self, line: str) -> None:
        path = self.path("run.log")
        with storage_errors(path), path.open("a", encoding="utf-8") as fh:
            fh.write(self.redact(line) + "\n")
