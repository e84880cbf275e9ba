"""The batch engine: many ordinary run folders under one budget and one set of provider limits.

Layout of a batch folder (default root `output/batches/`):
```
{YYYYMMDD_HHMMSS}/
  batch_checkpoint.json     the rows, their resolved options and what the driver knows of them (atomic, hashed)
  input/prompts.{txt,csv,jsonl}   a copy of the prompts file
  runs/{id}/                one ordinary run folder per row (valid for `fbloop inspect` / `fbloop resume` alone)
  batch_summary.json        counts, cost, time, and every row's result
  results.csv, results.jsonl    one row per prompt: id, status, best image/video, each stage's scores, cost, time
```
The driver alone writes the batch files; each row writes only its own run folder, through the run's own
checkpoint code, so a row can run in this process (local executor) or on another machine (Ray).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from feedback_cli import __version__
from feedback_cli.choices import Backend, Workflow
from feedback_cli.config import Settings
from feedback_cli.errors import BudgetError, CheckpointError, FbloopError, Interrupted
from feedback_cli.files import atomic_write_bytes, sha256_file
from feedback_cli.runstate.events import Event, EventBus
from feedback_cli.runstate.models import RunOptions, RunState, utcnow
from feedback_cli.runstate.runfolder import new_run_dir
from feedback_cli.workflow import checkpoint
from feedback_cli.workflow.batch_rows import BatchRow
from feedback_cli.workflow.batch_shared import BatchBudget, BatchLedger, Budget, ServicePool, current_run_services
from feedback_cli.workflow.batch_state import (
    BATCH_SUMMARY_NAME,
    FINAL_ROW_STATUSES,
    RESULTS_CSV,
    RESULTS_JSONL,
    BatchRowState,
    BatchState,
    RowResult,
    save_batch,
)

BATCH_SUMMARY_SCHEMA_VERSION = 1
#: run statuses -> row statuses (a run still "running" in its checkpoint was killed: it is interrupted)
RUN_TO_ROW = {
    "completed": "completed",
    "failed": "failed",
    "budget_exceeded": "budget_exceeded",
    "interrupted": "interrupted",
    "stopped": "stopped",
    "running": "interrupted",
}

#: (kind, row, data): "row_started", "row_finished", "event" (a run event, data["event"]), "cost"
Observer = Callable[[str, BatchRowState, dict[str, Any]], None]


def _ignore(kind: str, row: BatchRowState, data: dict[str, Any]) -> None:
    return None


def default_batch_root(settings: Settings) -> Path:
    """`output/batches/` next to the runs' default `output/feedback_loops/`."""
    return settings.output_dir.parent / "batches"


def run_settings(settings: Settings) -> Settings:
    """The settings each run gets: the batch cap is the shared budget, never a per-run cap."""
    return settings.model_copy(update={"max_cost": None})


def row_options(base: RunOptions, row: BatchRow, settings: Settings) -> tuple[RunOptions, dict[str, str]]:
    """The row's run options and its providers (role -> provider): each role chosen on its own, as for
    `fbloop run`, from the row's backend (else the batch's) and only for the roles its workflow uses."""
    from feedback_cli.providers.registry import resolve_backend
    from feedback_cli.stages.registry import roles_for
    from feedback_cli.workflow.plan import stages_for

    update: dict[str, Any] = dict(row.options)
    if "workflow" in update:
        update["workflow"] = Workflow(update["workflow"])
    if row.input_image is not None:
        update["input_image"] = row.input_image
    options = RunOptions.model_validate({**base.model_dump(), **update, "backend": base.backend})
    requested = str(update.get("backend", settings.backend))
    choice = resolve_backend(requested, settings, roles_for(stages_for(options.workflow), options))
    return options.model_copy(update={"backend": Backend(choice.backend)}), choice.providers


