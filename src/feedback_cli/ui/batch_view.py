"""The live view of a batch: rows done / running / failed, spend against the cap, an ETA; one line per row.

On a terminal a Rich Live panel updates in place; elsewhere (CI, pipes) only the per-row lines are printed.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from feedback_cli.runstate.events import Event
from feedback_cli.workflow.batch_state import BatchRowState, BatchState


class BatchView:
    def __init__(self, console: Console, state: BatchState, *, verbose: bool = False) -> None:
        self.console = console
        self.state = state
        self.verbose = verbose
        self.spent = sum(r.result.cost_usd for r in state.rows)
        self._started = time.monotonic()
        self._finished_here = 0
        self._live: Live | None = None

    def __enter__(self) -> BatchView:
        if self.console.is_terminal:
            self._live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(*exc)
            self._live = None

    def counts(self) -> dict[str, int]:
        counts = {"completed": 0, "running": 0, "failed": 0, "pending": 0, "stopped_by_budget": 0, "other": 0}
        for row in self.state.rows:
            if row.status in ("completed", "running", "failed", "pending"):
                counts[row.status] += 1
            elif row.status == "budget_exceeded":
                counts["stopped_by_budget"] += 1
            else:
                counts["other"] += 1
        return counts

    def eta_s(self) -> float | None:
        """Time per finished row so far (in this process) x rows left, over the rows running at once."""
        if not self._finished_here:
            return None
        counts = self.counts()
        left = counts["pending"] + counts["running"]
        per_row = (time.monotonic() - self._started) / self._finished_here
        return per_row * left

    def render(self) -> Table:
        counts = self.counts()
        total = len(self.state.rows)
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        table.add_row("batch", f"{self.state.batch_id} ({self.state.executor}, {self.state.concurrency} at once)")
        done = counts["completed"]
        table.add_row(
            "rows",
            f"{done}/{total} done, {counts['running']} running, {counts['failed']} failed, "
            f"{counts['pending']} waiting"
            + (f", {counts['stopped_by_budget']} stopped by the budget" if counts["stopped_by_budget"] else ""),
        )
        cap = f" of ${self.state.max_cost:.4f}" if self.state.max_cost is not None else " (no cap)"
        table.add_row("spend", f"${self.spent:.4f}{cap}")
        eta = self.eta_s()
        elapsed = time.monotonic() - self._started
        table.add_row("time", f"{elapsed:.0f}s elapsed" + (f", about {eta:.0f}s left" if eta is not None else ""))
        return table

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.render())

    def observer(self, kind: str, row: BatchRowState, data: dict[str, Any]) -> None:
        if "spent" in data:
            self.spent = float(data["spent"])
        if kind == "row_finished":
            self._finished_here += 1
            line = f"{row.id}: {row.status}"
            best = row.result.best_video or row.result.best_image
            if best:
                line += f", best {best}"
            line += f", ${row.result.cost_usd:.4f}, {row.result.time_s:.1f}s"
            if row.error:
                line += f" ({row.error})"
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        elif kind == "row_started" and self.verbose:
            self.console.print(f"{row.id}: started", markup=False, highlight=False, soft_wrap=True)
        elif kind == "event" and self.verbose:
            event: Event = data["event"]
            if event.kind in ("stage_finished", "stage_failed", "notice", "item_failed"):
                stage = f" [{event.stage}]" if event.stage else ""
                self.console.print(
                    f"{row.id}{stage}: {event.kind} {event.message}", markup=False, highlight=False, soft_wrap=True
                )
        self._refresh()


def render_outcome(console: Console, state: BatchState, root: Any) -> None:
    counts: dict[str, int] = {}
    for row in state.rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    total_cost = sum(r.result.cost_usd for r in state.rows)
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    console.print(
        f"batch {state.batch_id}: {len(state.rows)} rows: {parts}", markup=False, highlight=False, soft_wrap=True
    )
    console.print(
        f"cost ${total_cost:.4f}"
        + (f" of ${state.max_cost:.4f}" if state.max_cost is not None else "")
        + f", {state.wall_time_s:.1f}s",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    not_finished = sum(1 for r in state.rows if r.status != "completed")
    if not_finished:
        flags = ""
        if counts.get("budget_exceeded") or (any(r.status == "pending" for r in state.rows) and state.max_cost):
            flags += " --max-cost N"
        if counts.get("failed"):
            flags += " [--retry-failed]"
        console.print(
            f"{not_finished} of {len(state.rows)} rows did not finish. Resume with: fbloop resume {root}{flags}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"results: {root}/results.csv", markup=False, highlight=False, soft_wrap=True)
