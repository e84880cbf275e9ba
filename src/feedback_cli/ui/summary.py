"""The end-of-run summary: best outputs, scores and cost per stage, paths, total time."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from feedback_cli.workflow.report import WorkflowSummary


def _scores(scores: dict[str, float | None]) -> str:
    parts = [f"{k}={v:.1f}" for k, v in scores.items() if v is not None]
    return ", ".join(parts[:4]) + (" ..." if len(parts) > 4 else "")


def render_summary(console: Console, summary: WorkflowSummary, run_dir: Path) -> None:
    if summary.offline:
        console.print(f"[bold yellow]{summary.label}[/]")
    table = Table(title=f"fbloop run {summary.run_id} ({summary.workflow}, {summary.backend}): {summary.status}")
    for column in ("Stage", "Status", "Time (s)", "Cost (USD)", "Scores"):
        table.add_column(column, justify="right" if column in ("Time (s)", "Cost (USD)") else "left")
    for stage in summary.stages:
        status = stage.status if stage.status != "skipped" else f"skipped: {stage.skip_reason}"
        table.add_row(
            f"{stage.number}. {stage.name}",
            status,
            f"{stage.wall_time_s:.1f}",
            f"{stage.cost_usd:.4f}",
            _scores(stage.scores),
        )
    table.add_section()
    table.add_row("total", "", f"{summary.total_time_s:.1f}", f"{summary.total_cost_usd:.4f}", "")
    console.print(table)
    if summary.final_image_prompt:
        console.print(f"image prompt: {summary.final_image_prompt}", markup=False)
    if summary.final_video_prompt:
        console.print(f"video prompt: {summary.final_video_prompt}", markup=False)
    if summary.best_image:
        console.print(f"best image:   {run_dir / summary.best_image}", markup=False)
    if summary.best_videos:
        for path in summary.best_videos:
            console.print(f"best video:   {run_dir / path}", markup=False)
    elif summary.best_video:
        console.print(f"best video:   {run_dir / summary.best_video}", markup=False)
    console.print(f"run folder:   {run_dir}", markup=False)
    console.print(f"summary:      {run_dir / 'workflow_summary.json'}", markup=False)
    console.print(f"total time:   {summary.total_time_s:.1f}s, total cost ${summary.total_cost_usd:.4f}", markup=False)
