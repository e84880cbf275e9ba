"""`fbloop run --dry-run`: the plan as a table on stdout."""

from __future__ import annotations

from rich.table import Table

from feedback_cli.ui.console import out_console, print_line, print_table
from feedback_cli.workflow.estimate import DryRunPlan


def render_plan(plan: DryRunPlan, backend_reason: str) -> None:
    console = out_console()
    print_line(console, f"backend: {backend_reason}")
    table = Table(title=f"dry run: {plan.workflow} on {plan.backend} (nothing called, nothing written)")
    for column in ("Stage", "Agent calls", "Media calls", "Models", "Cost (USD)"):
        table.add_column(column)
    for stage in plan.stages:
        if not stage.runs:
            table.add_row(f"{stage.number}. {stage.name}", "-", "-", f"skipped: {stage.skip_reason}", "-")
            continue
        calls = (
            f"{stage.agent_calls_min}-{stage.agent_calls_max}"
            if stage.agent_calls_min != stage.agent_calls_max
            else str(stage.agent_calls_max)
        )
        cost = (
            f"{stage.cost_min_usd:.4f}-{stage.cost_max_usd:.4f}"
            if stage.cost_min_usd != stage.cost_max_usd
            else f"{stage.cost_max_usd:.4f}"
        )
        media = str(stage.media_calls)
        if stage.media_calls_min is not None and stage.media_calls_min != stage.media_calls:
            media = f"{stage.media_calls_min}-{stage.media_calls}"  # rounds: one round at the least
        table.add_row(f"{stage.number}. {stage.name}", calls, media, ", ".join(stage.models), cost)
    table.add_section()
    table.add_row("total", "", "", "", f"{plan.cost_min_usd:.4f}-{plan.cost_max_usd:.4f}")
    print_table(console, table)
    for note in plan.notes:
        print_line(console, f"note: {note}")
