"""The data that crosses a boundary or lands on disk: options, run state, stage and item records.

Paths are stored relative to the run folder so a run folder can be moved or shared. What the engine reads back
to decide something (an item's group and round, whether it was scored, a stage waiting for its review, ...) is
a typed field; `StageRecord.outputs` holds only named results that later stages, the reports and users read,
with typed accessors where the engine reads them (`StageRecord.round_log`, `stop_reason`, `best_key`).
Schema 2 is the typed state; a schema-1 checkpoint is migrated on load (workflow/migrate.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from feedback_cli.agents.schemas import Critique
from feedback_cli.choices import Backend, Workflow

SCHEMA_VERSION = 2


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class RunOptions(BaseModel):
    """Everything the user chose for a run; stored in the checkpoint so resume uses the same."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    workflow: Workflow = Workflow.full
    prompt_file: str | None = None
    input_image: str | None = None
    # These Field bounds are the one rule for what a run may ask for: the CLI flags, `fbloop stage`,
    # `fbloop resume --max-cost` and a loaded checkpoint are all held to them (workflow/bounds.py).
    max_iterations_image: int = Field(default=3, ge=1, le=50)
    max_iterations_video: int = Field(default=3, ge=1, le=50)
    num_image_variations: int = Field(default=8, ge=1, le=64)
    num_video_attempts: int = Field(default=3, ge=1, le=16)
    threshold_image: float = Field(default=85.0, ge=0, le=100)
    threshold_video: float = Field(default=85.0, ge=0, le=100)
    interactive: bool = False
    storyboard: bool = False
    clips: int = Field(default=2, ge=1, le=12)
    backend: Backend = Backend.offline  # resolved: never `auto` once a run exists
    scorers: str = "offline"
    seed: int = 0
    verbose: bool = False
    max_cost: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    #: rounds of the generation stages (issue 13): candidates per round are the variations / attempts above
    max_rounds_image: int = Field(default=3, ge=1, le=20)
    max_rounds_video: int = Field(default=1, ge=1, le=20)
    target_image: float = Field(default=85.0, ge=0, le=100)
    target_video: float = Field(default=85.0, ge=0, le=100)
    patience: int = Field(default=1, ge=1, le=20)


class Artifact(BaseModel):
    """A file the run produced, with the hash that resume checks."""

    path: str  # relative to the run folder
    sha256: str
    bytes: int
    kind: Literal["image", "video", "json", "text"] = "json"


class ScoreEntry(BaseModel):
    scorer: str
    raw: float
    normalized: float
    model_id: str
    #: what the scorer noted about this value (a prompt truncated for CLIP, a VQAScore fallback)
    notes: list[str] = Field(default_factory=list)


#: what the provider last said about an item's job. in_flight: created (or maybe created: a create that got no
#: answer) and not seen to end; a resume re-attaches to it. The rest are how it ended; "gone": the provider does
#: not know the id. None: no job yet, or a checkpoint from before this field (a job's fate then is unknown).
JobState = Literal["in_flight", "succeeded", "failed", "canceled", "gone"]


class ItemExtra(BaseModel):
    """Where an item sits in its stage and what it was made from (its group, round and prompt), and what was
    measured on it besides its scores. `extra` in the JSON since schema 1 (the README points users at
    `extra.elements`); typed since schema 2."""

    #: selection happens per group: "" (images), "all" (one video), "clip_NN" (a storyboard clip's videos)
    group: str = ""
    #: the round the item was made in (rounds of a generation stage; storyboard regenerations); None: made
    #: outside rounds
    round: int | None = None
    #: the prompt it was made from, where it differs per round
    prompt: str | None = None
    #: the element check's answers to the stage's frozen questions (scoring.elements.ElementCheck as JSON)
    elements: dict[str, Any] | None = None
    #: what the provider reported about the job (e.g. Replicate's `predict_time`)
    metrics: dict[str, Any] = Field(default_factory=dict)

    @property
    def round_no(self) -> int:
        """The round, 1 for an item made outside rounds."""
        return self.round if self.round is not None else 1


class ItemRecord(BaseModel):
    """One paid (or offline) job inside a stage: an image variation, a frame, a video attempt."""

    key: str  # stable within the stage, e.g. "image_03" or "clip_01_start"
    index: int
    seed: int
    status: Literal["pending", "submitted", "succeeded", "failed"] = "pending"
    provider: str = ""
    model: str = ""
    job_id: str | None = None  # e.g. the Replicate prediction id, recorded before waiting
    job_state: JobState | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    artifact: Artifact | None = None
    scores: list[ScoreEntry] = Field(default_factory=list)
    overall: float | None = None
    cost_usd: float = 0.0
    started_at: str | None = None
    finished_at: str | None = None
    latency_s: float | None = None
    error: str | None = None
    #: every scorer has run on the artifact (a resume scores a succeeded item that is not)
    scored: bool = False
    #: a create request went out at this time and got no answer: the job may exist; a resume looks for it
    #: from here before making another
    unanswered_since: str | None = None
    #: `--retry-failed` re-attaches to the item's job first; if the provider shows that job ended without an
    #: output, a new one is made (stages/generation.py)
    recreate_if_ended: bool = False
    #: when fbloop canceled the item's job at the provider (it gave up waiting)
    canceled_by_fbloop: str | None = None
    extra: ItemExtra = Field(default_factory=ItemExtra)


