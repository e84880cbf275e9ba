"""`fbloop resume RUN_DIR_OR_CHECKPOINT`: continue an interrupted run where it stopped."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("resume")(resume)


def resume(
    target: Path = typer.Argument(..., help="A run folder or its workflow_checkpoint.json."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every item and score."),
    max_cost: float | None = typer.Option(None, "--max-cost", help="A new USD cap for the rest of the run."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Try again the items that failed (provider errors); finished ones stay."
    ),
    interactive: bool | None = typer.Option(
        None, "--interactive/--no-interactive", help="Review between stages [default: as the run started]."
    ),
) -> None:
    """Validate the checkpoint and continue at the first unfinished stage and item."""
    raise typer.Exit(
        resume_run(target, verbose=verbose, max_cost=max_cost, retry_failed=retry_failed, interactive=interactive)
    )


def resume_run(
    target: Path,
    *,
    verbose: bool = False,
    interactive: bool | None = None,
    max_cost: float | None = None,
    retry_failed: bool = False,
) -> int:
    from feedback_cli.workflow.batch_state import is_batch_dir

    if is_batch_dir(target):  # a batch folder: finish the batch
        from feedback_cli.commands.batch import resume_batch

        return resume_batch(
            target, verbose=verbose, max_cost=max_cost, retry_failed=retry_failed, interactive=interactive
        )
    from feedback_cli.commands.run import _require_terminal, _reviewer
    from feedback_cli.config import load_settings
    from feedback_cli.ui.console import err_console
    from feedback_cli.ui.session import drive
    from feedback_cli.workflow.api import load_for_resume

    settings = load_settings(max_cost=max_cost)
    prepared = load_for_resume(target, settings, retry_failed=retry_failed)
    state = prepared.state
    if state.status == "completed":
        err_console().print(f"run {state.run_id} is already complete; nothing to resume.", markup=False)
        return 0
    if max_cost is not None:
        prepared.state.options = state.options.model_copy(update={"max_cost": max_cost})
    wants_review = state.options.interactive if interactive is None else interactive
    if wants_review:
        _require_terminal()
    done = sum(1 for r in state.stages if r.status in ("completed", "skipped"))
    err_console().print(f"resuming {state.run_id}: {done} of {len(state.stages)} stages done", markup=False)
    return drive(prepared, verbose=verbose or state.options.verbose, reviewer=_reviewer(wants_review))
