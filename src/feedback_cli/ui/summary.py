"""The end-of-run summary: best outputs, scores and cost per stage, paths, total time."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from rich.console import Console
from rich.table import Table

from feedback_cli.runstate.models import RunState
from feedback_cli.ui.console import print_line, print_table
from feedback_cli.workflow.report import WorkflowSummary


def is_count(stage: str, key: str) -> bool:
    """Is this figure of the stage a count (the storyboard's clips) rather than a 0-100 score? The stage says
    so (`Stage.count_scores`); a stage this installation does not know (a plugin since removed) has none."""
    from feedback_cli.errors import FbloopError
    from feedback_cli.stages.registry import get

    try:
        return key in get(stage).count_scores
    except (KeyError, FbloopError):  # unknown here, or a broken plugin: shown as a score, never a crash
        return False


def places(stage: str, key: str) -> int:
    return 0 if is_count(stage, key) else 1


def score_text(stage: str, key: str, value: float) -> str:
    """A count reads as a whole number (clips=2), a score with one decimal (90.0 stays 90.0): the
    checkpoint stores both as JSON floats, so the stage's declaration tells them apart."""
    return str(round(value)) if is_count(stage, key) else f"{value:.1f}"


def clip_labels(paths: list[str]) -> list[str]:
    """`clip N` for each per-clip video: the number in its file name (clip_02_video_03.mp4), else its place."""
    labels = []
    for index, path in enumerate(paths, start=1):
        found = re.match(r"clip_(\d+)", Path(path).name)
        labels.append(f"clip {int(found.group(1)) if found else index}")
    return labels


def _scores(stage: str, scores: dict[str, float | None]) -> str:
    return ", ".join(f"{k}={score_text(stage, k, v)}" for k, v in scores.items() if v is not None)


def render_summary(console: Console, summary: WorkflowSummary, run_dir: Path) -> None:
    """Path lines are soft-wrapped (the terminal folds them, Rich does not cut them) so they copy whole; the
    table is stacked on a terminal too narrow for it."""
    if summary.label:  # offline, or partly offline (real agents, offline media)
        console.print(summary.label, style="bold yellow", markup=False)
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
            _scores(stage.name, stage.scores),
        )
    table.add_section()
    table.add_row("total", "", f"{summary.total_time_s:.1f}", f"{summary.total_cost_usd:.4f}", "")
    print_table(console, table)
    if summary.final_image_prompt:
        print_line(console, f"image prompt: {summary.final_image_prompt}")
    if summary.final_video_prompt:
        print_line(console, f"video prompt: {summary.final_video_prompt}")
    for number, prompt in enumerate(summary.motion_prompts, start=1):
        print_line(console, f"motion prompt (clip {number}): {prompt}")
    if summary.best_image:
        print_line(console, f"best image:   {run_dir / summary.best_image}")
    if summary.best_videos:
        for label, path in zip(clip_labels(summary.best_videos), summary.best_videos, strict=True):
            print_line(console, f"best video ({label}): {run_dir / path}")
    elif summary.best_video:
        print_line(console, f"best video:   {run_dir / summary.best_video}")
    if summary.final_video:
        print_line(console, f"final video:  {run_dir / summary.final_video}")
    print_line(console, f"run folder:   {run_dir}")
    print_line(console, f"summary:      {run_dir / 'workflow_summary.json'}")
    print_line(console, f"total time:   {summary.total_time_s:.1f}s, total cost ${summary.total_cost_usd:.4f}")


def next_stage_command(state: RunState, run_dir: Path) -> str | None:
    """The `fbloop stage ...` command that continues a finished `fbloop stage` run from its output (the
    file the next stage needs), or None after the last stage."""
    if state.kind != "stage" or state.status != "completed" or not state.stages:
        return None
    record = state.stages[0]
    from feedback_cli.stages.registry import get as get_stage

    try:
        stage = get_stage(record.name)
    except KeyError:  # a stage this version does not know
        return None

    def path(relative: str) -> str:
        return shlex.quote(str(run_dir / relative))

    return stage.follow_on(record, state, path)
