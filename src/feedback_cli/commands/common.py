"""Helpers the commands share, in one module (commands import this, never each other's private helpers): the
random base seed, the terminal check for `--interactive`, the reviewer, and resuming a run (`fbloop resume` and
`fbloop run --resume` go through `resume_run`, under one rule for their options)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from feedback_cli.errors import StorageError, UsageError

#: what a resume may change, as `fbloop resume` spells it; every other option of `fbloop run` is the run's own
RESUME_OPTIONS = ("--max-cost", "--interactive", "--verbose", "--break-lock", "--use-current-settings")


def random_seed() -> int:
    """The base seed of a run (or of a batch's rows) given none: random, and recorded in the run."""
    import secrets

    return secrets.randbelow(1_000_000)


def require_terminal() -> None:
    if os.environ.get("CI") or not sys.stdin.isatty():
        raise UsageError("--interactive needs a terminal on stdin (it is refused in CI and in pipes)")


def refuse_json_with_review(as_json: bool) -> None:
    if as_json:
        raise UsageError("--json and --interactive cannot be used together (the review needs the terminal)")


def reviewer_for(interactive: bool):  # type: ignore[no-untyped-def]
    if not interactive:
        return None
    from feedback_cli.ui.review import QuestionaryReviewer

    return QuestionaryReviewer()


def refuse_run_options_with_resume(ctx: Any, allowed: tuple[str, ...]) -> None:
    """`fbloop run --resume`: an option a resume cannot change (the run keeps what it started with) is
    refused with one line naming it, instead of being silently ignored. `ctx` is the command's Typer
    context; `allowed` are parameter names. Only what the command line says counts: a variable such as
    FBLOOP_BACKEND (an option's `[env var: ...]`) is a setting of the environment, which a resumed run does not
    take either; the resume names the recorded settings the environment now differs from."""
    for param in ctx.command.params:
        name = param.name or ""
        if name in allowed or name == "resume":
            continue
        source = ctx.get_parameter_source(name)
        if source is None or source.name != "COMMANDLINE":
            continue
        if param.param_type_name == "argument":
            raise UsageError(f"--resume takes the run from its checkpoint; do not pass {name.upper()} too")
        flag = max(param.opts, key=len)
        if flag == "--workflow":
            raise UsageError("--resume and --workflow cannot be used together (a run keeps its workflow)")
        raise UsageError(
            f"{flag} cannot be used with --resume (a run keeps the options it started with; "
            f"a resume may change {', '.join(RESUME_OPTIONS)})"
        )


def resume_run(
    target: Path,
    *,
    verbose: bool = False,
    interactive: bool | None = None,
    max_cost: float | None = None,
    retry_failed: bool = False,
    use_current_settings: bool = False,
    break_lock: bool = False,
    as_json: bool = False,
) -> int:
    """Continue the run `target` (a folder, its checkpoint, or a run id under the output folder)."""
    from feedback_cli.config import load_settings
    from feedback_cli.runstate.models import RunOptions
    from feedback_cli.ui.terminal import Terminal
    from feedback_cli.workflow.api import load_for_resume, lock_run, unlock_run
    from feedback_cli.workflow.bounds import with_max_cost
    from feedback_cli.workflow.locate import find_run

    if max_cost is not None:  # the flag first (the bound a run starts with), before settings say less
        max_cost = with_max_cost(RunOptions(), max_cost).max_cost
    settings = load_settings(max_cost=max_cost)
    target = find_run(target, settings.output_dir)
    changes: dict[str, Any] = {}
    if max_cost is not None:
        changes["max_cost"] = max_cost
    if interactive is not None:
        changes["interactive"] = interactive
    if verbose:
        changes["verbose"] = True
    prepared = load_for_resume(
        target,
        settings,
        retry_failed=retry_failed,
        use_current_settings=use_current_settings,
        options=changes,
        break_lock=break_lock,
    )
    state = prepared.state
    terminal = Terminal()
    if state.status == "completed":
        terminal.err.print(f"run {state.run_id} is already complete; nothing to resume.", markup=False)
        if as_json:
            from feedback_cli.workflow.report import summarize

            summary = summarize(state, str(prepared.folder.root.absolute())).model_dump(mode="json")
            terminal.json(prepared.folder.redactor.scrub(summary))
        return 0
    if state.options.interactive:
        refuse_json_with_review(as_json)
        require_terminal()
    try:
        lock_run(prepared)  # a second process is refused here, in one line, before anything is said or run
    except StorageError as exc:  # a read-only or full disk: once that is fixed, the same resume continues
        from feedback_cli.ui.session import resume_command

        return terminal.fail(
            exc, f"{exc.line().rstrip('.')}. The last checkpoint stands; resume with: {resume_command(prepared)}"
        )
    try:
        return _announce_and_drive(prepared, use_current_settings, as_json)
    finally:
        unlock_run(prepared)


def _announce_and_drive(prepared: Any, use_current_settings: bool, as_json: bool = False) -> int:
    from feedback_cli.ui.session import drive
    from feedback_cli.ui.terminal import Terminal

    state = prepared.state
    console = Terminal().err
    resume = prepared.resume
    if resume is not None and resume.kept_settings:
        kept = ", ".join(f"{k} {v['from']} (now {v['to']})" for k, v in resume.kept_settings.items())
        from feedback_cli.workflow.api import MODEL_SETTINGS

        models = not use_current_settings and any(k in MODEL_SETTINGS for k in resume.kept_settings)
        hint = "; fbloop resume --use-current-settings switches the models" if models else ""
        console.print(
            f"note: the run keeps its recorded settings, which the environment now differs from: {kept}{hint}",
            markup=False,
            soft_wrap=True,
        )
    if resume is not None and resume.settings:
        switched = ", ".join(f"{k} {v['from']} -> {v['to']}" for k, v in resume.settings.items())
        console.print(f"note: unfinished items use the current settings: {switched}", markup=False, soft_wrap=True)
    done = sum(1 for r in state.stages if r.status in ("completed", "skipped"))
    console.print(f"resuming {state.run_id}: {done} of {len(state.stages)} stages done", markup=False)
    from feedback_cli.providers.registry import recorded_reason

    return drive(
        prepared,
        verbose=state.options.verbose,
        reviewer=reviewer_for(state.options.interactive),
        announce=recorded_reason(state.options.backend.value, state.providers),
        as_json=as_json,
    )