class IterationRecord(BaseModel):
    """One turn of the writer/critic loop."""

    iteration: int
    scope: str = ""  # "" for the stage's single loop, e.g. "clip_01" in storyboard mode
    prompt: str
    rationale: str = ""
    critique: Critique
    writer_model: str = ""
    critic_model: str = ""
    cost_usd: float = 0.0
    latency_s: float = 0.0
    at: str = Field(default_factory=utcnow)
    human_feedback: str | None = None


class CostEntry(BaseModel):
    """One line of the cost ledger."""

    stage: str
    provider: str
    model: str
    what: str
    usd: float
    estimated: bool = False
    detail: dict[str, Any] = Field(default_factory=dict)
    at: str = Field(default_factory=utcnow)


class CallInFlight(BaseModel):
    """A paid request that was sent and has not been answered yet. It is on disk before the request goes
    out, so if the process dies meanwhile, the resume books it at its estimate (the provider may have
    billed it)."""

    id: str
    stage: str
    provider: str
    model: str
    what: str
    estimate_usd: float | None = None
    started_at: str = Field(default_factory=utcnow)


class ReviewDecision(BaseModel):
    stage: str
    action: Literal["continue", "pick", "regenerate", "stop"]
    choice: str | None = None
    feedback: str | None = None
    at: str = Field(default_factory=utcnow)


class RevisionRecord(BaseModel):
    """How the critic and the writer revised a round's prompt into the next round's (agents/revision.py's
    Revision, with what the call cost and which candidates the critic saw)."""

    model_config = ConfigDict(extra="allow")  # the rest of the revision as the writer gave it

    prompt: str = ""
    changes: list[str] = Field(default_factory=list)
    model: str = ""
    cost_usd: float = 0.0
    latency_s: float = 0.0
    critic_saw: list[str] = Field(default_factory=list)


class RoundRecord(BaseModel):
    """One round of a generation stage (stages/rounds.py): N candidates from one prompt, and its outcome.
    Stored in the stage's outputs as `rounds` (or `rounds_clip_NN`): the round log users and rounds.json read."""

    round: int = Field(ge=1)
    prompt: str = ""
    status: Literal["running", "done"] = "running"
    #: the person's words this round was revised with (a regenerate at the review), and that it was one
    human_feedback: str | None = None
    feedback_round: bool = False
    #: how this round's prompt was made from the previous one (None for round 1)
    revision: RevisionRecord | None = None
    #: the round's own best candidate, its overall and element scores and the questions it failed
    best_key: str | None = None
    best_overall: float | None = None
    best_elements: float | None = None
    failed: list[str] = Field(default_factory=list)
    #: the pick across every round so far
    best_so_far_key: str | None = None
    best_so_far_overall: float | None = None
    #: why the round made nothing (a later round that failed keeps the best so far)
    error: str | None = None
    wall_s: float | None = None


StageStatus = Literal["pending", "running", "completed", "skipped", "failed", "interrupted"]


