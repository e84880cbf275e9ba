"""Drive a prepared run with the terminal UI attached, and turn its outcome into an exit code."""

from __future__ import annotations

import asyncio

from feedback_cli.errors import EXIT_INTERRUPTED, BudgetError, FbloopError, Interrupted, StorageError
from feedback_cli.ui.console import EventRenderer, err_console, error_line, out_console
from feedback_cli.ui.summary import render_summary
from feedback_cli.workflow.api import PreparedRun, execute
from feedback_cli.workflow.events import EventBus
from feedback_cli.workflow.orchestrator import RunStopped
from feedback_cli.workflow.report import summarize
from feedback_cli.workflow.review import Reviewer


def resume_command(prepared: PreparedRun) -> str:
    return f"fbloop resume {prepared.folder.root}"


def drive(
    prepared: PreparedRun, *, verbose: bool = False, reviewer: Reviewer | None = None, announce: str | None = None
) -> int:
    console = err_console()
    if announce:
        console.print(f"backend: {announce}", markup=False)
    renderer = EventRenderer(console, verbose)
    bus = EventBus()
    bus.subscribe(renderer)
    for notice in prepared.state.notices:
        console.print(f"note: {notice}", markup=False)
    code = 0
    try:
        asyncio.run(execute(prepared, bus, reviewer))
    except Interrupted:
        renderer.close()
        error_line(f"interrupted; checkpoint saved. Resume with: {resume_command(prepared)}")
        code = EXIT_INTERRUPTED
    except KeyboardInterrupt:  # a second Ctrl-C: leave at once, the last checkpoint stands
        renderer.close()
        error_line(f"interrupted. Resume with: {resume_command(prepared)}")
        return EXIT_INTERRUPTED
    except RunStopped as exc:
        renderer.close()
        console.print(f"{exc.message}. Resume with: {resume_command(prepared)}", markup=False)
        code = 0
    except BudgetError as exc:
        renderer.close()
        error_line(f"{exc.message.rstrip('.')}. Checkpoint saved; resume with: {resume_command(prepared)} --max-cost N")
        code = exc.exit_code
    except StorageError as exc:  # nothing could be saved just now: the checkpoint on disk is the last good one
        renderer.close()
        error_line(f"{exc.line().rstrip('.')}. The last checkpoint stands; resume with: {resume_command(prepared)}")
        code = exc.exit_code
    except FbloopError as exc:
        renderer.close()
        flags = f" {exc.resume_flags}" if exc.resume_flags else ""
        error_line(f"{exc.line().rstrip('.')}. Checkpoint saved; resume with: {resume_command(prepared)}{flags}")
        code = exc.exit_code
    finally:
        renderer.close()
    render_summary(out_console(), summarize(prepared.state), prepared.folder.root)
    return code
