"""`fbloop run PROMPT_FILE`: the whole workflow, or part of it, from a prompt (text or image)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feedback_cli.choices import Backend, Workflow
from feedback_cli.commands import options as o
from feedback_cli.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    ctx: typer.Context,
    prompt_file: Annotated[Path | None, typer.Argument(help="Starting prompt: a text file or an image file.")] = None,
    workflow: o.WorkflowOption = None,
    input_image: Annotated[
        Path | None, typer.Option("--input-image", help="Start frame for --workflow video-only.")
    ] = None,
    max_iterations_image: o.MaxIterationsImageOption = o.ITERATIONS,
    max_iterations_video: o.MaxIterationsVideoOption = o.ITERATIONS,
    num_image_variations: o.NumImageVariationsOption = o.IMAGES,
    num_video_attempts: o.NumVideoAttemptsOption = o.VIDEOS_PER_CLIP,
    threshold_image: o.ThresholdImageOption = o.THRESHOLD,
    threshold_video: o.ThresholdVideoOption = o.THRESHOLD,
    interactive: Annotated[
        bool, typer.Option("--interactive", help="Pause for human review after stages 2, 3, 5.")
    ] = False,
    resume: Annotated[Path | None, typer.Option("--resume", help="Resume from a run folder or its checkpoint.")] = None,
    output_dir: o.RunOutputDirOption = None,
    verbose: o.VerboseOption = False,
    storyboard: o.StoryboardOption = False,
    clips: o.ClipsOption = o.CLIPS,
    backend: o.BackendOption = None,
    seed: o.SeedOption = None,
    scorers: o.ScorersOption = None,
    max_cost: o.MaxCostOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and its cost range; call and write nothing.")
    ] = False,
    max_rounds_image: o.MaxRoundsImageOption = o.ROUNDS_IMAGE,
    max_rounds_video: o.MaxRoundsVideoOption = o.ROUNDS_VIDEO,
    target_image: o.TargetImageOption = o.TARGET,
    target_video: o.TargetVideoOption = o.TARGET,
    patience: o.PatienceOption = o.PATIENCE,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="One JSON document on stdout at the end (the run's summary, or the dry-run plan)."),
    ] = False,
    break_lock: Annotated[
        bool, typer.Option("--break-lock", help="With --resume: take a lock left on a filesystem that cannot lock.")
    ] = False,
    use_current_settings: Annotated[
        bool,
        typer.Option("--use-current-settings", help="With --resume: unfinished items use the models set now."),
    ] = False,
) -> None:
    """Run the feedback loops on PROMPT_FILE and keep every prompt, image, video, score and cost."""
    from feedback_cli.commands.common import refuse_run_options_with_resume, resume_run

    if resume is not None:
        # one rule with `fbloop resume`: what a resume may change is applied (and recorded in the trace),
        # any other option is refused by name
        refuse_run_options_with_resume(
            ctx, ("max_cost", "interactive", "verbose", "break_lock", "use_current_settings", "as_json")
        )
        raise typer.Exit(
            resume_run(
                resume,
                verbose=verbose,
                interactive=interactive or None,
                max_cost=max_cost,
                use_current_settings=use_current_settings,
                break_lock=break_lock,
                as_json=as_json,
            )
        )
    for flag, given in (("--break-lock", break_lock), ("--use-current-settings", use_current_settings)):
        if given:
            raise UsageError(f"{flag} is only used with --resume")

    from feedback_cli.commands.common import random_seed, refuse_json_with_review, require_terminal, reviewer_for
    from feedback_cli.config import load_settings
    from feedback_cli.workflow.bounds import RUN_FLAGS, build_options

    workflow = workflow or Workflow.full
    # every number checked by RunOptions' own bounds (the rule `fbloop stage` and a resume use too),
    # before anything is read or created
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
    settings = load_settings(scorers=scorers, backend=backend.value if backend else None, max_cost=max_cost)

    from feedback_cli.providers.registry import resolve_backend
    from feedback_cli.workflow.inputs import read_prompt, validate_image

    source_prompt, prompt_image = "", None
    if workflow is Workflow.video_only:
        if input_image is None:
            raise UsageError("--workflow video-only needs --input-image PATH")
        if prompt_file is not None:
            source_prompt, prompt_image = read_prompt(prompt_file)
    else:
        if prompt_file is None:
            raise UsageError(f"--workflow {workflow.value} needs PROMPT_FILE")
        source_prompt, prompt_image = read_prompt(prompt_file)
        if input_image is not None:
            raise UsageError("--input-image is only used by --workflow video-only")
    if input_image is not None:
        validate_image(input_image, "--input-image")
    if interactive:
        refuse_json_with_review(as_json)
        require_terminal()

    from feedback_cli.runstate.models import RunOptions
    from feedback_cli.stages.registry import roles_for
    from feedback_cli.workflow.plan import stages_for

    # each provider role on its own, and only the roles this workflow's stages use need a key
    roles = roles_for(stages_for(workflow), RunOptions(workflow=workflow, interactive=interactive))
    choice = resolve_backend(settings.backend, settings, roles, dry_run=dry_run)
    chosen, reason = choice.backend, choice.reason
    options = build_options(
        {**RUN_FLAGS, "max_cost": "FBLOOP_MAX_COST"},  # the flag passed above: a bad cap here is the variable's
        workflow=workflow,
        prompt_file=str(prompt_file) if prompt_file else None,
        input_image=str(input_image) if input_image else None,
        max_iterations_image=max_iterations_image,
        max_iterations_video=max_iterations_video,
        num_image_variations=num_image_variations,
        num_video_attempts=num_video_attempts,
        threshold_image=threshold_image,
        threshold_video=threshold_video,
        interactive=interactive,
        storyboard=storyboard,
        clips=clips,
        backend=Backend(chosen),
        scorers=settings.scorers or "",
        seed=seed if seed is not None else random_seed(),
        verbose=verbose,
        max_cost=settings.max_cost,
        max_rounds_image=max_rounds_image,
        max_rounds_video=max_rounds_video,
        target_image=target_image,
        target_video=target_video,
        patience=patience,
    )
    if dry_run:
        from feedback_cli.ui.plan_view import render_plan
        from feedback_cli.workflow.estimate import dry_run as plan_run

        plan = plan_run(options, settings, starts_from_image=prompt_image is not None, providers=choice.providers)
        if choice.unconfigured:  # a price before signing up
            keys = " and ".join(choice.unconfigured_keys)
            plan.notes.append(f"priced without keys; a run needs {keys}")
        raise typer.Exit(render_plan(plan, reason, as_json=as_json))

    from feedback_cli.ui.session import drive
    from feedback_cli.workflow.api import prepare_run

    prepared = prepare_run(
        options,
        settings,
        output_dir=output_dir or settings.output_dir,
        source_prompt=source_prompt,
        prompt_image=prompt_image,
        input_image=input_image,
        providers=choice.providers,
    )
    raise typer.Exit(
        drive(prepared, verbose=verbose, reviewer=reviewer_for(interactive), announce=reason, as_json=as_json)
    )