def create_batch(
    rows: list[BatchRow],
    base: RunOptions,
    settings: Settings,
    *,
    output_dir: Path,
    prompts_file: Path,
    executor: str,
    concurrency: int,
    max_cost: float | None,
) -> tuple[Path, BatchState]:
    """Make the batch folder, copy the prompts file in, and write the first batch checkpoint."""
    root = new_run_dir(output_dir).resolve()
    copy = f"input/prompts{prompts_file.suffix.lower()}"
    (root / "input").mkdir()
    shutil.copyfile(prompts_file, root / copy)
    state = BatchState(
        fbloop_version=__version__,
        batch_id=root.name,
        prompts_file=str(prompts_file),
        prompts_copy=copy,
        prompts_sha256=sha256_file(root / copy),
        executor=executor,  # type: ignore[arg-type]
        concurrency=concurrency,
        max_cost=max_cost,
        settings=settings.public_dict(),
        rows=[
            BatchRowState(
                id=row.id,
                line=row.line,
                prompt=row.prompt,
                options=options,
                providers=providers,
                input_image=row.input_image or base.input_image,
                run_dir=f"runs/{row.id}",
            )
            for row in rows
            for options, providers in (row_options(base, row, settings),)
        ],
    )
    save_batch(root, state, settings.secrets())
    write_results(root, state)
    return root, state


def pinned_settings(state: BatchState, settings: Settings) -> Settings:
    """On resume the settings that shape outputs are the ones the batch started with."""
    from feedback_cli.workflow.api import PINNED_SETTINGS

    pinned = {k: state.settings[k] for k in PINNED_SETTINGS if k in state.settings}
    return settings.model_copy(update=pinned)


def read_run_state(run_dir: Path) -> RunState | None:
    """The run's checkpoint, or None when the row never got as far as writing one."""
    if not (run_dir / checkpoint.CHECKPOINT_NAME).is_file():
        return None
    _, state = checkpoint.load(run_dir, verify_artifacts=False)
    return state


def reconcile(root: Path, state: BatchState) -> bool:
    """Bring each row's status in line with its run's own checkpoint (the driver may have died first). True
    when the batch checkpoint was behind: a row changed, or the driver never finished (it was killed)."""
    recorded = [(r.status, r.error, r.result) for r in state.rows]
    _reconcile_rows(root, state)
    return state.status == "running" or recorded != [(r.status, r.error, r.result) for r in state.rows]


def _reconcile_rows(root: Path, state: BatchState) -> None:
    for row in state.rows:
        try:
            run = read_run_state(root / row.run_dir)
        except CheckpointError as exc:  # one broken run must not hide the others
            row.status, row.error = "failed", exc.line()
            continue
        if run is None:
            row.status = "pending"
            continue
        row.status = RUN_TO_ROW[run.status]  # type: ignore[assignment]
        row.result = row_result(row, run)
        if run.error:
            row.error = run.error


def spent_by_run(state: BatchState) -> dict[str, float]:
    return {row.id: row.result.cost_usd for row in state.rows}


def rows_to_run(state: BatchState, *, retry_failed: bool = False) -> list[BatchRowState]:
    wanted = [r for r in state.rows if r.status not in FINAL_ROW_STATUSES]
    if retry_failed:
        wanted = [r for r in state.rows if r.status != "completed"]
    return wanted


class RowOutcome(BaseModel):
    """What a row's execution hands back to the driver (small and plain: it crosses process boundaries)."""

    id: str
    status: str
    error: str | None = None
    result: RowResult = Field(default_factory=RowResult)
    started: bool = True  # false: the budget was gone before the row began


def row_result(row: BatchRowState, run: RunState) -> RowResult:
    from feedback_cli.workflow.report import summarize

    summary = summarize(run)
    prefix = row.run_dir.rstrip("/") + "/"
    scores: dict[str, float | None] = {}
    for stage in summary.stages:
        for key, value in stage.scores.items():
            scores[f"{stage.name}.{key}"] = value
    return RowResult(
        best_image=prefix + summary.best_image if summary.best_image else None,
        best_video=prefix + summary.best_video if summary.best_video else None,
        best_videos=[prefix + p for p in summary.best_videos],
        scores=scores,
        cost_usd=summary.total_cost_usd,
        time_s=summary.total_time_s,
        final_image_prompt=summary.final_image_prompt,
    )


