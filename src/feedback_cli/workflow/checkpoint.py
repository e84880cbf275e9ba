"""`workflow_checkpoint.json`: written atomically after every stage and every paid item,
validated in full before a resume trusts it.

Envelope: {"format", "schema_version", "fbloop_version", "checksum", "state"}; the checksum is the
sha256 of the canonical JSON of `state`, so a hand edit or a torn write is caught. A checkpoint of an older
schema is checked against its own checksum, then migrated (workflow/migrate.py); it is written in the current
schema, with a new checksum, by the next save.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from feedback_cli.errors import CheckpointError
from feedback_cli.files import canonical_json, inside, sha256_bytes, sha256_file
from feedback_cli.runstate.models import SCHEMA_VERSION, RunState
from feedback_cli.runstate.runfolder import RunFolder
from feedback_cli.workflow.bounds import clip_count_problem, problem
from feedback_cli.workflow.envelope import parse_envelope, read_envelope_bytes, write_envelope
from feedback_cli.workflow.migrate import MigrationError, migrate

CHECKPOINT_NAME = "workflow_checkpoint.json"
FORMAT = "fbloop-checkpoint"


def save(folder: RunFolder, state: RunState) -> Path:
    # A secret in the state (a provider error that echoed the key, a key inside model output) is redacted
    # before the checksum, never a reason to refuse: refusing left the run "running" forever, and every
    # resume met the same text again. What the file holds is what a resume trusts.
    return write_envelope(
        folder.path(CHECKPOINT_NAME),
        kind=FORMAT,
        schema_version=SCHEMA_VERSION,
        fbloop_version=state.fbloop_version,
        body=state.model_dump(mode="json"),
        redactor=folder.redactor,
    )


def locate(target: Path) -> tuple[Path, Path]:
    """A run folder or a checkpoint file -> (run folder, checkpoint path)."""
    if target.is_dir():
        checkpoint = target / CHECKPOINT_NAME
        if not checkpoint.exists():
            raise CheckpointError(f"{target} has no {CHECKPOINT_NAME}; it is not an fbloop run folder")
        return target, checkpoint
    if target.is_file():
        return target.parent, target
    if target.exists():
        raise CheckpointError(f"{target} is not a regular file or a run folder")
    raise CheckpointError(f"{target} does not exist")


def load(target: Path, *, verify_artifacts: bool = True) -> tuple[Path, RunState]:
    """Read and validate a checkpoint; one clear CheckpointError per problem."""
    run_dir, path = locate(target)
    raw = read_envelope_bytes(path, "checkpoint")  # a FIFO in its place must not hang the resume
    try:
        return run_dir, _parse(run_dir, path, raw, verify_artifacts)
    except RecursionError:
        # a hand-made or hostile file nested thousands of levels deep: no checkpoint fbloop writes is
        raise CheckpointError(f"checkpoint {path} is not valid: its JSON is nested too deeply") from None


def _parse(run_dir: Path, path: Path, raw: bytes, verify_artifacts: bool) -> RunState:
    envelope, version = parse_envelope(raw, path, kind=FORMAT, what="checkpoint")
    if version > SCHEMA_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has schema {version}, newer than this fbloop supports ({SCHEMA_VERSION})",
            hint="upgrade fbloop",
        )
    if version < 1:
        raise CheckpointError(f"checkpoint {path} has schema {version}, which no fbloop wrote")
    body = envelope.get("state")
    # the checksum seals the state as it was written, in its own schema: checked before any migration
    if not isinstance(body, dict) or envelope.get("checksum") != sha256_bytes(canonical_json(body)):
        raise CheckpointError(f"checkpoint {path} failed its checksum (edited or corrupted)")
    if version < SCHEMA_VERSION:
        try:
            body = migrate(body, version)
        except (MigrationError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"checkpoint {path} of schema {version} cannot be brought to schema {SCHEMA_VERSION}: {exc}"
            ) from None
    try:
        # a valid checksum only proves nobody edited the file without re-sealing it: the options are held to
        # the same bounds as the flags (RunOptions), so a re-sealed checkpoint cannot ask for more
        state = RunState.model_validate(body)
    except ValidationError as exc:
        bound = problem(exc, {}, under=("options",))
        if bound is not None:
            raise CheckpointError(f"checkpoint {path}: option {bound}") from None
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CheckpointError(f"checkpoint {path} is invalid at {where}: {first['msg']}") from None
    for key in ("clips", "clip_prompts"):  # clips given from files (`fbloop stage`), under the --clips bound
        given = state.given.get(key)
        if isinstance(given, list) and (too_many := clip_count_problem(len(given), f"the number of given {key}")):
            raise CheckpointError(f"checkpoint {path}: {too_many}")
    for record in state.stages:
        inside(run_dir, record.folder)
    for artifact in state.all_artifacts():
        file = inside(run_dir, artifact.path)
        if not verify_artifacts:
            continue
        if not file.is_file():
            raise CheckpointError(f"artifact {artifact.path} recorded in the checkpoint is missing")
        if file.stat().st_size != artifact.bytes or sha256_file(file) != artifact.sha256:
            raise CheckpointError(f"artifact {artifact.path} changed since it was recorded")
    return state
