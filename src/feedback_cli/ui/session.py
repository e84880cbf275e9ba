"""Drive a prepared run with the terminal UI attached, and turn its outcome into an exit code (through the one
terminal object, `ui/terminal.py`: its consoles, its error line, its table of exit codes)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from feedback_cli.errors import (
    BudgetError,
    FbloopError,
    Interrupted,
    RunLocked,
    StorageError,
)
from feedback_cli.runstate.events import EventBus
from feedback_cli.ui.console import EventRenderer, print_line
from feedback_cli.ui.summary import next_stage_command, render_summary
from feedback_cli.ui.terminal import Terminal, exit_code
from feedback_cli.workflow.api import PreparedRun, execute
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
    terminal = Terminal()
    console = terminal.err
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
    resume = resume_command(prepared)
    try:
        # with --json stdout holds the one document: anything a library prints meanwhile goes to stderr
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            asyncio.run(_with_stop_signals(execute(prepared, bus, reviewer), received))
    except Interrupted as exc:
        renderer.close()
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            terminal.error(f"{_stopped_by(received)}; checkpoint saved. Resume with: {resume}")
        code = exit_code(exc, received[0] if received else None)
    except KeyboardInterrupt as exc:  # a second Ctrl-C (or signal): leave at once, the last checkpoint stands
        renderer.close()
        with contextlib.suppress(OSError):
            terminal.error(f"{_stopped_by(received)}. Resume with: {resume}")
        return exit_code(exc, received[0] if received else None)
    except RunLocked as exc:  # another process works on the run: nothing was done, nothing to resume
        renderer.close()
        return terminal.fail(exc)
    except RunStopped as exc:  # the person chose to stop at a review: said on stderr, not as an error (exit 0)
        renderer.close()
        print_line(console, f"{exc.message}. Resume with: {resume}")
        code = exit_code(exc)
    except BudgetError as exc:
        renderer.close()
        code = terminal.fail(exc, f"{exc.message.rstrip('.')}. Checkpoint saved; resume with: {resume} --max-cost N")
    except StorageError as exc:  # nothing could be saved just now: the checkpoint on disk is the last good one
        renderer.close()
        code = terminal.fail(exc, f"{exc.line().rstrip('.')}. The last checkpoint stands; resume with: {resume}")
    except FbloopError as exc:
        renderer.close()
        flags = f" {exc.resume_flags}" if exc.resume_flags else ""
        code = terminal.fail(exc, f"{exc.line().rstrip('.')}. Checkpoint saved; resume with: {resume}{flags}")
    finally:
        renderer.close()
    summary = WorkflowSummary.model_validate(
        prepared.folder.redactor.scrub(summarize(prepared.state, str(prepared.folder.root.absolute())).model_dump())
    )
    with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
        if as_json:
            terminal.json(summary.model_dump(mode="json"))
        else:
            render_summary(terminal.out, summary, prepared.folder.root)
            follow_on = next_stage_command(prepared.state, prepared.folder.root)
            if follow_on:  # last, so it is the line to copy
                print_line(terminal.out, f"next stage:   {follow_on}")
    return code