class StageRecord(BaseModel):
    name: str
    number: int
    folder: str
    status: StageStatus = "pending"
    skip_reason: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    wall_time_s: float = 0.0
    cost_usd: float = 0.0
    iterations: list[IterationRecord] = Field(default_factory=list)
    items: list[ItemRecord] = Field(default_factory=list)
    #: named results later stages read (e.g. "final_prompt", "best_image"), JSON values
    outputs: dict[str, Any] = Field(default_factory=dict)
    artifacts: list[Artifact] = Field(default_factory=list)
    #: stage quality figures for the summary, e.g. {"prompt_score": 88.0}
    scores: dict[str, float | None] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    error: str | None = None
    attempts: int = 0
    #: the stage finished and its review (`--interactive`) has not been answered yet: a resume asks it
    awaiting_review: bool = False
    #: a stage regenerated at its review without rounds of its own (the storyboard): which round of output
    #: it is on (1, and one more per regenerate taken in) and the person's latest words
    review_round: int = Field(default=1, ge=1)
    review_feedback: str | None = None

    @model_validator(mode="after")
    def _round_logs_have_their_shape(self) -> StageRecord:
        # a round log that does not read as RoundRecords is refused with the checkpoint, not mid-stage
        for key, value in self.outputs.items():
            if key == "rounds" or key.startswith("rounds_"):
                if not isinstance(value, list):
                    raise ValueError(f"outputs.{key} is not a list of rounds")
                for n, entry in enumerate(value):
                    try:
                        RoundRecord.model_validate(entry)
                    except ValidationError as exc:
                        first = exc.errors()[0]
                        where = "".join(f".{p}" for p in first["loc"])
                        raise ValueError(f"outputs.{key}[{n}]{where}: {first['msg']}") from None
        return self

    # --- typed accessors of the named results the engine reads back ---

    def round_log(self, scope: str = "") -> list[RoundRecord]:
        """The rounds of the stage (or of one of its clips, `scope`), oldest first."""
        return [RoundRecord.model_validate(r) for r in self.outputs.get(_scoped("rounds", scope)) or []]

    def set_round_log(self, rounds: list[RoundRecord], scope: str = "") -> None:
        self.outputs[_scoped("rounds", scope)] = [r.model_dump(mode="json") for r in rounds]

    def stop_reason(self, scope: str = "") -> str | None:
        """Why the stage's (or a clip's) rounds stopped, once they did."""
        value = self.outputs.get(_scoped("stop_reason", scope))
        return value if isinstance(value, str) else None

    def set_stop_reason(self, reason: str, scope: str = "") -> None:
        self.outputs[_scoped("stop_reason", scope)] = reason

    @property
    def best_key(self) -> str | None:
        """The key of the picked item of a stage with a single pick (images), once picked."""
        value = self.outputs.get("best_key")
        return value if isinstance(value, str) else None


def _scoped(key: str, scope: str) -> str:
    """Per-clip results carry the clip: `rounds_clip_01`, `stop_reason_clip_01`."""
    return f"{key}_{scope}" if scope else key


class ResumeRecord(BaseModel):
    """One resume of a run and what it changed: options that may change on resume (`--max-cost`,
    `--interactive`, ...) and settings `--use-current-settings` switched, each as {"from": ..., "to": ...}."""

    at: str = Field(default_factory=utcnow)
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: the recorded settings the environment now differs from and that the run kept, same shape
    kept_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    flags: list[str] = Field(default_factory=list)  # e.g. "--retry-failed", "--break-lock"


RunStatus = Literal["running", "completed", "failed", "interrupted", "stopped", "budget_exceeded"]


class RunState(BaseModel):
    """The whole state of a run; the checkpoint is this plus a checksum."""

    schema_version: int = SCHEMA_VERSION
    fbloop_version: str
    run_id: str
    kind: Literal["workflow", "stage"] = "workflow"
    status: RunStatus = "running"
    created_at: str = Field(default_factory=utcnow)
    updated_at: str = Field(default_factory=utcnow)
    options: RunOptions
    providers: dict[str, str] = Field(default_factory=dict)  # role -> "provider:model"
    scorers: dict[str, list[str]] = Field(default_factory=dict)  # {"image": [...], "video": [...]}
    settings: dict[str, Any] = Field(default_factory=dict)  # public settings, never secrets
    source_prompt: str = ""
    #: the starting prompt was an image (relative path of its copy); stage 1 derives text from it
    prompt_image: str | None = None
    #: `--input-image` (relative path of its copy), the start frame of video-only runs
    input_image: str | None = None
    inputs: list[Artifact] = Field(default_factory=list)
    #: outputs given from files instead of earlier stages (`fbloop stage`), same keys as stage outputs
    given: dict[str, Any] = Field(default_factory=dict)
    stages: list[StageRecord] = Field(default_factory=list)
    ledger: list[CostEntry] = Field(default_factory=list)
    #: agent requests sent but not answered yet (booked as estimates by the next resume)
    calls_in_flight: list[CallInFlight] = Field(default_factory=list)
    reviews: list[ReviewDecision] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    notices: list[str] = Field(default_factory=list)
    error: str | None = None
    resumes: list[ResumeRecord] = Field(default_factory=list)

    def stage(self, name: str) -> StageRecord:
        for record in self.stages:
            if record.name == name:
                return record
        raise KeyError(name)

    def has_stage(self, name: str) -> bool:
        return any(record.name == name for record in self.stages)

    def output(self, key: str) -> Any:
        """The latest finished stage's value for an output key (later stages win)."""
        for record in reversed(self.stages):
            if record.status == "completed" and key in record.outputs:
                return record.outputs[key]
        return self.given.get(key)

    def all_artifacts(self) -> list[Artifact]:
        out = list(self.inputs)
        for record in self.stages:
            out.extend(record.artifacts)
            out.extend(item.artifact for item in record.items if item.artifact is not None)
        return out

    @property
    def total_cost(self) -> float:
        return round(sum(entry.usd for entry in self.ledger), 6)
