"""The state of a batch and `batch_checkpoint.json`, in the same checksummed envelope as a run's checkpoint
(workflow/envelope.py).

The batch checkpoint records what each row is (its prompt and resolved run options) and what the driver
last knew of it; each row's own `runs/{id}/workflow_checkpoint.json` stays the truth about that run, so a
batch killed at any moment is reconciled from its runs on resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from feedback_cli.errors import CheckpointError
from feedback_cli.files import inside
from feedback_cli.redaction import Redactor
from feedback_cli.runstate.models import RunOptions, utcnow
from feedback_cli.workflow.envelope import invalid_state_line, read_envelope, write_envelope

BATCH_CHECKPOINT_NAME = "batch_checkpoint.json"
BATCH_SUMMARY_NAME = "batch_summary.json"
RESULTS_CSV = "results.csv"
RESULTS_JSONL = "results.jsonl"
BATCH_FORMAT = "fbloop-batch-checkpoint"
BATCH_SCHEMA_VERSION = 1
#: how its messages name the file
WHAT = "batch checkpoint"

RowStatus = Literal["pending", "running", "completed", "failed", "budget_exceeded", "interrupted", "stopped"]
#: statuses after which a plain `fbloop resume BATCH_DIR` leaves the row alone
FINAL_ROW_STATUSES = ("completed", "failed")


class RowResult(BaseModel):
    """What results.csv/jsonl shows of a row; filled from the run's state when the row stops."""

    best_image: str | None = None  # relative to the batch folder
    best_video: str | None = None
    best_videos: list[str] = Field(default_factory=list)
    scores: dict[str, float | None] = Field(default_factory=dict)  # "{stage}.{score}" -> value
    cost_usd: float = 0.0
    time_s: float = 0.0
    final_image_prompt: str | None = None


class BatchRowState(BaseModel):
    id: str
    line: int
    prompt: str
    options: RunOptions
    #: role -> provider, each chosen on its own (`providers.registry.resolve_backend`); empty: the pair of
    #: options.backend
    providers: dict[str, str] = Field(default_factory=dict)
    input_image: str | None = None  # absolute path of the row's start frame (video-only)
    run_dir: str  # relative to the batch folder: runs/{id}
    status: RowStatus = "pending"
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    error: str | None = None
    result: RowResult = Field(default_factory=RowResult)


class BatchState(BaseModel):
    schema_version: int = BATCH_SCHEMA_VERSION
    fbloop_version: str
    batch_id: str
    created_at: str = Field(default_factory=utcnow)
    updated_at: str = Field(default_factory=utcnow)
    prompts_file: str  # as the user gave it
    prompts_copy: str  # relative copy inside the batch folder
    prompts_sha256: str
    executor: Literal["local", "ray"] = "local"
    concurrency: int = Field(default=4, ge=1)
    max_cost: float | None = Field(default=None, ge=0)
    #: public settings the batch started with; a resume pins the ones that shape outputs
    settings: dict[str, Any] = Field(default_factory=dict)
    status: Literal["running", "completed", "incomplete", "interrupted"] = "running"
    rows: list[BatchRowState] = Field(default_factory=list)
    notices: list[str] = Field(default_factory=list)
    wall_time_s: float = 0.0

    def row(self, row_id: str) -> BatchRowState:
        for row in self.rows:
            if row.id == row_id:
                return row
        raise KeyError(row_id)


def is_batch_dir(target: Path) -> bool:
    # by name, whatever the file is: a FIFO or a folder in its place is refused by load_batch in one line
    return (target.is_dir() and (target / BATCH_CHECKPOINT_NAME).exists()) or (
        target.name == BATCH_CHECKPOINT_NAME and target.exists()
    )


def batch_root(target: Path) -> Path:
    return target.parent if target.is_file() else target


def save_batch(root: Path, state: BatchState, secrets: list[str]) -> Path:
    state.updated_at = utcnow()
    # redacted like the run checkpoint: a key inside a row's prompt or a provider's text is hidden, never a
    # reason to refuse the save (which would leave the batch unresumable for ever)
    return write_envelope(
        root / BATCH_CHECKPOINT_NAME,
        kind=BATCH_FORMAT,
        schema_version=BATCH_SCHEMA_VERSION,
        fbloop_version=state.fbloop_version,
        body=state.model_dump(mode="json"),
        redactor=Redactor(secrets),
    )


def load_batch(target: Path) -> tuple[Path, BatchState]:
    """Read and validate `batch_checkpoint.json`; one clear CheckpointError per problem."""
    root = batch_root(target)
    path = root / BATCH_CHECKPOINT_NAME

    def readable(version: int) -> None:
        if version != BATCH_SCHEMA_VERSION:
            newer = version > BATCH_SCHEMA_VERSION
            raise CheckpointError(
                f"{WHAT} {path} has schema {version}, "
                + ("newer than this fbloop supports" if newer else "too old to resume"),
                hint="upgrade fbloop" if newer else None,
            )

    _, body = read_envelope(path, kind=BATCH_FORMAT, what=WHAT, check_version=readable)
    try:
        state = BatchState.model_validate(body)
    except ValidationError as exc:
        raise CheckpointError(invalid_state_line(exc, path, WHAT)) from None
    for row in state.rows:
        inside(root, row.run_dir)
    return root, state
