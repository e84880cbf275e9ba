"""`fbloop batch PROMPTS_FILE`: many prompts in one command, one budget, one set of provider limits, one report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feedback_cli.choices import Backend, Workflow
from feedback_cli.commands import options as o
from feedback_cli.errors import EXIT_FAILED, InputError, UsageError

EXECUTORS = ("local", "ray")
MAX_CONCURRENCY = 256


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)


def batch(
    prompts_file: Annotated[
        Path,
        typer.Argument(
            help="Prompts: .txt (one a line, # comments), .csv or .jsonl (a 'prompt' column + optional options)."
        ),
    ],
    workflow: o.WorkflowOption = None,
    input_image: Annotated[
        Path | None, typer.Option("--input-image", help="Start frame for rows of video-only.")
    ] = None,
    max_iterations_image: o.MaxIterationsImageOption = o.ITERATIONS,
    max_iterations_video: o.MaxIterationsVideoOption = o.ITERATIONS,
    num_image_variations: o.NumImageVariationsOption = o.IMAGES,
    num_video_attempts: o.NumVideoAttemptsOption = o.VIDEOS_PER_CLIP,
    threshold_image: o.ThresholdImageOption = o.THRESHOLD,
    threshold_video: o.ThresholdVideoOption = o.THRESHOLD,
    storyboard: o.StoryboardOption = False,
    clips: o.ClipsOption = o.CLIPS,
    backend: o.BackendOption = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of every row without its own (default: random).")
    ] = None,
    scorers: o.ScorersOption = None,
    # not FBLOOP_OUTPUT_DIR: that is where runs go; batches go next to it, in batches/
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Where batch folders go [default: output/batches/].")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Runs in flight at once.")] = 4,
    max_cost: Annotated[
        float | None,
        o.setting_option(
            "max_cost", "--max-cost", help="One USD cap for the whole batch, checked before every paid call."
        ),
    ] = None,
    executor: Annotated[str, typer.Option("--executor", help="local | ray")] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Ray cluster to join [default: $RAY_ADDRESS, else a local Ray instance]."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show each row's stages and notices.")] = False,
    max_rounds_image: o.MaxRoundsImageOption = o.ROUNDS_IMAGE,
    max_rounds_video: o.MaxRoundsVideoOption = o.ROUNDS_VIDEO,
    target_image: o.TargetImageOption = o.TARGET,
    target_video: o.TargetVideoOption = o.TARGET,
    patience: o.PatienceOption = o.PATIENCE,
) -> None:
    """Run every prompt of PROMPTS_FILE as its own run, under one budget and shared provider limits."""
    from feedback_cli.commands.common import random_seed
    from feedback_cli.workflow.bounds import RUN_FLAGS, build_options

    if executor not in EXECUTORS:
        raise UsageError(f"--executor must be local or ray, got {executor!r}")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise InputError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}, got {concurrency}")
    if ray_address is not None and executor != "ray":
        raise UsageError("--ray-address is only used with --executor ray")
    # the same bounds as `fbloop run` (one rule: RunOptions' own), before anything is read or written
    build_options(
        RUN_FLAGS,
        max_iterations_image=max_iterations_image,
        max_iterations_video=max_iterations_video,
        num_image_variations=num_image_variations,
        num_video_attempts=num_video_attempts,
        threshold_image=threshold_image,
        threshold_video=threshold_video,
        clips=clips,
        max_cost=max_cost,
        max_rounds_image=max_rounds_image,
        max_rounds_video=max_rounds_video,
        target_image=target_image,
        target_video=target_video,
        patience=patience,
    )
    workflow = workflow or Workflow.full
    if input_image is not None and workflow is not Workflow.video_only:
        raise UsageError("--input-image is only used by --workflow video-only")
    if executor == "ray":
        require_ray()

    from feedback_cli.config import load_settings
    from feedback_cli.workflow.batch_rows import read_rows
    from feedback_cli.workflow.inputs import validate_image

    if input_image is not None:
        validate_image(input_image, "--input-image")
    # every bad row is reported now, before anything is written or paid
    rows = read_rows(prompts_file, default_workflow=workflow, default_input_image=input_image)
    settings = load_settings(scorers=scorers, backend=backend.value if backend else None, max_cost=max_cost)

    from feedback_cli.providers.registry import resolve_backend

    # each provider role on its own, as for `fbloop run`; each row records the providers its workflow uses
    choice = resolve_backend(settings.backend, settings)
    chosen, reason = choice.backend, choice.reason
    base = build_options(
        RUN_FLAGS,
        workflow=workflow,
        input_image=str(input_image.resolve()) if input_image else None,
        max_iterations_image=max_iterations_image,
        max_iterations_video=max_iterations_video,
        num_image_variations=num_image_variations,
        num_video_attempts=num_video_attempts,
        threshold_image=threshold_image,
        threshold_video=threshold_video,
        storyboard=storyboard,
        clips=clips,
        backend=Backend(chosen),
        scorers=settings.scorers or "",
        seed=seed if seed is not None else random_seed(),
        verbose=verbose,
        max_cost=None,  # the batch cap is one budget for all rows, not a cap per run
        max_rounds_image=max_rounds_image,
        max_rounds_video=max_rounds_video,
        target_image=target_image,
        target_video=target_video,
        patience=patience,
    )
    if settings.scorers:
        _preflight_named_scorers(base, settings)

    from feedback_cli.ui.terminal import Terminal
    from feedback_cli.workflow.batch import BatchRunner, create_batch, default_batch_root

    root, state = create_batch(
        rows,
        base,
        settings,
        output_dir=output_dir or default_batch_root(settings),
        prompts_file=prompts_file,
        executor=executor,
        concurrency=concurrency,
        max_cost=settings.max_cost,
    )
    terminal = Terminal()
    terminal.note(f"backend: {reason}")
    terminal.note(f"batch {root}: {len(rows)} rows")
    runner = BatchRunner(root, state, settings)
    raise typer.Exit(drive_batch(runner, verbose=verbose, ray_address=ray_address))


def require_ray() -> None:
    try:
        import ray  # noqa: F401  (only when the Ray executor is asked for)
    except ImportError:
        raise UsageError("--executor ray needs Ray, which is not installed: pip install 'fbloop[ray]'") from None


def _preflight_named_scorers(base: object, settings: object) -> None:
    """Scorers the user named must be able to run: check once, not once per row."""
    from feedback_cli.scoring.preflight import preflight
    from feedback_cli.scoring.scorer_sets import resolve as resolve_scorers

    _, images, videos, _ = resolve_scorers(base.scorers, base.backend.value)  # type: ignore[attr-defined]
    preflight([*images, *videos], settings)  # type: ignore[arg-type]


def drive_batch(runner: object, *, verbose: bool = False, ray_address: str | None = None) -> int:
    from feedback_cli.ui.batch_view import BatchView, render_outcome
    from feedback_cli.ui.terminal import Terminal
    from feedback_cli.workflow.batch import BatchRunner

    assert isinstance(runner, BatchRunner)
    terminal = Terminal()
    view = BatchView(terminal.err, runner.state, verbose=verbose)
    runner.observer = view.observer
    options = {"address": ray_address} if runner.state.executor == "ray" else {}
    try:
        with view:
            state = runner.run(**options)
    except KeyboardInterrupt as exc:
        code = terminal.fail(exc, f"interrupted; checkpoints saved. Resume with: fbloop resume {runner.root}")
        render_outcome(terminal.out, runner.state, runner.root)
        return code
    render_outcome(terminal.out, state, runner.root)
    return 0 if all(r.status == "completed" for r in state.rows) else EXIT_FAILED


def resume_batch(
    target: Path,
    *,
    verbose: bool = False,
    max_cost: float | None = None,
    retry_failed: bool = False,
    interactive: bool | None = None,
) -> int:
    """`fbloop resume BATCH_DIR`: finished runs untouched, partial runs resumed, rows not started started."""
    if interactive:
        raise UsageError("a batch runs unattended; --interactive reviews single runs (fbloop resume BATCH_DIR/runs/ID)")
    from feedback_cli.config import load_settings
    from feedback_cli.ui.terminal import Terminal
    from feedback_cli.workflow.batch import BatchRunner, batch_resume_check, pinned_settings, reconcile, rows_to_run
    from feedback_cli.workflow.batch_state import load_batch

    if max_cost is not None and not max_cost >= 0:
        raise InputError(f"--max-cost must be 0 or more, got {max_cost}")
    root, state = load_batch(target)
    batch_resume_check(root, state)
    if state.executor == "ray":
        require_ray()
    settings = pinned_settings(state, load_settings())
    if max_cost is not None:
        state.max_cost = max_cost
    behind = reconcile(root, state)
    todo = rows_to_run(state, retry_failed=retry_failed)
    console = Terminal().err
    if not todo:
        if behind:  # the driver died before it recorded what its runs finished: record it now
            BatchRunner(root, state, settings).finish()
        if all(r.status == "completed" for r in state.rows):
            console.print(f"batch {state.batch_id} is already complete; nothing to resume.", markup=False)
            return 0
        failed = sum(1 for r in state.rows if r.status == "failed")
        console.print(
            f"batch {state.batch_id}: {failed} failed row(s) left as they are; add --retry-failed to try them again",
            markup=False,
        )
        return EXIT_FAILED
    done = sum(1 for r in state.rows if r.status == "completed")
    console.print(f"resuming batch {state.batch_id}: {done} of {len(state.rows)} rows done", markup=False)
    runner = BatchRunner(root, state, settings, retry_failed=retry_failed)
    return drive_batch(runner, verbose=verbose)
