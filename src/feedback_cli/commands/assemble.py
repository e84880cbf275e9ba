"""`fbloop stage assemble`: join per-clip videos, in order, into one `final.mp4` (stage 5's last step, alone).

The inputs are the clip files in order (e.g. a storyboard run's clips with another candidate swapped in),
or a storyboard run folder, whose current picks are used. The result is a new stage run folder,
`DIR/assemble/{timestamp}/stage_5_assemble/final.mp4`, with its own checkpoint, trace and summary:
a finished run's `final.mp4` is never overwritten. Not registered by the app: the assemble stage declares
it as the command of `fbloop stage assemble` (`StageInputs.command`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from feedback_cli.errors import InputError, UsageError

CHECKPOINT_NAME = "workflow_checkpoint.json"


def assemble(inputs: list[Path], *, output_dir: Path | None, verbose: bool, as_json: bool = False) -> int:
    """`output_dir`: the output folder (default: the setting); the run goes in `{output_dir}/assemble/`."""
    from feedback_cli.choices import Backend
    from feedback_cli.config import load_settings
    from feedback_cli.providers.registry import resolve_backend
    from feedback_cli.runstate.models import RunOptions
    from feedback_cli.stages.assemble import GIVEN_CLIPS
    from feedback_cli.ui.session import drive
    from feedback_cli.workflow.api import prepare_run
    from feedback_cli.workflow.orchestrator import copy_input

    clips, source_backend = clips_to_join(inputs)
    settings = load_settings(backend=source_backend)
    # joining calls no provider: the run is labelled as the clips were made (offline clips stay offline)
    choice = resolve_backend(settings.backend, settings, roles=())
    chosen, reason = source_backend or choice.backend, choice.reason
    if source_backend:
        reason = f"{chosen}, the backend the clips were made with"
    options = RunOptions(
        storyboard=True,
        clips=min(len(clips), 12),
        backend=Backend(chosen),
        scorers="offline",  # nothing is scored: joining only
        verbose=verbose,
    )

    def prepare(folder: Any, state: Any) -> None:
        given = []
        for number, clip in enumerate(clips, start=1):
            artifact = copy_input(folder, clip, f"clip_{number:02d}", "video")
            state.inputs.append(artifact)
            given.append(artifact.path)
        state.given[GIVEN_CLIPS] = given

    root = output_dir or settings.output_dir
    prepared = prepare_run(
        options,
        settings,
        output_dir=root / "assemble",
        stages=("assemble",),
        kind="stage",
        prepare=prepare,
        providers=choice.providers,
        runs_root=root,  # a run id names one run, workflow or stage
    )
    return drive(prepared, verbose=verbose, announce=reason, as_json=as_json)


def clips_to_join(inputs: list[Path]) -> tuple[list[Path], str | None]:
    """The clip files in order, and the backend they were made with when they come from an fbloop run
    (so offline clips stay labelled offline). One line naming the problem for anything unusable."""
    from feedback_cli.media_checks import MediaInvalid, check_video

    if not inputs:
        raise UsageError("fbloop stage assemble needs the clip videos in order, or a storyboard run folder")
    folders = [p for p in inputs if p.is_dir()]
    if folders and len(inputs) > 1:
        raise UsageError(f"give either one run folder or clip video files, not both ({folders[0]} is a folder)")
    if folders:
        clips, backend = _picks_of_run(folders[0])
    else:
        clips = list(inputs)
        backends = {_backend_of(_run_root_of(p)) for p in clips}
        backends.discard(None)
        # offline-made clips are labelled offline wherever they go; mixed or unknown origin: as usual
        backend = "offline" if "offline" in backends else (backends.pop() if len(backends) == 1 else None)
    if len(clips) > 64:
        raise InputError(f"at most 64 clips can be joined, got {len(clips)}")
    for clip in clips:
        if not clip.is_file():
            raise InputError(f"clip video {clip} does not exist")
        try:
            check_video(clip)
        except MediaInvalid as exc:
            raise InputError(f"clip video {clip} is not usable: {exc}") from None
    return clips, backend


def _picks_of_run(folder: Path) -> tuple[list[Path], str | None]:
    from feedback_cli.workflow import checkpoint

    root = _run_root_of(folder / "x")
    if not (root / CHECKPOINT_NAME).is_file():
        raise InputError(f"{folder} is not an fbloop run folder (no {CHECKPOINT_NAME})")
    run_dir, state = checkpoint.load(root, verify_artifacts=False)
    picks = [p for p in state.output("best_videos") or [] if isinstance(p, str)]
    if not picks:
        raise InputError(f"{run_dir} has no picked clips to join (not a finished storyboard video stage)")
    return [run_dir / p for p in picks], state.options.backend.value


def _run_root_of(path: Path) -> Path:
    """The run folder a file is in: its parent, or the parent's parent for a file in a stage folder."""
    parent = path.resolve().parent
    return parent.parent if parent.name.startswith("stage_") else parent


def _backend_of(run_dir: Path) -> str | None:
    try:
        envelope = json.loads((run_dir / CHECKPOINT_NAME).read_text(encoding="utf-8"))
        return str(envelope["state"]["options"]["backend"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
