"""Drive a prepared run with the terminal UI attached, and turn its outcome into an exit code."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from feedback_cli.errors import (
    EXIT_INTERRUPTED,
    BudgetError,
    FbloopError,
    Interrupted,
    RunLocked,
    StorageError,
)
from feedback_cli.ui.console import EventRenderer, err_console, error_line, out_console, print_line, write_json
from feedback_cli.ui.summary import next_stage_command, render_summary
from feedback_cli.workflow.api import PreparedRun, execute
from feedback_cli.workflow.events import EventBus
from feedback_cli.workflow.orchestrator import RunStopped
from feedback_cli.workflow.report import WorkflowSummary, summarize
from feedback_cli.workflow.review import Reviewer

T = TypeVar("T")


def resume_command(prepared: PreparedRun) -> str:
    return f"fbloop resume {prepared.folder.root}"


#: signals that stop a run the way Ctrl-C does: a service manager's stop, a closed terminal
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


async def _with_stop_signals(work: Coroutine[Any, Any, T], received: list[int]) -> T:
    """Await `work` with SIGTERM and SIGHUP handled like Ctrl-C (asyncio's own SIGINT handling): the first
    cancels the run, which saves its checkpoint, marks itself interrupted and releases its lock; a second
    one leaves at once. `received` collects the signals, for the message and the exit code."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def stop(signum: int) -> None:
        received.append(signum)
        if len(received) > 1:
            raise KeyboardInterrupt
        task.cancel()

    installed = []
    for signum in STOP_SIGNALS:
        try:
            loop.add_signal_handler(signum, stop, signum)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or no such signal here
            continue
        installed.append(signum)
    try:
        return await work
    except asyncio.CancelledError:
        if received:  # stopped before the run had started its stages: nothing to mark, nothing lost
            raise Interrupted("interrupted") from None
        raise
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _stopped_by(received: list[int]) -> str:
    return f"stopped by {signal.Signals(received[0]).name}" if received else "interrupted"


def _interrupted_code(received: list[int]) -> int:
    """130 for Ctrl-C; 128 + the signal's number for SIGTERM (143) and SIGHUP (129), as a shell reports them."""
    return 128 + received[0] if received else EXIT_INTERRUPTED


def drive(
    prepared: PreparedRun,
    *,
    verbose: bool = False,
    reviewer: Reviewer | None = None,
    announce: str | None = None,
    as_json: bool = False,
) -> int:
    """Run it; progress and the `backend:` line on stderr, then the summary on stdout: a table, or with
    `as_json` one JSON document (the schema of workflow_summary.json), whatever the outcome."""
    console = err_console()
    redact = prepared.folder.redact  # the engine redacts its events; error_line redacts itself; the rest here
    if announce:
        print_line(console, f"backend: {announce}")
    renderer = EventRenderer(console, verbose)
    bus = EventBus()
    bus.subscribe(renderer)
    for notice in prepared.state.notices:
        print_line(console, redact(f"note: {notice}"))
    code = 0
    received: list[int] = []
    try:
        # with --json stdout holds the one document: anything a library prints meanwhile goes to stderr
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            asyncio.run(_with_stop_signals(execute(prepared, bus, reviewer), received))
    except Interrupted:
        renderer.close()
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            error_line(f"{_stopped_by(received)}; checkpoint saved. Resume with: {resume_command(prepared)}")
        code = _interrupted_code(received)
    except KeyboardInterrupt:  # a second Ctrl-C (or signal): leave at once, the last checkpoint stands
        renderer.close()
        with contextlib.suppress(OSError):
            error_line(f"{_stopped_by(received)}. Resume with: {resume_command(prepared)}")
        return _interrupted_code(received)
    except RunLocked as exc:  # another process works on the run: nothing was done, nothing to resume
        renderer.close()
        error_line(exc.line())
        return exc.exit_code
    except RunStopped as exc:
        renderer.close()
        print_line(console, f"{exc.message}. Resume with: {resume_command(prepared)}")
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
    summary = WorkflowSummary.model_validate(
        prepared.folder.redactor.scrub(summarize(prepared.state, str(prepared.folder.root.absolute())).model_dump())
    )
    with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
        if as_json:
            write_json(summary.model_dump(mode="json"))
        else:
            render_summary(out_console(), summary, prepared.folder.root)
            follow_on = next_stage_command(prepared.state, prepared.folder.root)
            if follow_on:  # last, so it is the line to copy
                print_line(out_console(), f"next stage:   {follow_on}")
    return code
