"""What `fbloop inspect` knows about runs, as typed, versioned reports built from the checkpoints.

- `list_runs`: the runs under an output dir, newest first, a folder that is not a readable run as broken;
- `inspect_run` -> `InspectReport`: one run, per stage its writer/critic iterations, its candidates (every
  score, overall, pick, cost, latency), its round loops (one per stage, or one per storyboard clip), then
  totals, the human reviews and the cost of every call;
- `compare_runs` -> `CompareReport`: run B against run A, stage by stage.

The reports are the `fbloop inspect --json` contract: `format` names which report, `schema_version` is bumped
when a key is removed, renamed or changes meaning (a new key may be added within a version). The terminal
tables (`ui/inspect_view.py`) and the HTML report (`ui/html_report.py`) only render these models.

Nothing here knows a stage by its name: what a stage did is read from its record (its items, its outputs,
its round loops), so a new stage is inspected as the built-in ones are. Everything reads the checkpoint
without verifying artifacts, so failed, interrupted and old runs whose files were moved still inspect; a
missing file is reported as missing.
"""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from feedback_cli.errors import CheckpointError
from feedback_cli.runstate.models import CostEntry, ItemRecord, IterationRecord, ReviewDecision, RunState, StageRecord
from feedback_cli.workflow import checkpoint
from feedback_cli.workflow.report import summarize

INSPECT_FORMAT = "fbloop-inspect"
COMPARE_FORMAT = "fbloop-compare"
INSPECT_SCHEMA_VERSION = 1
#: stage outputs too long to show (the video plan, the element questions): they live in their own files
HIDDEN_OUTPUTS = ("plan", "questions")
#: where a round loop keeps its rounds and its stop reason in the stage outputs (see stages/rounds.py):
#: `rounds` / `stop_reason` for the stage's one loop, `rounds_{scope}` / `stop_reason_{scope}` for a clip's
ROUNDS_KEY = "rounds"
STOP_REASON_KEY = "stop_reason"
#: stage outputs naming the pick (`best_key`, `best_image`, `best_video`, `best_videos`, ...)
PICK_PREFIX = "best_"

#: one word-level change: ("=", kept words), ("-", removed words), ("+", added words)
WordChange = tuple[Literal["=", "-", "+"], str]


def word_diff(before: str, after: str) -> list[WordChange]:
    """Word-level changes from `before` to `after`: ("=", words), ("-", removed words), ("+", added words)."""
    a, b = before.split(), after.split()
    out: list[WordChange] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("=", " ".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("-", " ".join(a[i1:i2])))
        if j2 > j1:
            out.append(("+", " ".join(b[j1:j2])))
    return out


# ------------------------------------------------------------------------------------------------
# the list of runs


class RunListing(BaseModel):
    run_id: str
    path: str
    created_at: str | None = None
    workflow: str | None = None
    backend: str | None = None
    status: str
    prompt: str | None = None
    best_image_score: float | None = None
    best_video_score: float | None = None
    cost_usd: float | None = None
    time_s: float | None = None
    problem: str | None = None


def _mtime_iso(path: Path) -> str | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="milliseconds")
    except OSError:
        return None


def _broken(folder: Path, problem: str) -> RunListing:
    return RunListing(
        run_id=folder.name, path=str(folder), created_at=_mtime_iso(folder), status="broken", problem=problem
    )


def _best_score(state: RunState, kind: str) -> float | None:
    """The best overall score of the first stage that picked media of `kind` ("image", "video")."""
    for record in state.stages:
        picked = _picked_items(record)
        if any(item.artifact is not None and item.artifact.kind == kind for item in picked):
            return record.scores.get("best_overall")
    return None


