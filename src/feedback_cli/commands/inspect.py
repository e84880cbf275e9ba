"""`fbloop inspect [RUN]`: the runs under the output dir, or the stages of one run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer



def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)


def inspect(
    run: Path | None = typer.Argument(None, help="A run folder (or its checkpoint). Without it: list runs."),
    output_dir: Path | None = typer.Option(None, "--output-dir", help="Where to look for runs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of tables."),
) -> None:
    """Show what a run did: stages, scores, costs and times; or the list of runs."""
    from feedback_cli.ui.console import out_console
    from feedback_cli.ui.inspect_view import list_runs, load_run, render_run, render_run_list

    console = out_console()
    if run is None:
        from feedback_cli.config import load_settings  # lazy: keeps start-up light

        root = output_dir or load_settings().output_dir
        runs = list_runs(root)
        if as_json:
            typer.echo(json.dumps([r.model_dump(mode="json") for r in runs], indent=2))
        else:
            render_run_list(console, root, runs)
        return
    data: dict[str, Any] = load_run(run)
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        render_run(console, data)
