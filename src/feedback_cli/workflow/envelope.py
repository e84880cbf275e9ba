"""The checksummed JSON envelope both checkpoints are written in: a run's `workflow_checkpoint.json`
(workflow/checkpoint.py) and a batch's `batch_checkpoint.json` (workflow/batch_state.py).

    {"format", "schema_version", "fbloop_version", "checksum", "state"}

`checksum` is the sha256 of the canonical JSON of `state`, so a hand edit or a torn write is caught. One
implementation for both, so a fix to either (a FIFO in the file's place, JSON nested too deeply, a secret
inside the state) is a fix to both:

- written: the state redacted (a key inside a prompt or a provider's text is hidden, never a reason to
  refuse the save, which would leave the run or batch unresumable for ever), sealed, written atomically;
- read: only a regular file (a FIFO must not hang a resume), then JSON, format, schema version and
  checksum, each problem one CheckpointError line naming the file. What a schema version means, and the
  model the state is validated against, stay with each checkpoint's own module.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from feedback_cli.errors import CheckpointError, InputError
from feedback_cli.files import atomic_write_bytes, canonical_json, read_regular, sha256_bytes
from feedback_cli.redaction import Redactor


def checksum(body: dict[str, Any]) -> str:
    """What seals a state: the sha256 of its canonical JSON."""
    return sha256_bytes(canonical_json(body))


def write_envelope(
    path: Path,
    *,
    kind: str,
    schema_version: int,
    fbloop_version: str,
    body: dict[str, Any],
    redactor: Redactor,
) -> Path:
    """Redact `body`, seal it and write the envelope atomically at `path` (readers see the old or the new
    file, never half). The checksum is of the redacted state: what the file holds is what a resume trusts."""
    state = redactor.scrub(body)
    envelope = {
        "format": kind,
        "schema_version": schema_version,
        "fbloop_version": fbloop_version,
        "checksum": checksum(state),
        "state": state,
    }
    text = json.dumps(envelope, indent=1, ensure_ascii=False)
    atomic_write_bytes(path, (text + "\n").encode())
    return path


def read_envelope_bytes(path: Path, what: str) -> bytes:
    """The file's bytes, only if it is a regular file: a FIFO in its place must not hang the resume."""
    try:
        return read_regular(path, what)
    except InputError as exc:
        raise CheckpointError(exc.message) from None


def parse_envelope(raw: bytes, path: Path, *, kind: str, what: str) -> tuple[dict[str, Any], int]:
    """(envelope, its schema version) of a JSON object of format `kind` with an integer schema version. The
    caller decides what the version means, then checks the state with `sealed_state`."""
    try:
        envelope = json.loads(raw)
    except RecursionError:  # hand-made or hostile, nested thousands deep: no checkpoint fbloop writes is
        raise CheckpointError(f"{what} {path} is not valid: its JSON is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{what} {path} is not valid JSON (truncated or corrupted)") from None
    if not isinstance(envelope, dict) or envelope.get("format") != kind:
        raise CheckpointError(f"{path} is not an fbloop {what}")
    version = envelope.get("schema_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{what} {path} has no schema version")
    return envelope, version


def sealed_state(envelope: dict[str, Any], path: Path, what: str) -> dict[str, Any]:
    """The envelope's state, if its checksum holds."""
    body = envelope.get("state")
    try:
        intact = isinstance(body, dict) and envelope.get("checksum") == checksum(body)
    except RecursionError:  # parsed, but too deep to serialise again for the checksum
        raise CheckpointError(f"{what} {path} is not valid: its JSON is nested too deeply") from None
    if not intact:
        raise CheckpointError(f"{what} {path} failed its checksum (edited or corrupted)")
    return body  # type: ignore[return-value]


def read_envelope(path: Path, *, kind: str, what: str, check_version: Callable[[int], None]) -> tuple[int, dict]:
    """Read, parse and verify an envelope: (schema version, state). `check_version` raises for a version the
    caller cannot read; it runs before the checksum, as the version decides how the state is read."""
    envelope, version = parse_envelope(read_envelope_bytes(path, what), path, kind=kind, what=what)
    check_version(version)
    return version, sealed_state(envelope, path, what)


def invalid_state_line(exc: ValidationError, path: Path, what: str) -> str:
    """One line for a state that does not fit its model: where, and what is wrong there."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{what} {path} is invalid at {where}: {first['msg']}"
