"""`fbloop inspect [RUN]`: the runs under the output dir, one run in detail, two runs compared, or a report.

Tables go to stdout; with `--json` only the JSON does (notes go to stderr). Works on finished, failed,
stopped and interrupted runs: the checkpoint is read without checking that every file is still there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from feedback_cli.commands import options as o
from feedback_cli.errors import InputError, StorageError, UsageError
from feedback_cli.workflow.inputs import nonempty_path

if TYPE_CHECKING:
    from feedback_cli.ui.terminal import Terminal


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)


def inspect(
    run: Annotated[
        Path | None,
        typer.Argument(help="A run folder, its checkpoint, or a run id under --output-dir. Without it: list the runs."),
    ] = None,
    output_dir: Annotated[Path | None, o.output_dir_option("Where runs are [default: output/feedback_loops/].")] = None,
    compare: Annotated[
        Path | None,
        typer.Option("--compare", help="Another run: both side by side, deltas B - A (with --html: a compare page)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the data as JSON on stdout instead of tables.")
    ] = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Write one self-contained HTML report of RUN (or of RUN and --compare) to FILE.",
            parser=nonempty_path,
        ),
    ] = None,
    sort: Annotated[
        str | None, typer.Option("--sort", help="A batch's leaderboard: sort by this score (or cost_usd).")
    ] = None,
) -> None:
    """Show what runs did: stages, prompts, candidates and every score, picks, costs and times."""
    from feedback_cli.ui import inspect_view as view
    from feedback_cli.ui.terminal import Terminal
    from feedback_cli.workflow import inspect_report as report

    terminal = Terminal()

    root = output_dir
    if root is None and (run is None or compare is not None or not run.exists()):
        from feedback_cli.config import load_settings  # lazy: keeps start-up light

        root = load_settings().output_dir
    if run is None:
        if compare is not None or html is not None:
            raise UsageError("--compare and --html need a RUN")
        assert root is not None
        runs = report.list_runs(root)
        if as_json:
            _print_json([r.model_dump(mode="json") for r in runs])
        else:
            view.render_run_list(terminal.out, root, runs)
        return

    target = report.resolve_run(run, root)
    from feedback_cli.workflow.batch_state import is_batch_dir

    if is_batch_dir(target):  # a batch folder: its leaderboard
        _inspect_batch(terminal, target, sort=sort, as_json=as_json, html=html, compare=compare)
        return
    if sort is not None:
        raise UsageError("--sort orders a batch's leaderboard; RUN is a single run")
    if compare is not None:
        data: report.InspectReport | report.CompareReport = report.compare_runs(
            target, report.resolve_run(compare, root)
        )
    else:
        data = report.inspect_run(target)
    if html is not None:
        from feedback_cli.ui.html_report import write_html

        try:
            written = write_html(data, html)
        except OSError as exc:
            raise InputError(f"cannot write the HTML report to {html}: {exc.strerror or exc}") from None
        except StorageError as exc:  # a full, read-only or protected place: the same one line, exit 2
            raise InputError(f"the HTML report: {exc.message}") from None
        terminal.note(f"wrote {written}")
    if as_json:
        _print_json(data.json_data())
    elif html is None and isinstance(data, report.CompareReport):
        view.render_compare(terminal.out, data)
    elif html is None:
        view.render_run(terminal.out, data)


def _inspect_batch(
    terminal: Terminal, target: Path, *, sort: str | None, as_json: bool, html: Path | None, compare: Path | None
) -> None:
    from feedback_cli.ui import batch_inspect
    from feedback_cli.workflow.batch_leaderboard import inspect_batch

    if compare is not None:
        raise UsageError("--compare compares two runs; a batch folder shows its leaderboard")
    data = inspect_batch(target, sort=sort)
    if html is not None:
        try:
            written = batch_inspect.write_batch_html(data, html)
        except OSError as exc:
            raise InputError(f"cannot write the HTML report to {html}: {exc.strerror or exc}") from None
        terminal.err.print(f"wrote {written}", markup=False)
    if as_json:
        _print_json(data.json_data())
    elif html is None:
        batch_inspect.render_batch(terminal.out, data)


def _print_json(data: Any) -> None:
    from feedback_cli.workflow.safe_text import json_safe  # C1, bidi and zero-width characters as \\u escapes

    typer.echo(json_safe(json.dumps(data, indent=2, ensure_ascii=False, default=str)))