def outcome_from_run(root: Path, row: BatchRowState, status: str, error: str) -> RowOutcome:
    """The outcome of a row that ended without its run's report (its Ray worker or actors lost, an unexpected
    error): the cost and picks its run's own checkpoint shows, so the batch's spend never forgets them."""
    try:
        run = read_run_state(root / row.run_dir)
    except CheckpointError:
        run = None
    result = row_result(row, run) if run is not None else RowResult()
    return RowOutcome(id=row.id, status=status, error=error, result=result)


async def run_row(
    root: Path,
    row: BatchRowState,
    settings: Settings,
    pool: ServicePool,
    budget: Budget,
    *,
    retry_failed: bool = False,
    on_event: Callable[[Event], None] | None = None,
) -> RowOutcome:
    """Start, continue or leave alone one row's run folder; never pays for what its checkpoint already has."""
    from feedback_cli.workflow.api import PreparedRun, execute, load_for_resume, prepare_run

    run_dir = root / row.run_dir
    existing = read_run_state(run_dir)
    prepared: PreparedRun
    if existing is not None:
        if existing.status == "completed" or (existing.status == "failed" and not retry_failed):
            return RowOutcome(id=row.id, status=existing.status, error=existing.error, result=row_result(row, existing))
        prepared = load_for_resume(run_dir, settings, retry_failed=retry_failed)
    else:
        if run_dir.exists():
            # killed between creating the folder and its first checkpoint: nothing was paid, start over
            shutil.rmtree(run_dir)
        prepared = prepare_run(
            row.options,
            settings,
            output_dir=run_dir.parent,
            run_dir=run_dir,
            providers=row.providers or None,  # a batch from before providers per role: the backend's pair
            source_prompt=row.prompt,
            input_image=Path(row.input_image) if row.input_image else None,
        )
    services = pool.services_for(prepared.state)
    prepared.services = services
    current_run_services.set(services)  # this task's context only
    ledger = BatchLedger(prepared.state, prepared.state.options.max_cost, budget)
    bus = EventBus()
    bus.subscribe(pool.observe)  # one run's 429 slows the whole batch down
    if on_event is not None:
        bus.subscribe(on_event)
    error: str | None = None
    try:
        await execute(prepared, bus, ledger=ledger)
    except Interrupted:
        raise
    except BudgetError as exc:
        error = exc.line()
    except FbloopError as exc:
        error = exc.line()
    state = prepared.state
    status = RUN_TO_ROW.get(state.status, "failed")
    return RowOutcome(id=row.id, status=status, error=error or state.error, result=row_result(row, state))


@dataclass
class BatchRunner:
    """The driver: owns the batch checkpoint and results files, and hands rows to an executor."""

    root: Path
    state: BatchState
    settings: Settings
    observer: Observer = _ignore
    retry_failed: bool = False

    def __post_init__(self) -> None:
        self.root = self.root.resolve()  # Ray tasks on other processes and nodes need the full path
        self.budget = BatchBudget(self.state.max_cost, spent_by_run(self.state))
        self._started = time.perf_counter()
        self._base_wall = self.state.wall_time_s

    def save(self) -> None:
        self.state.wall_time_s = round(self._base_wall + time.perf_counter() - self._started, 3)
        save_batch(self.root, self.state, self.settings.secrets())
        write_results(self.root, self.state)

    def row_started(self, row: BatchRowState) -> None:
        row.status = "running"
        row.attempts += 1
        row.started_at = row.started_at or utcnow()
        row.error = None
        self.save()
        self.observer("row_started", row, {})

    def row_finished(self, row: BatchRowState, outcome: RowOutcome) -> None:
        if not outcome.started:
            row.status = "pending"
            row.attempts = max(0, row.attempts - 1)
        else:
            row.status = outcome.status  # type: ignore[assignment]
            row.finished_at = utcnow()
        row.error = outcome.error
        row.result = outcome.result
        self.budget.record(row.id, outcome.result.cost_usd)
        if outcome.status == "budget_exceeded":
            self.budget.exhausted = True
        self.save()
        self.observer("row_finished", row, {"spent": self.budget.spent})

    def finish(self, interrupted: bool = False) -> BatchState:
        if interrupted:
            for row in self.state.rows:
                if row.status == "running":
                    row.status = "interrupted"
        done = all(r.status == "completed" for r in self.state.rows)
        self.state.status = "interrupted" if interrupted else ("completed" if done else "incomplete")
        self.save()
        return self.state

    def run(self, executor: str | None = None, **options: Any) -> BatchState:
        todo = rows_to_run(self.state, retry_failed=self.retry_failed)
        self.state.status = "running"
        self.save()
        kind = executor or self.state.executor
        if kind == "ray":
            from feedback_cli.workflow.ray_executor import RayExecutor

            runner: Any = RayExecutor(self, **options)
        else:
            from feedback_cli.workflow.executors import LocalExecutor

            runner = LocalExecutor(self)
        try:
            runner.run(todo)
        except (KeyboardInterrupt, Interrupted):
            self.finish(interrupted=True)
            raise
        except FbloopError:  # e.g. the Ray cluster cannot serve the batch: the rows stay resumable
            self.finish()
            raise
        return self.finish()


