"""`fbloop run --dry-run`: the plan as a table (or with `--json` one JSON document) on stdout; the `backend:`
line and the verdict on `--max-cost` on stderr."""

from __future__ import annotations

from rich.table import Table

from feedback_cli.ui.console import err_console, error_line, out_console, print_line, print_table, write_json
from feedback_cli.workflow.estimate import DryRunPlan


def render_plan(plan: DryRunPlan, backend_reason: str, *, as_json: bool = False) -> int:
    """Show the plan; the exit code: 1 when `--max-cost` is below the estimate (the run would or may stop
    before it finishes), else 0."""
    print_line(err_console(), f"backend: {backend_reason}")
    if as_json:
        write_json(plan.model_dump(mode="json"))
    else:
        _table(plan)
    return _check_max_cost(plan)


def _check_max_cost(plan: DryRunPlan) -> int:
    if plan.max_cost_usd is None or plan.fits_max_cost == "yes":
        return 0
    estimate = f"${plan.cost_min_usd:.4f}-{plan.cost_max_usd:.4f}"
    would = "would stop before it finishes" if plan.fits_max_cost == "no" else "may stop before it finishes"
    error_line(f"--max-cost {plan.max_cost_usd:g} is below the estimate ({estimate}): the run {would}")
    return 1


def _table(plan: DryRunPlan) -> None:
    console = out_console()
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
