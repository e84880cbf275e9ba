"""Where the rows of a batch run: here, in this process (local); `ray_executor.py` runs them as Ray tasks.

Both call the same `run_row` on the same run folders and report back to the same `BatchRunner`, which alone
writes the batch files; only where the shared budget, limits and scorers live differs.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from feedback_cli.errors import Interrupted
from feedback_cli.runstate.events import Event
from feedback_cli.tasks import gather_or_cancel
from feedback_cli.workflow.batch import outcome_from_run, run_row, run_settings, run_with_pool
from feedback_cli.workflow.batch_state import BatchRowState

if TYPE_CHECKING:
    from feedback_cli.workflow.batch import BatchRunner
    from feedback_cli.workflow.batch_shared import ServicePool


class LocalExecutor:
    """Rows as asyncio tasks in one event loop: at most `concurrency` runs in flight, one ServicePool."""

    def __init__(self, runner: BatchRunner) -> None:
        self.runner = runner

    def run(self, rows: list[BatchRowState]) -> None:
        runner = self.runner
        settings = run_settings(runner.settings)

        async def main(pool: ServicePool) -> None:
            slots = asyncio.Semaphore(runner.state.concurrency)

            async def one(row: BatchRowState) -> None:
                async with slots:
                    if runner.budget.exhausted:  # the cap was reached: rows not begun stay not begun
                        return
                    runner.row_started(row)

                    def on_event(event: Event) -> None:
                        runner.observer("event", row, {"event": event, "spent": runner.budget.spent})

                    try:
                        outcome = await run_row(
                            runner.root,
                            row,
                            settings,
                            pool,
                            runner.budget,
                            retry_failed=runner.retry_failed,
                            on_event=on_event,
                        )
                    except (Interrupted, asyncio.CancelledError):
                        row.status = "interrupted"
                        raise
                    except Exception as exc:  # one row's unexpected failure must not sink the others
                        outcome = outcome_from_run(runner.root, row, "failed", _describe(exc))
                    runner.row_finished(row, outcome)

            await gather_or_cancel(one(row) for row in rows)

        run_with_pool(main, settings)


def _describe(exc: BaseException) -> str:
    line = getattr(exc, "line", None)
    return line() if callable(line) else f"{type(exc).__name__}: {exc}"
