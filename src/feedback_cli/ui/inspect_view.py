"""Tables for `fbloop inspect`: the list of runs, and one run's stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from feedback_cli.errors import CheckpointError, FbloopError
from feedback_cli.workflow import checkpoint
from feedback_cli.workflow.report import summarize


class RunListing(BaseModel):
    run_id: str
    path: str
    created_at: str | None = None
    workflow: str | None = None
    backend: str | None = None
    status: str
    best_image_score: float | None = None
    best_video_score: float | None = None
    cost_usd: float | None = None
    time_s: float | None = None
    problem: str | None = None


def _candidate_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]


def list_runs(root: Path) -> list[RunListing]:
    out = []
    for folder in _candidate_dirs(root):
        try:
            _, state = checkpoint.load(folder, verify_artifacts=False)
        except FbloopError as exc:
            out.append(RunListing(run_id=folder.name, path=str(folder), status="broken", problem=exc.message))
            continue
        summary = summarize(state)
        scores = {s.name: s.scores for s in summary.stages}
        out.append(
            RunListing(
                run_id=state.run_id,
                path=str(folder),
                created_at=state.created_at,
                workflow=summary.workflow,
                backend=summary.backend,
                status=state.status,
                best_image_score=scores.get("image_generation", {}).get("best_overall"),
                best_video_score=scores.get("video_generation", {}).get("best_overall"),
                cost_usd=summary.total_cost_usd,
                time_s=summary.total_time_s,
            )
        )
    out.sort(key=lambda r: (r.created_at or "", r.run_id), reverse=True)
    return out


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_run_list(console: Console, root: Path, runs: list[RunListing]) -> None:
    if not runs:
        console.print(f"no runs under {root}", markup=False)
        return
    table = Table(title=f"runs under {root}")
    for column in (
        "Run",
        "Date",
        "Workflow",
        "Backend",
        "Status",
        "Best image",
        "Best video",
        "Cost (USD)",
        "Time (s)",
    ):
        table.add_column(column)
    for r in runs:
        status = r.status if r.problem is None else f"broken: {r.problem}"
        table.add_row(
            r.run_id,
            (r.created_at or "-")[:19],
            r.workflow or "-",
            r.backend or "-",
            status,
            _fmt(r.best_image_score),
            _fmt(r.best_video_score),
            _fmt(r.cost_usd, 4),
            _fmt(r.time_s),
        )
    console.print(table)


def load_run(target: Path) -> dict[str, Any]:
    """The run's summary and state, validated but tolerant of missing artifacts (inspect any run)."""
    try:
        run_dir, state = checkpoint.load(target, verify_artifacts=False)
    except CheckpointError:
        raise
    return {
        "run_dir": str(run_dir),
        "summary": summarize(state).model_dump(mode="json"),
        "state": state.model_dump(mode="json"),
    }


def render_run(console: Console, data: dict[str, Any]) -> None:
    summary = data["summary"]
    table = Table(title=f"run {summary['run_id']} ({summary['workflow']}, {summary['backend']}): {summary['status']}")
    for column in ("Stage", "Status", "Time (s)", "Cost (USD)", "Scores"):
        table.add_column(column)
    for stage in summary["stages"]:
        scores = ", ".join(f"{k}={v:.1f}" for k, v in stage["scores"].items() if v is not None)
        table.add_row(
            f"{stage['number']}. {stage['name']}",
            stage["status"],
            _fmt(stage["wall_time_s"]),
            _fmt(stage["cost_usd"], 4),
            scores,
        )
    table.add_section()
    table.add_row("total", "", _fmt(summary["total_time_s"]), _fmt(summary["total_cost_usd"], 4), "")
    console.print(table)
    if summary.get("label"):
        console.print(summary["label"], markup=False)