def list_runs(root: Path) -> list[RunListing]:
    """Every folder under `root`, newest first; one that is not a readable run is listed as broken."""
    from feedback_cli.workflow.locate import run_dirs  # workflow runs and `fbloop stage` runs (DIR/{stage}/)

    out = []
    for folder in run_dirs(root):
        try:
            _, state = checkpoint.load(folder, verify_artifacts=False)
            summary = summarize(state)
            listing = RunListing(
                run_id=state.run_id,
                path=str(folder),
                created_at=state.created_at,
                workflow=summary.workflow,
                backend=summary.backend,
                status=state.status,
                prompt=" ".join(state.source_prompt.split()) or None,
                best_image_score=_best_score(state, "image"),
                best_video_score=_best_score(state, "video"),
                cost_usd=summary.total_cost_usd,
                time_s=summary.total_time_s,
            )
        except CheckpointError as exc:
            problem = exc.message.replace(str(folder / checkpoint.CHECKPOINT_NAME), checkpoint.CHECKPOINT_NAME)
            out.append(_broken(folder, problem.replace(str(folder), folder.name)))
            continue
        except Exception as exc:  # a state this version cannot summarise is still listed, never a crash
            out.append(_broken(folder, f"{type(exc).__name__}: {exc}"))
            continue
        out.append(listing)
    out.sort(key=lambda r: (r.created_at or "", r.run_id), reverse=True)
    return out


# ------------------------------------------------------------------------------------------------
# one run: the models


class Candidate(BaseModel):
    """One item of a stage: a candidate image or video (or a keyframe), its scores and whether it is the pick."""

    key: str
    group: str
    round: int
    status: str
    kind: str | None
    path: str | None
    exists: bool
    seed: int | None
    provider: str
    model: str
    #: scorer -> 0-100
    scores: dict[str, float]
    #: scorer -> the scorer's own value
    raw_scores: dict[str, float]
    overall: float | None
    winner: bool
    cost_usd: float
    latency_s: float | None
    prompt: str
    error: str | None


class Iteration(BaseModel):
    """One writer/critic iteration of a prompt stage, with its word diff from the previous prompt of its scope."""

    scope: str
    iteration: int
    prompt: str
    rationale: str
    critic_score: float
    criteria: dict[str, float]
    feedback: list[str]
    faithful: bool
    human_feedback: str | None
    writer_model: str
    critic_model: str
    cost_usd: float
    latency_s: float
    at: str
    #: None for the first iteration of a scope
    changes: list[WordChange] | None = None


class Round(BaseModel):
    """One round of a generation loop (issue 13): its prompt with the word diff from the previous round's,
    the questions its best candidate failed, its best score, the pick so far, and a person's feedback."""

    round: int | None
    prompt: str
    #: None for the first round
    changes: list[WordChange] | None
    failed: list[str]
    best_key: str | None
    best_overall: float | None
    best_elements: float | None
    best_so_far_key: str | None
    best_so_far_overall: float | None
    human_feedback: str | None
    status: str | None
    #: why a round made nothing (its best so far stays the pick)
    error: str | None = None


class RoundLoop(BaseModel):
    """The rounds of one loop: the stage's (scope "") or, in storyboard mode, one clip's (scope "clip_01")."""

    scope: str
    rounds: list[Round]
    stop_reason: str | None
    #: the key of the loop's pick now (a person's pick at the review included)
    pick: str | None


class StageFile(BaseModel):
    path: str
    kind: str
    exists: bool


class StageReport(BaseModel):
    number: int
    name: str
    title: str
    folder: str
    status: str
    skip_reason: str | None
    error: str | None
    attempts: int
    started_at: str | None
    finished_at: str | None
    cost_usd: float
    wall_time_s: float
    scores: dict[str, float | None]
    outputs: dict[str, Any]
    notes: list[str]
    iterations: list[Iteration]
    #: every scorer that scored a candidate, in first-seen order
    scorers: list[str]
    candidates: list[Candidate]
    #: group -> key of the current pick
    winners: dict[str, str]
    #: the highest round number among the candidates
    rounds: int
    #: the rounds of the stage's own loop (scope ""); a clip's rounds are in `round_loops`
    round_log: list[Round]
    stop_reason: str | None
    files: list[StageFile]
    #: the candidates compete for a pick (one per group); False: every item is used (storyboard keyframes)
    picking: bool = False
    #: every round loop of the stage: its own (scope "") and, in storyboard mode, one per clip
    round_loops: list[RoundLoop] = Field(default_factory=list)


class Totals(BaseModel):
    cost_usd: float
    time_s: float
    stages: int
    stages_done: int
    candidates: int
    candidates_failed: int
    iterations: int
    reviews: int
    missing_files: list[str]


