"""`fbloop batch PROMPTS_FILE`: many prompts in one command, one budget, one set of provider limits, one report."""

from __future__ import annotations

from pathlib import Path

import typer

from feedback_cli.choices import Backend, Workflow
from feedback_cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, InputError, UsageError

EXECUTORS = ("local", "ray")
MAX_CONCURRENCY = 256


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)


def batch(
    prompts_file: Path = typer.Argument(
        ..., help="Prompts: .txt (one a line, # comments), .csv or .jsonl (a 'prompt' column + optional options)."
    ),
    workflow: Workflow | None = typer.Option(
        None, "--workflow", help="full | image-only | video-only | prompt-only [default: full]"
    ),
    input_image: Path | None = typer.Option(None, "--input-image", help="Start frame for rows of video-only."),
    max_iterations_image: int = typer.Option(3, "--max-iterations-image", help="Image prompt iterations."),
    max_iterations_video: int = typer.Option(3, "--max-iterations-video", help="Video prompt iterations."),
    num_image_variations: int = typer.Option(8, "--num-image-variations", help="Images to generate per prompt."),
    num_video_attempts: int = typer.Option(3, "--num-video-attempts", help="Videos to generate (per clip)."),
    threshold_image: float = typer.Option(85.0, "--threshold-image", help="Image prompt score to stop at (0-100)."),
    threshold_video: float = typer.Option(85.0, "--threshold-video", help="Video prompt score to stop at (0-100)."),
    storyboard: bool = typer.Option(
        False, "--storyboard/--no-storyboard", help="Run stage 3: start/end frames per clip."
    ),
    clips: int = typer.Option(2, "--clips", help="Storyboard clips."),
    backend: Backend | None = typer.Option(None, "--backend", help="auto | offline | cloud [default: auto]"),
    seed: int | None = typer.Option(None, "--seed", help="Seed of every row without its own (default: random)."),
    scorers: str | None = typer.Option(None, "--scorers", help="offline, or a comma list of scorer names."),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", help="Where batch folders go [default: output/batches/]."
    ),
    concurrency: int = typer.Option(4, "--concurrency", help="Runs in flight at once."),
    max_cost: float | None = typer.Option(
        None, "--max-cost", help="One USD cap for the whole batch, checked before every paid call."
    ),
    executor: str = typer.Option("local", "--executor", help="local | ray"),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Ray cluster to join [default: $RAY_ADDRESS, else a local Ray instance]."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show each row's stages and notices."),
    max_rounds_image: int = typer.Option(3, "--max-rounds-image", help="Image rounds (generate, check, revise)."),
    max_rounds_video: int = typer.Option(1, "--max-rounds-video", help="Video rounds (1: no revision)."),
    target_image: float = typer.Option(85.0, "--target-image", help="Overall image score that ends the rounds."),
    target_video: float = typer.Option(85.0, "--target-video", help="Overall video score that ends the rounds."),
    patience: int = typer.Option(1, "--patience", help="Stop after this many rounds without a better pick."),
) -> None:
    """Run every prompt of PROMPTS_FILE as its own run, under one budget and shared provider limits."""
    from feedback_cli.commands.run import _random_seed
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
        seed=seed if seed is not None else _random_seed(),
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

    from feedback_cli.ui.console import err_console
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
    err_console().print(f"backend: {reason}", markup=False, highlight=False, soft_wrap=True)
    err_console().print(f"batch {root}: {len(rows)} rows", markup=False, highlight=False, soft_wrap=True)
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
    from feedback_cli.ui.console import err_console, error_line, out_console
    from feedback_cli.workflow.batch import BatchRunner

    assert isinstance(runner, BatchRunner)
    view = BatchView(err_console(), runner.state, verbose=verbose)
    runner.observer = view.observer
    options = {"address": ray_address} if runner.state.executor == "ray" else {}
    try:
        with view:
            state = runner.run(**options)
    except KeyboardInterrupt:
        error_line(f"interrupted; checkpoints saved. Resume with: fbloop resume {runner.root}")
        render_outcome(out_console(), runner.state, runner.root)
        return EXIT_INTERRUPTED
    render_outcome(out_console(), state, runner.root)
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
    from feedback_cli.ui.console import err_console
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
    console = err_console()
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
