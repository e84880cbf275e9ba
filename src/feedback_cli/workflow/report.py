"""`workflow_trace.json` (everything) and `workflow_summary.json` (end-to-end figures), rewritten after
every stage so an interrupted or failed run is as auditable as a finished one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from feedback_cli.runstate.models import RunState
from feedback_cli.runstate.runfolder import RunFolder

TRACE_NAME = "workflow_trace.json"
SUMMARY_NAME = "workflow_summary.json"
SUMMARY_SCHEMA_VERSION = 1
TRACE_SCHEMA_VERSION = 1
OFFLINE_LABEL = "OFFLINE: made by fbloop's offline backend, not by a real model; nothing was paid"
#: a run whose agents or media (not both) are offline; {what} names them
PARTLY_OFFLINE_LABEL = "PARTLY OFFLINE: the {what} were made by fbloop's offline backend, not by a real model"
_ROLE_WORDS = {"agents": "prompts", "media": "images and videos"}


class StageSummary(BaseModel):
    number: int
    name: str
    status: str
    skip_reason: str | None = None
    cost_usd: float
    wall_time_s: float
    scores: dict[str, float | None]
    outputs: dict[str, Any]
    files: list[str]
    error: str | None = None


class WorkflowSummary(BaseModel):
    schema_version: int = SUMMARY_SCHEMA_VERSION
    run_id: str
    kind: str
    workflow: str
    backend: str
    offline: bool
    label: str | None = None
    #: role -> provider, each chosen on its own: {"agents": "openai", "media": "offline"}
    providers: dict[str, str] = Field(default_factory=dict)
    #: the run folder (absolute when the run was made)
    run_dir: str | None = None
    status: str
    created_at: str
    updated_at: str
    total_cost_usd: float
    #: the part of total_cost_usd booked at estimates (requests that got no usage back, e.g. in flight at a crash)
    estimated_cost_usd: float = 0.0
    total_time_s: float
    source_prompt: str
    final_image_prompt: str | None = None
    final_video_prompt: str | None = None
    #: storyboard mode: the motion prompt of each clip, in clip order
    motion_prompts: list[str] = Field(default_factory=list)
    best_image: str | None = None
    best_video: str | None = None
    best_videos: list[str] = Field(default_factory=list)
    #: the storyboard's clips joined in order (stage 5's last step), relative to the run folder
    final_video: str | None = None
    stages: list[StageSummary]
    files: list[str]
    notices: list[str] = Field(default_factory=list)
    error: str | None = None


def _label(state: RunState) -> str | None:
    if state.options.backend.value == "offline":
        return OFFLINE_LABEL
    from feedback_cli.stages.registry import roles_for

    try:
        used = roles_for([r.name for r in state.stages], state.options)
    except KeyError:  # a stage this version does not know: say nothing rather than guess
        return None
    offline = [_ROLE_WORDS[role] for role in used if state.providers.get(role, "").partition(":")[0] == "offline"]
    return PARTLY_OFFLINE_LABEL.format(what=" and ".join(offline)) if offline else None


def _results(state: RunState) -> dict[str, Any]:
    """The run's results by summary field, as the stages declare them (`Stage.summary_outputs`): a field is
    reported by a run with a stage that declares it (an image prompt is a result of runs that write it or make
    images from it; a video-prompt stage run is handed one as its input and reports its own prompts instead),
    read from the output keys every known stage declares for it, a later stage's key first, each the latest
    finished stage's value else the one handed to a `fbloop stage` run."""
    from feedback_cli.stages.registry import get, ordered

    declared: set[str] = set()
    for record in state.stages:
        try:
            declared.update(get(record.name).summary_outputs)
        except KeyError:  # a stage this version does not know declares nothing
            continue
    results: dict[str, Any] = {}
    for cls in reversed(ordered()):
        for summary_field, key in cls.summary_outputs.items():
            if summary_field in declared and not results.get(summary_field):
                results[summary_field] = state.output(key)
    return results


def summarize(state: RunState, run_dir: str | None = None) -> WorkflowSummary:
    stages = []
    for record in state.stages:
        files = sorted(
            {a.path for a in record.artifacts} | {i.artifact.path for i in record.items if i.artifact is not None}
        )
        outputs = {k: v for k, v in record.outputs.items() if k not in ("plan", "questions")}
        stages.append(
            StageSummary(
                number=record.number,
                name=record.name,
                status=record.status,
                skip_reason=record.skip_reason,
                cost_usd=round(record.cost_usd, 6),
                wall_time_s=round(record.wall_time_s, 3),
                scores=record.scores,
                outputs=outputs,
                files=files,
                error=record.error,
            )
        )
    offline = state.options.backend.value == "offline"
    results = _results(state)
    best_videos = results.get("best_videos") or []
    return WorkflowSummary(
        run_id=state.run_id,
        kind=state.kind,
        workflow=state.options.workflow.value if state.kind == "workflow" else f"stage {state.stages[0].name}",
        backend=state.options.backend.value,
        offline=offline,
        label=_label(state),
        providers={role: name.partition(":")[0] for role, name in state.providers.items()},
        run_dir=run_dir,
        status=state.status,
        created_at=state.created_at,
        updated_at=state.updated_at,
        total_cost_usd=state.total_cost,
        estimated_cost_usd=round(sum(e.usd for e in state.ledger if e.estimated), 6),
        total_time_s=round(sum(r.wall_time_s for r in state.stages), 3),
        source_prompt=state.source_prompt,
        final_image_prompt=results.get("final_image_prompt"),
        final_video_prompt=results.get("final_video_prompt"),
        motion_prompts=[
            str(c.get("motion_prompt")) for c in results.get("motion_prompts") or [] if isinstance(c, dict)
        ],
        best_image=results.get("best_image"),
        best_video=results.get("best_video") or (best_videos[0] if best_videos else None),
        best_videos=best_videos,
        final_video=results.get("final_video"),
        stages=stages,
        files=sorted({a.path for a in state.all_artifacts()} | {s for st in stages for s in st.files}),
        notices=state.notices,
        error=state.error,
    )


def write_reports(folder: RunFolder, state: RunState) -> None:
    trace = {
        "trace_schema_version": TRACE_SCHEMA_VERSION,
        "format": "fbloop-trace",
        "label": _label(state),
        **state.model_dump(mode="json"),
    }
    # both are rebuilt from the checkpoint on every stage, so they need no fsync of their own
    folder.write_json(TRACE_NAME, trace, durable=False)
    summary = summarize(state, str(folder.root.absolute()))
    folder.write_json(SUMMARY_NAME, summary.model_dump(mode="json"), durable=False)
