"""`fbloop resume RUN_DIR_OR_CHECKPOINT`: continue an interrupted run where it stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feedback_cli.commands.common import resume_run

__all__ = ["register", "resume", "resume_run"]


def register(app: typer.Typer) -> None:
    app.command("resume")(resume)


def resume(
    target: Annotated[
        Path, typer.Argument(help="A run folder, its workflow_checkpoint.json, or a run id under the output folder.")
    ],
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every item and score.")] = False,
    # no FBLOOP_MAX_COST here: a run keeps the cap it started with unless this flag gives it a new one
    max_cost: Annotated[float | None, typer.Option("--max-cost", help="A new USD cap for the rest of the run.")] = None,
    retry_failed: Annotated[
        bool,
        typer.Option("--retry-failed", help="Try again the items that failed (provider errors); finished ones stay."),
    ] = False,
    interactive: Annotated[
        bool | None,
        typer.Option(
            "--interactive/--no-interactive",
            help="Review between stages [default: as the run last ran; recorded].",
        ),
    ] = None,
    use_current_settings: Annotated[
        bool,
        typer.Option(
            "--use-current-settings",
            help="Unfinished items use the models set now (FBLOOP_*_MODEL) instead of the run's recorded ones.",
        ),
    ] = False,
    break_lock: Annotated[
        bool,
        typer.Option("--break-lock", help="Take a lock left on a filesystem that cannot lock (no process running)."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document on stdout at the end: the run's summary.")
    ] = False,
) -> None:
    """Validate the checkpoint and continue at the first unfinished stage and item (a batch folder: every row)."""
    from feedback_cli.workflow.batch_state import is_batch_dir

    if is_batch_dir(target):  # a batch folder: finish the batch
        from feedback_cli.commands.batch import resume_batch

        raise typer.Exit(
            resume_batch(target, verbose=verbose, max_cost=max_cost, retry_failed=retry_failed, interactive=interactive)
        )
    raise typer.Exit(
        resume_run(
            target,
            verbose=verbose,
            max_cost=max_cost,
            retry_failed=retry_failed,
            interactive=interactive,
            use_current_settings=use_current_settings,
            break_lock=break_lock,
            as_json=as_json,
        )
    )
