"""The one terminal wrapper: stderr for progress and diagnostics, stdout for results.

On a terminal, each stage gets a live progress bar; otherwise (pipes, CI) plain lines."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from feedback_cli.redaction import redact_known
from feedback_cli.workflow.events import Event


def out_console() -> Console:
    return Console(highlight=False, soft_wrap=False, no_color="NO_COLOR" in os.environ)


def err_console() -> Console:
    return Console(stderr=True, highlight=False, no_color="NO_COLOR" in os.environ)


def error_line(message: str) -> None:
    """One line on stderr, no markup interpretation (messages may contain brackets); known secrets redacted."""
    sys.stderr.write(f"fbloop: error: {redact_known(message)}\n")
    sys.stderr.flush()


class EventRenderer:
    """Subscribes to engine events and shows them."""

    def __init__(self, console: Console, verbose: bool = False) -> None:
        self.console = console
        self.verbose = verbose
        self.live = console.is_terminal and not os.environ.get("CI")
        self.progress: Progress | None = None
        self.task: int | None = None
        self.total = 0
        self.done = 0

    def _line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def _start_progress(self, title: str) -> None:
        if not self.live:
            return
        self._stop_progress()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task(title, total=None)

    def _stop_progress(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
            self.task = None

    def _advance(self, description: str | None = None) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(
                self.task,
                completed=self.done,
                total=self.total or None,
                description=description or self.progress.tasks[0].description,
            )

    def __call__(self, event: Event) -> None:
        data = event.data
        kind = event.kind
        if kind in ("run_started", "run_resumed"):
            self._line(f"{event.message} -> {data.get('run_dir', '')}")
        elif kind == "stage_started":
            self.total = self.done = 0
            title = f"Stage {data.get('number')}: {data.get('title')}"
            self._line(title + (f" (attempt {data['attempt']})" if data.get("attempt", 1) > 1 else ""))
            self._start_progress(title)
        elif kind == "stage_skipped":
            self._line(f"Stage {data.get('number')}: {data.get('title')} skipped: {event.message}")
        elif kind == "iteration":
            self._line(f"  {event.message} (threshold {data.get('threshold')})")
        elif kind == "item_started":
            self.total += 1
            self._advance()
            if self.verbose:
                self._line(f"  {event.message} started (seed {data.get('seed')})")
        elif kind == "item_submitted" and self.verbose:
            self._line(f"  {data.get('key')} submitted as {data.get('job_id')}")
        elif kind == "item_finished":
            self.done += 1
            self._advance()
            if self.verbose or not self.live:
                self._line(
                    f"  {data.get('key')} -> {data.get('path')} ({data.get('latency_s')}s, "
                    f"${data.get('cost_usd', 0):.4f})"
                )
        elif kind == "item_failed":
            self.done += 1
            self._advance()
            self._line(f"  ! {event.message}")
        elif kind == "item_scored" and self.verbose:
            self._line(f"  {data.get('key')} scores {data.get('scores')}")
        elif kind == "notice":
            self._line(f"  note: {event.message}")
        elif kind in ("stage_finished", "stage_failed"):
            self._stop_progress()
            if kind == "stage_failed":
                self._line(f"  stage failed: {event.message}")
            else:
                self._line(f"  done in {data.get('wall_time_s', 0):.1f}s, ${data.get('cost_usd', 0):.4f}")
        elif kind == "review":
            self._stop_progress()
        elif kind == "final_video":
            self._line(f"  final video: {event.message}")
        elif kind == "run_interrupted":
            # the session prints the one line that says so, with the resume command: not twice
            self._stop_progress()

    def close(self) -> None:
        self._stop_progress()
