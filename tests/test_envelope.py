"""The one checksummed envelope of both checkpoints (workflow/envelope.py): a run's and a batch's loader meet
the same damage with the same one line naming the file, and both writers redact and seal the same way."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from feedback_cli.errors import CheckpointError
from feedback_cli.redaction import Redactor
from feedback_cli.workflow import checkpoint
from feedback_cli.workflow.batch_state import BATCH_CHECKPOINT_NAME, BATCH_FORMAT, load_batch
from feedback_cli.workflow.envelope import checksum, write_envelope

#: kind -> (file name, format, how messages name it, loader)
KINDS: dict[str, tuple[str, str, str, Callable[[Path], Any]]] = {
    "run": (checkpoint.CHECKPOINT_NAME, checkpoint.FORMAT, "checkpoint", checkpoint.load),
    "batch": (BATCH_CHECKPOINT_NAME, BATCH_FORMAT, "batch checkpoint", load_batch),
}


def _sealed(kind: str, state: Any) -> bytes:
    body = {"format": KINDS[kind][1], "schema_version": 1, "fbloop_version": "0", "state": state}
    body["checksum"] = checksum(state) if isinstance(state, dict) else "0"
    return json.dumps(body).encode()


DAMAGE: dict[str, tuple[Callable[[str], bytes | None], str]] = {
    "truncated": (
        lambda kind: _sealed(kind, {"a": 1})[:-7],
        "{what} {path} is not valid JSON (truncated or corrupted)",
    ),
    "nested": (
        lambda kind: b"[" * 100_000 + b"]" * 100_000,
        "{what} {path} is not valid: its JSON is nested too deeply",
    ),
    "not_fbloop": (lambda kind: b'{"format": "something else"}', "{path} is not an fbloop {what}"),
    "no_version": (
        lambda kind: json.dumps({"format": KINDS[kind][1], "state": {}}).encode(),
        "{what} {path} has no schema version",
    ),
    "edited": (
        lambda kind: _sealed(kind, {"a": 1}).replace(b'"a": 1', b'"a": 2'),
        "{what} {path} failed its checksum (edited or corrupted)",
    ),
    "fifo": (lambda kind: None, "{what} {path} is not a regular file"),
}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_both_loaders_refuse_the_same_damage_in_the_same_line(tmp_path: Path, kind: str, damage: str) -> None:
    name, _, what, load = KINDS[kind]
    path = tmp_path / name
    make, message = DAMAGE[damage]
    content = make(kind)
    if content is None:
        os.mkfifo(path)  # opened for reading it would block: it must be refused, not waited on
    else:
        path.write_bytes(content)
    target = tmp_path if kind == "batch" or damage != "fifo" else path
    with pytest.raises(CheckpointError) as caught:
        load(target)
    line = caught.value.line()
    assert "\n" not in line
    if damage == "fifo":
        assert str(path) in line and "regular file" in line, line
    else:
        assert line == message.format(what=what, path=path), line


@pytest.mark.parametrize("kind", list(KINDS))
def test_both_writers_redact_before_sealing(tmp_path: Path, kind: str) -> None:
    name, form, _, _ = KINDS[kind]
    secret = "sk-" + "k" * 40
    path = write_envelope(
        tmp_path / name,
        kind=form,
        schema_version=1,
        fbloop_version="0",
        body={"prompt": f"a fox, key {secret}"},
        redactor=Redactor([secret]),
    )
    raw = path.read_text()
    assert secret not in raw
    envelope = json.loads(raw)
    assert envelope["format"] == form and envelope["checksum"] == checksum(envelope["state"])
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temp file left
