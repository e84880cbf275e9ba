"""Entry points the commands call: start a run, resume a run, run one stage alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feedback_cli.config import Settings
from feedback_cli.errors import CheckpointError, UsageError
from feedback_cli.providers.registry import providers_for
from feedback_cli.runstate.events import EventBus
from feedback_cli.runstate.ledger import CostLedger
from feedback_cli.runstate.models import ResumeRecord, RunOptions, RunState
from feedback_cli.runstate.runfolder import RunFolder
from feedback_cli.scoring.registry import names_of
from feedback_cli.scoring.scorer_sets import resolve as resolve_scorers
from feedback_cli.stages.services import Services
from feedback_cli.workflow import checkpoint
from feedback_cli.workflow.lock import RunLock
from feedback_cli.workflow.orchestrator import Orchestrator, create_run
from feedback_cli.workflow.review import Reviewer

#: settings that shape what a run generates; a resume uses the values the run started with
PINNED_SETTINGS = (
    "writer_model",
    "critic_model",
    "planner_model",
    "vision_model",
    "image_model",
    "video_model",
    "storyboard_video_model",
    "video_duration_s",
    "aspect_ratio",
    "selection",
    "image_weights",
    "video_weights",
    "offline_image_size",
    "offline_video_seconds",
    "min_successful_items",
)

#: the pinned settings `fbloop resume --use-current-settings` switches to the environment's values; the
#: others (selection, weights, sizes, duration) stay, so a run's candidates stay comparable
MODEL_SETTINGS = (
    "writer_model",
    "critic_model",
    "planner_model",
    "vision_model",
    "image_model",
    "video_model",
    "storyboard_video_model",
)


@dataclass
class PreparedRun:
    folder: RunFolder
    state: RunState
    services: Services
    resumed: bool = False
    #: `--break-lock`: take the run's lock even though a lock file says another process holds it
    break_lock: bool = False
    #: what this resume changes; recorded in the run (trace) once the run is under its lock
    resume: ResumeRecord | None = None
    #: the run's lock when taken before `execute` (see `lock_run`)
    lock: RunLock | None = None


def lock_run(prepared: PreparedRun) -> None:
    """Take the run's lock now (a resume does, before it says anything), so a second process is refused
    in one line; `execute` keeps it and releases it when the run stops."""
    if prepared.lock is None:
        prepared.lock = RunLock(prepared.folder.root, break_lock=prepared.break_lock)
    prepared.lock.acquire()


def unlock_run(prepared: PreparedRun) -> None:
    if prepared.lock is not None:
        prepared.lock.release()


def services_for(state: RunState, settings: Settings) -> Services:
    return Services(
        settings=settings,
        backend=state.options.backend.value,
        image_scorer_names=state.scorers.get("image", []),
        video_scorer_names=state.scorers.get("video", []),
        providers={role: name.partition(":")[0] for role, name in state.providers.items()},
    )


def prepare_run(
    options: RunOptions,
    settings: Settings,
    *,
    output_dir: Path,
    source_prompt: str = "",
    prompt_image: Path | None = None,
    input_image: Path | None = None,
    stages: tuple[str, ...] | None = None,
    kind: str = "workflow",
    prepare: Callable[[RunFolder, RunState], None] | None = None,
    providers: dict[str, str] | None = None,
    runs_root: Path | None = None,
    run_dir: Path | None = None,
) -> PreparedRun:
    """`providers`: role -> provider, each role chosen on its own (`providers.registry.resolve_backend`);
    without it, the pair of `options.backend`."""
    chosen_by_user = bool(options.scorers)
    pair = providers_for(options.backend.value, settings)
    agents, media = pair["agents"], pair["media"]
    if providers is not None:
        agents, media = providers.get("agents", agents), providers.get("media", media)
    # the real scorers are the default when the media are real: offline placeholders are scored offline
    spec, images, videos, notice = resolve_scorers(options.scorers, "offline" if media == "offline" else "cloud")
    options = options.model_copy(update={"scorers": spec})
    notices = [notice] if notice else []
    # Before any paid call (and before the run folder exists): scorers the user named must be able to run;
    # from a default set, the ones that cannot are left out and the run says so.
    from feedback_cli.scoring.preflight import preflight, problems

    if chosen_by_user:
        preflight([*images, *videos], settings)
    else:
        for name, problem in problems([*images, *videos], settings).items():
            notices.append(f"scorer {name} left out: {problem.line()}")
            images = [n for n in images if n != name]
            videos = [n for n in videos if n != name]
        for media_kind, names, fallback in (
            ("image", images, names_of("image", "offline")),
            ("video", videos, names_of("video", "offline")),
        ):
            if not names:
                names.extend(fallback)
                notices.append(f"no {media_kind} scorer can run here; {media_kind}s use offline statistics")
    folder, state = create_run(
        options,
        settings,
        output_dir=output_dir,
        source_prompt=source_prompt,
        prompt_image=prompt_image,
        input_image=input_image,
        stages=stages,
        kind=kind,
        providers={"agents": agents, "media": media},
        scorers={"image": images, "video": videos},
        prepare=prepare,
        runs_root=runs_root,
        run_dir=run_dir,
    )
    state.notices.extend(notices)
    return PreparedRun(folder, state, services_for(state, settings))


def settings_differences(state: RunState, settings: Settings) -> dict[str, dict[str, Any]]:
    """The pinned settings whose recorded value differs from the environment's now: {name: {from, to}}."""
    current = settings.public_dict()
    return {
        name: {"from": state.settings[name], "to": current.get(name)}
        for name in PINNED_SETTINGS
        if name in state.settings and state.settings[name] != current.get(name)
    }