class Call(BaseModel):
    """One paid (or offline, free) call of the cost ledger; of its detail only the figures (tokens, seconds)."""

    stage: str
    provider: str
    model: str
    what: str
    usd: float
    estimated: bool
    at: str
    detail: dict[str, int | float]


class InspectReport(BaseModel):
    """Everything `fbloop inspect RUN` shows; its JSON form is what `--json` prints."""

    format: Literal["fbloop-inspect"] = INSPECT_FORMAT
    schema_version: int = INSPECT_SCHEMA_VERSION
    run_id: str
    run_dir: str
    kind: str
    workflow: str
    backend: str
    offline: bool
    label: str | None
    status: str
    error: str | None
    created_at: str
    updated_at: str
    fbloop_version: str
    selection: str
    options: dict[str, Any]
    providers: dict[str, str]
    source_prompt: str
    prompt_image: str | None
    input_image: str | None
    final_image_prompt: str | None
    final_video_prompt: str | None
    best_image: str | None
    best_video: str | None
    best_videos: list[str]
    final_video: str | None
    final_video_join: dict[str, Any] | None
    totals: Totals
    stages: list[StageReport]
    reviews: list[ReviewDecision]
    notices: list[str]
    calls: list[Call]

    def json_data(self) -> dict[str, Any]:
        """The `--json` document."""
        return self.model_dump(mode="json")


# ------------------------------------------------------------------------------------------------
# one run: building the report


def resolve_run(target: Path, output_dir: Path | None = None) -> Path:
    """A run folder, its checkpoint, or a run id under the output dir (workflow or stage run)."""
    if output_dir is None:
        return target
    from feedback_cli.workflow.locate import find_run

    return find_run(target, output_dir)


def load_state(target: Path) -> tuple[Path, RunState]:
    return checkpoint.load(target, verify_artifacts=False)


def _title(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _exists(run_dir: Path, relative: str | None) -> bool:
    if not relative:
        return False
    try:
        return (run_dir / relative).is_file()
    except OSError:
        return False


def _group(item: ItemRecord) -> str:
    return item.extra.group


def _round_scopes(record: StageRecord) -> list[str]:
    """The scopes of the stage's round loops, the stage's own ("") first, then the clips' in their order."""
    scopes = []
    for key, value in record.outputs.items():
        if not isinstance(value, list):
            continue
        if key == ROUNDS_KEY:
            scopes.append("")
        elif key.startswith(ROUNDS_KEY + "_"):
            scopes.append(key.removeprefix(ROUNDS_KEY + "_"))
    return sorted(scopes, key=lambda s: (s != "", s))


def _named_picks(record: StageRecord) -> set[str]:
    """Keys and paths the stage's outputs name as its pick (`best_key`, `best_image`, `best_videos`, ...)."""
    named: set[str] = set()
    for key, value in record.outputs.items():
        if key.startswith(PICK_PREFIX):
            named.update(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str))
    return named


def _picked_items(record: StageRecord) -> list[ItemRecord]:
    named = _named_picks(record)
    return [i for i in record.items if i.key in named or (i.artifact is not None and i.artifact.path in named)]


def is_picking(record: StageRecord) -> bool:
    """Whether the stage's candidates compete for a pick: it ran round loops (a loop ends in a pick across its
    rounds) or its outputs name a pick. Otherwise every item is used, as the storyboard's keyframes are."""
    return bool(_round_scopes(record)) or bool(_picked_items(record))


def _winners(record: StageRecord) -> dict[str, str]:
    """group -> key of the current pick, from the stage's outputs (a human pick included)."""
    if not is_picking(record):
        return {}
    return {_group(item): item.key for item in _picked_items(record)}


def _candidate(run_dir: Path, item: ItemRecord, winners: dict[str, str]) -> Candidate:
    path = item.artifact.path if item.artifact else None
    group = _group(item)
    return Candidate(
        key=item.key,
        group=group,
        round=item.extra.round_no,
        status=item.status,
        kind=item.artifact.kind if item.artifact else None,
        path=path,
        exists=_exists(run_dir, path),
        seed=item.seed,
        provider=item.provider,
        model=item.model,
        scores={e.scorer: round(e.normalized, 3) for e in item.scores},
        raw_scores={e.scorer: e.raw for e in item.scores},
        overall=item.overall,
        winner=winners.get(group) == item.key,
        cost_usd=item.cost_usd,
        latency_s=item.latency_s,
        prompt=str(item.extra.prompt or item.request.get("prompt") or ""),
        error=item.error,
    )