def write_results(root: Path, state: BatchState) -> None:
    """batch_summary.json, results.csv and results.jsonl, rebuilt from the batch state (atomic each)."""
    rows = [result_row(r) for r in state.rows]
    score_keys = sorted({k for r in state.rows for k in r.result.scores})
    counts: dict[str, int] = {}
    for row in state.rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    summary = {
        "schema_version": BATCH_SUMMARY_SCHEMA_VERSION,
        "format": "fbloop-batch-summary",
        "batch_id": state.batch_id,
        "status": state.status,
        "executor": state.executor,
        "prompts_file": state.prompts_file,
        "rows": len(state.rows),
        "counts": counts,
        "not_finished": sum(1 for r in state.rows if r.status != "completed"),
        "total_cost_usd": round(sum(r.result.cost_usd for r in state.rows), 6),
        "max_cost": state.max_cost,
        "wall_time_s": state.wall_time_s,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "score_columns": score_keys,
        "results": rows,
    }
    atomic_write_bytes(root / BATCH_SUMMARY_NAME, (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode())
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write_bytes(root / RESULTS_JSONL, lines.encode())
    columns = [
        "id",
        "status",
        "prompt",
        "run_dir",
        "best_image",
        "best_video",
        *score_keys,
        "cost_usd",
        "time_s",
        "error",
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {
                **{k: "" if v is None else v for k, v in r.items() if k != "scores"},
                **{k: "" if r["scores"].get(k) is None else r["scores"][k] for k in score_keys},
            }
        )
    atomic_write_bytes(root / RESULTS_CSV, buffer.getvalue().encode())


def result_row(row: BatchRowState) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "prompt": row.prompt,
        "run_dir": row.run_dir,
        "best_image": row.result.best_image,
        "best_video": row.result.best_video,
        "best_videos": row.result.best_videos,
        "scores": row.result.scores,
        "cost_usd": row.result.cost_usd,
        "time_s": row.result.time_s,
        "error": row.error,
    }


def run_with_pool(coro_factory: Callable[[ServicePool], Any], settings: Settings) -> Any:
    """asyncio.run a coroutine that uses a ServicePool, closing the pool at the end whatever happens."""

    async def main() -> Any:
        pool = ServicePool(settings)
        try:
            return await coro_factory(pool)
        finally:
            await asyncio.shield(pool.aclose())

    return asyncio.run(main())


def batch_resume_check(root: Path, state: BatchState) -> None:
    """Refuse a batch whose prompts copy is gone or changed: the rows would no longer match it."""
    copy = root / state.prompts_copy
    if not copy.is_file() or sha256_file(copy) != state.prompts_sha256:
        raise CheckpointError(f"{copy} is missing or changed since the batch started")