def load_for_resume(
    target: Path,
    settings: Settings,
    *,
    retry_failed: bool = False,
    use_current_settings: bool = False,
    options: dict[str, Any] | None = None,
    break_lock: bool = False,
) -> PreparedRun:
    """Open a run to continue it. A resume uses the settings the run recorded, except the models when
    `use_current_settings` (they then apply to the unfinished items); `options` are the run options that
    may change on resume, applied. What changed is recorded in `state.resumes` (the trace)."""
    run_dir, state = checkpoint.load(target)
    resume = ResumeRecord()
    if retry_failed:
        retry_failed_items(state)
        resume.flags.append("--retry-failed")
    if break_lock:
        resume.flags.append("--break-lock")
    differing = settings_differences(state, settings)
    if use_current_settings:
        resume.flags.append("--use-current-settings")
        resume.settings = {k: v for k, v in differing.items() if k in MODEL_SETTINGS}
        state.settings.update({k: v["to"] for k, v in resume.settings.items()})  # later resumes keep them
    resume.kept_settings = {k: v for k, v in differing.items() if k not in resume.settings}
    changed = {k: v for k, v in (options or {}).items() if getattr(state.options, k) != v}
    if changed:
        resume.options = {k: {"from": getattr(state.options, k), "to": v} for k, v in changed.items()}
        state.options = state.options.model_copy(update=changed)
    pinned: dict[str, Any] = {k: state.settings[k] for k in PINNED_SETTINGS if k in state.settings}
    if "planner_model" not in state.settings and "writer_model" in state.settings and not use_current_settings:
        pinned["planner_model"] = state.settings["writer_model"]  # runs from before the planner had its own
    settings = settings.model_copy(update=pinned)
    folder = RunFolder(run_dir, settings.secrets())
    prepared = PreparedRun(folder, state, services_for(state, settings), resumed=True, break_lock=break_lock)
    prepared.resume = resume
    return prepared


def retry_failed_items(state: RunState) -> int:
    """Make items that errored (provider faults, not low scores) go again; finished items stay.

    An item whose job may still be running or may have delivered is re-attached first, never replaced: a job
    in flight, and a failed item whose job's end is not on record (a checkpoint from before `job_state`, or one
    edited by hand). Only when the provider shows that job ended failed or canceled, or does not know it, does
    the item get a new one (`recreate_if_ended`, acted on in stages/generation.py). Items whose job ended without an
    output, or that never got one, start afresh at once (an item whose create went unanswered looks for it
    first).

    A stage that already completed is re-opened only when no later stage has started, so outputs built
    on its pick (storyboard frames, videos) are never silently left inconsistent."""
    reset = 0
    started_later = False
    for record in reversed(state.stages):
        failed = [item for item in record.items if item.status == "failed"]
        in_flight = [i for i in record.items if i.status in ("pending", "submitted") and i.job_state == "in_flight"]
        reopen = record.status != "completed" or not started_later
        if (failed or in_flight) and reopen:
            for item in failed:
                item.error, item.finished_at = None, None
                item.scored = False
                if item.job_id and item.job_state in (None, "in_flight"):
                    item.status = "submitted"  # its fate is unknown: re-attach before paying again
                    item.recreate_if_ended = True
                    continue
                item.status, item.job_id, item.job_state = "pending", None, None
                # a fresh attempt; but a create that got no answer may have made a job: look for it first
                item.started_at, item.unanswered_since = item.unanswered_since, None
            for item in in_flight:
                item.recreate_if_ended = True
            reset += len(failed)
            if failed and record.status in ("completed", "failed"):
                record.notes.append(f"--retry-failed: {len(failed)} failed item(s) tried again")
            if record.status in ("completed", "failed"):
                record.status = "pending"
        if record.status not in ("pending", "skipped"):
            started_later = True
    if reset and state.status == "completed":
        state.status = "interrupted"
    return reset


async def execute(
    prepared: PreparedRun, events: EventBus, reviewer: Reviewer | None = None, *, ledger: CostLedger | None = None
) -> RunState:
    """Run (or continue) the prepared run while holding its lock. `ledger`: one that also answers to a shared
    budget (a batch); by default the run's own."""
    if prepared.resumed and prepared.state.status == "completed":
        raise UsageError("internal: a completed run is not executed again")
    with prepared.lock or RunLock(prepared.folder.root, break_lock=prepared.break_lock):
        if prepared.resumed:
            # re-validate under the lock: another process may have moved the run on meanwhile
            _, fresh = checkpoint.load(prepared.folder.root, verify_artifacts=False)
            if fresh.updated_at != prepared.state.updated_at:
                raise CheckpointError("the run changed while it was being opened; try again")
        if prepared.resume is not None:
            prepared.state.resumes.append(prepared.resume)
        orchestrator = Orchestrator(prepared.folder, prepared.state, prepared.services, events, reviewer)
        if ledger is not None:
            orchestrator.ledger = ledger
        return await orchestrator.run(resumed=prepared.resumed)