def _iterations(records: list[IterationRecord]) -> list[Iteration]:
    """Each iteration with `changes`: the word diff from the previous prompt of its scope (None for the first)."""
    previous: dict[str, str] = {}
    out = []
    for it in records:
        before = previous.get(it.scope)
        out.append(
            Iteration(
                scope=it.scope,
                iteration=it.iteration,
                prompt=it.prompt,
                rationale=it.rationale,
                critic_score=it.critique.overall,
                criteria=it.critique.scores,
                feedback=list(it.critique.feedback),
                faithful=it.critique.faithful,
                human_feedback=it.human_feedback,
                writer_model=it.writer_model,
                critic_model=it.critic_model,
                cost_usd=it.cost_usd,
                latency_s=it.latency_s,
                at=it.at,
                changes=None if before is None else word_diff(before, it.prompt),
            )
        )
        previous[it.scope] = it.prompt
    return out


def _rounds(entries: list[Any]) -> list[Round]:
    """A loop's rounds, each with the word diff of its prompt from the previous round's."""
    out: list[Round] = []
    before: str | None = None
    for r in entries:
        if not isinstance(r, dict):
            continue
        prompt = str(r.get("prompt", ""))
        out.append(
            Round(
                round=r.get("round"),
                prompt=prompt,
                changes=None if before is None else word_diff(before, prompt),
                failed=list(r.get("failed") or []),
                best_key=r.get("best_key"),
                best_overall=r.get("best_overall"),
                best_elements=r.get("best_elements"),
                best_so_far_key=r.get("best_so_far_key"),
                best_so_far_overall=r.get("best_so_far_overall"),
                human_feedback=r.get("human_feedback"),
                status=r.get("status"),
                error=r.get("error"),
            )
        )
        before = prompt
    return out


def _round_loops(record: StageRecord, winners: dict[str, str]) -> list[RoundLoop]:
    loops = []
    for scope in _round_scopes(record):
        suffix = f"_{scope}" if scope else ""
        rounds = _rounds(record.outputs.get(ROUNDS_KEY + suffix) or [])
        # a clip's loop picks within its group; the stage's own loop has the stage's one pick
        pick = winners.get(scope) if scope else (next(iter(winners.values())) if len(winners) == 1 else None)
        if pick is None and rounds:
            pick = rounds[-1].best_so_far_key
        stop = record.outputs.get(STOP_REASON_KEY + suffix)
        loops.append(
            RoundLoop(scope=scope, rounds=rounds, stop_reason=stop if isinstance(stop, str) else None, pick=pick)
        )
    return loops


def _stage(run_dir: Path, record: StageRecord, selection: str) -> StageReport:
    winners = _winners(record)
    candidates = [_candidate(run_dir, item, winners) for item in record.items]
    scorers: list[str] = []
    for c in candidates:
        scorers.extend(name for name in c.scores if name not in scorers)
    rank_rule = selection == "rank"

    def order(c: Candidate) -> tuple[Any, ...]:
        overall = c.overall
        value = 0.0 if overall is None else (overall if rank_rule else -overall)
        return (c.group, -c.round, c.status != "succeeded", overall is None, value, c.key)

    candidates.sort(key=order)
    item_paths = {c.path for c in candidates}
    files = [
        StageFile(path=a.path, kind=a.kind, exists=_exists(run_dir, a.path))
        for a in record.artifacts
        if a.path not in item_paths
    ]
    loops = _round_loops(record, winners)
    own = next((loop for loop in loops if loop.scope == ""), None)
    return StageReport(
        number=record.number,
        name=record.name,
        title=_title(record.name),
        folder=record.folder,
        status=record.status,
        skip_reason=record.skip_reason,
        error=record.error,
        attempts=record.attempts,
        started_at=record.started_at,
        finished_at=record.finished_at,
        cost_usd=round(record.cost_usd, 6),
        wall_time_s=round(record.wall_time_s, 3),
        scores=record.scores,
        outputs={k: v for k, v in record.outputs.items() if k not in HIDDEN_OUTPUTS},
        notes=list(record.notes),
        iterations=_iterations(record.iterations),
        scorers=scorers,
        candidates=candidates,
        winners=winners,
        rounds=max((c.round for c in candidates), default=0),
        round_log=own.rounds if own else [],
        stop_reason=record.outputs.get(STOP_REASON_KEY),
        files=files,
        picking=is_picking(record),
        round_loops=loops,
    )


