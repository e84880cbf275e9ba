"""Entry points the commands call: start a run, resume a run, run one stage alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feedback_cli.config import Settings
from feedback_cli.errors import CheckpointError, UsageError
from feedback_cli.providers.registry import BACKENDS
from feedback_cli.scoring.registry import OFFLINE_IMAGE_SET, OFFLINE_VIDEO_SET
from feedback_cli.scoring.select import resolve as resolve_scorers
from feedback_cli.workflow import checkpoint
from feedback_cli.workflow.events import EventBus
from feedback_cli.workflow.lock import RunLock
from feedback_cli.workflow.models import RunOptions, RunState
from feedback_cli.workflow.orchestrator import Orchestrator, create_run
from feedback_cli.workflow.review import Reviewer
from feedback_cli.workflow.runfolder import RunFolder
from feedback_cli.workflow.services import Services

#: settings that shape what a run generates; a resume uses the values the run started with
PINNED_SETTINGS = (
    "writer_model",
    "critic_model",
    "judge_model",
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


@dataclass
class PreparedRun:
    folder: RunFolder
    state: RunState
    services: Services
    resumed: bool = False


def services_for(state: RunState, settings: Settings) -> Services:
    return Services(
        settings=settings,
        backend=state.options.backend.value,
        image_scorer_names=state.scorers.get("image", []),
        video_scorer_names=state.scorers.get("video", []),
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
) -> PreparedRun:
    chosen_by_user = bool(options.scorers)
    spec, images, videos, notice = resolve_scorers(options.scorers, options.backend.value)
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
            ("image", images, OFFLINE_IMAGE_SET),
            ("video", videos, OFFLINE_VIDEO_SET),
        ):
            if not names:
                names.extend(fallback)
                notices.append(f"no {media_kind} scorer can run here; {media_kind}s use offline statistics")
    agents, media = BACKENDS[options.backend.value]
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
    )
    state.notices.extend(notices)
    return PreparedRun(folder, state, services_for(state, settings))


def load_for_resume(target: Path, settings: Settings, *, retry_failed: bool = False) -> PreparedRun:
    run_dir, state = checkpoint.load(target)
    if retry_failed:
        retry_failed_items(state)
    pinned: dict[str, Any] = {k: state.settings[k] for k in PINNED_SETTINGS if k in state.settings}
    settings = settings.model_copy(update=pinned)
    folder = RunFolder(run_dir, settings.secrets())
    return PreparedRun(folder, state, services_for(state, settings), resumed=True)


def retry_failed_items(state: RunState) -> int:
    """Make items that errored (provider faults, not low scores) go again; finished items stay.

    An item whose job may still be running or may have delivered is re-attached first, never replaced: a job
    in flight, and a failed item whose job's end is not on record (a checkpoint from before `job_state`, or one
    edited by hand). Only when the provider shows that job ended failed or canceled, or does not know it, does
    the item get a new one (`recreate_if_ended`, acted on in stages/items.py). Items whose job ended without an
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
                item.extra.pop("scored", None)
                if item.job_id and item.job_state in (None, "in_flight"):
                    item.status = "submitted"  # its fate is unknown: re-attach before paying again
                    item.extra["recreate_if_ended"] = True
                    continue
                item.status, item.job_id, item.job_state = "pending", None, None
                # a fresh attempt; but a create that got no answer may have made a job: look for it first
                item.started_at = item.extra.pop("unanswered_since", None)
            for item in in_flight:
                item.extra["recreate_if_ended"] = True
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


async def execute(prepared: PreparedRun, events: EventBus, reviewer: Reviewer | None = None) -> RunState:
    """Run (or continue) the prepared run while holding its lock."""
    if prepared.resumed and prepared.state.status == "completed":
        raise UsageError("internal: a completed run is not executed again")
    with RunLock(prepared.folder.root):
        if prepared.resumed:
            # re-validate under the lock: another process may have moved the run on meanwhile
            _, fresh = checkpoint.load(prepared.folder.root, verify_artifacts=False)
            if fresh.updated_at != prepared.state.updated_at:
                raise CheckpointError("the run changed while it was being opened; try again")
        orchestrator = Orchestrator(prepared.folder, prepared.state, prepared.services, events, reviewer)
        return await orchestrator.run(resumed=prepared.resumed)