def _call(entry: CostEntry) -> Call:
    figures = {k: v for k, v in entry.detail.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return Call(
        stage=entry.stage,
        provider=entry.provider,
        model=entry.model,
        what=entry.what,
        usd=entry.usd,
        estimated=entry.estimated,
        at=entry.at,
        detail=figures,
    )


def inspect_run(target: Path) -> InspectReport:
    """Everything `fbloop inspect RUN` shows."""
    run_dir, state = load_state(target)
    return build_report(run_dir, state)


def build_report(run_dir: Path, state: RunState) -> InspectReport:
    summary = summarize(state)
    selection = str(state.settings.get("selection", "weighted"))
    stages = [_stage(run_dir, record, selection) for record in state.stages]
    candidates = [c for s in stages for c in s.candidates]
    missing = sorted(
        {c.path for c in candidates if c.path and not c.exists}
        | {f.path for s in stages for f in s.files if not f.exists}
    )
    return InspectReport(
        run_id=state.run_id,
        run_dir=str(run_dir),
        kind=state.kind,
        workflow=summary.workflow,
        backend=summary.backend,
        offline=summary.offline,
        label=summary.label,
        status=state.status,
        error=state.error,
        created_at=state.created_at,
        updated_at=state.updated_at,
        fbloop_version=state.fbloop_version,
        selection=selection,
        options=state.options.model_dump(mode="json"),
        providers=state.providers,
        source_prompt=state.source_prompt,
        prompt_image=state.prompt_image,
        input_image=state.input_image,
        final_image_prompt=summary.final_image_prompt,
        final_video_prompt=summary.final_video_prompt,
        best_image=summary.best_image,
        best_video=summary.best_video,
        best_videos=summary.best_videos,
        final_video=summary.final_video,
        final_video_join=state.output("assembly") if summary.final_video else None,
        totals=Totals(
            cost_usd=summary.total_cost_usd,
            time_s=summary.total_time_s,
            stages=len(stages),
            stages_done=sum(1 for s in stages if s.status in ("completed", "skipped")),
            candidates=len(candidates),
            candidates_failed=sum(1 for c in candidates if c.status == "failed"),
            iterations=sum(len(s.iterations) for s in stages),
            reviews=len(state.reviews),
            missing_files=missing,
        ),
        stages=stages,
        reviews=list(state.reviews),
        notices=list(state.notices),
        calls=[_call(entry) for entry in state.ledger],
    )


# ------------------------------------------------------------------------------------------------
# two runs side by side


class Delta(BaseModel):
    """A figure of run A, of run B, and B - A (None when either is not a number)."""

    a: Any = None
    b: Any = None
    delta: float | None = None


class Sides(BaseModel):
    a: Any = None
    b: Any = None


class RunHead(BaseModel):
    run_id: str
    run_dir: str
    workflow: str
    backend: str
    offline: bool
    status: str
    created_at: str
    options: dict[str, Any]
    best_image: str | None
    #: each clip's pick, or the one video's (None when there is none)
    best_videos: list[str | None]


class CompareStage(BaseModel):
    name: str
    number: int | None
    #: the stage's status in A and in B (None: the run has no such stage)
    status: Sides
    scores: dict[str, Delta]
    cost_usd: Delta
    wall_time_s: Delta
    iterations: Delta
    #: what each run settled on: its winner(s) (group -> key) or its final prompt(s) (label -> prompt)
    pick: Sides
    pick_changed: bool | None
    pick_same_file: bool
    #: the picks are candidates (else prompts)
    picking: bool = False


class CompareTotals(BaseModel):
    cost_usd: Delta
    time_s: Delta
    iterations: Delta
    candidates: Delta


class CompareReport(BaseModel):
    """Run B against run A, stage by stage (matched by name); its JSON form is what `--compare --json` prints."""

    format: Literal["fbloop-compare"] = COMPARE_FORMAT
    schema_version: int = INSPECT_SCHEMA_VERSION
    a: RunHead
    b: RunHead
    stages: list[CompareStage]
    totals: CompareTotals

    def json_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _delta(a: Any, b: Any) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return round(float(b) - float(a), 6)
    return None


def _triple(a: Any, b: Any) -> Delta:
    return Delta(a=a, b=b, delta=_delta(a, b))


def _pick_of(stage: StageReport | None) -> dict[str, Any] | None:
    """What a stage settled on: its winner(s) for candidate stages, its final prompt(s) for prompt stages."""
    if stage is None or stage.status == "skipped":
        return None
    if stage.picking:
        return dict(sorted(stage.winners.items())) or None
    outputs = stage.outputs
    if outputs.get("clip_prompts"):
        return {f"clip {c.get('clip', i + 1)}": c.get("motion_prompt") for i, c in enumerate(outputs["clip_prompts"])}
    for key in ("final_prompt", "video_prompt", "image_prompt"):
        if outputs.get(key):
            return {"prompt": outputs[key]}
    return None


def _pick_hashes(state: RunState, name: str) -> list[str]:
    if not state.has_stage(name):
        return []
    record = state.stage(name)
    keys = set(_winners(record).values())
    return sorted(i.artifact.sha256 for i in record.items if i.key in keys and i.artifact is not None)


def _run_head(report: InspectReport) -> RunHead:
    return RunHead(
        run_id=report.run_id,
        run_dir=report.run_dir,
        workflow=report.workflow,
        backend=report.backend,
        offline=report.offline,
        status=report.status,
        created_at=report.created_at,
        options=report.options,
        best_image=report.best_image,
        best_videos=list(report.best_videos) or [report.best_video],
    )


def compare_runs(a: Path, b: Path) -> CompareReport:
    """Run B against run A, stage by stage (matched by name): B - A deltas and pick changes."""
    dir_a, state_a = load_state(a)
    dir_b, state_b = load_state(b)
    report_a, report_b = build_report(dir_a, state_a), build_report(dir_b, state_b)
    by_a = {s.name: s for s in report_a.stages}
    by_b = {s.name: s for s in report_b.stages}
    names = [s.name for s in report_a.stages] + [n for n in by_b if n not in by_a]
    stages = []
    for name in names:
        sa, sb = by_a.get(name), by_b.get(name)
        keys: list[str] = []
        for s in (sa, sb):
            for key in s.scores if s else {}:
                if key not in keys:
                    keys.append(key)
        scores_a, scores_b = (sa.scores if sa else {}), (sb.scores if sb else {})
        scores = {key: _triple(scores_a.get(key), scores_b.get(key)) for key in keys}
        pick_a, pick_b = _pick_of(sa), _pick_of(sb)
        picking = bool((sa and sa.picking) or (sb and sb.picking))
        hashes_a = _pick_hashes(state_a, name) if picking else []
        stages.append(
            CompareStage(
                name=name,
                number=(sa or sb).number if (sa or sb) else None,
                status=Sides(a=sa.status if sa else None, b=sb.status if sb else None),
                scores=scores,
                cost_usd=_triple(sa.cost_usd if sa else None, sb.cost_usd if sb else None),
                wall_time_s=_triple(sa.wall_time_s if sa else None, sb.wall_time_s if sb else None),
                iterations=_triple(len(sa.iterations) if sa else None, len(sb.iterations) if sb else None),
                pick=Sides(a=pick_a, b=pick_b),
                pick_changed=None if pick_a is None or pick_b is None else pick_a != pick_b,
                pick_same_file=bool(hashes_a) and hashes_a == _pick_hashes(state_b, name),
                picking=picking,
            )
        )
    ta, tb = report_a.totals, report_b.totals
    return CompareReport(
        a=_run_head(report_a),
        b=_run_head(report_b),
        stages=stages,
        totals=CompareTotals(
            cost_usd=_triple(ta.cost_usd, tb.cost_usd),
            time_s=_triple(ta.time_s, tb.time_s),
            iterations=_triple(ta.iterations, tb.iterations),
            candidates=_triple(ta.candidates, tb.candidates),
        ),
    )
