"""`fbloop score IMAGE_OR_VIDEO... --prompt TEXT [--scorer NAME ...] [--json]`: score files with the real scorers.

Parses and validates, runs the preflight, then hands over to `feedback_cli.scoring.runner`. Images get the image
scorers (default: pickscore, clip-score, aesthetic, vqascore), videos the VBench dimensions (default: the six
native ones). torch and transformers are imported only inside the command, never by `fbloop --help`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from feedback_cli.errors import InputError, ScorerUnavailable

if TYPE_CHECKING:
    from feedback_cli.scoring.runner import Report
    from feedback_cli.ui.terminal import Terminal


def register(app: typer.Typer) -> None:
    app.command("score")(score)


def score(
    files: Annotated[list[Path], typer.Argument(help="Images (.png .jpg .webp) and/or videos (.mp4 .mov .webm .gif).")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The prompt the files were generated from.")],
    scorer: Annotated[
        list[str] | None,
        typer.Option(
            "--scorer",
            "-s",
            help="A scorer name (repeat, or comma-separate). Default: every real scorer that can run here, "
            "else the offline statistics.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only on stdout instead of a table.")] = False,
) -> None:
    """Score images and videos against a prompt: raw value, 0-100 value and model per scorer per file."""
    from feedback_cli.config import load_settings
    from feedback_cli.scoring import preflight, registry, runner, scorer_sets
    from feedback_cli.ui.terminal import Terminal
    from feedback_cli.workflow.safe_text import has_visible_text

    terminal = Terminal()

    if not has_visible_text(prompt):  # only spaces, control or zero-width characters: as good as empty
        raise InputError("--prompt is empty")
    for path in files:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        if runner.kind_of(path) is None:
            raise InputError(f"{path}: not an image or video file (by its extension)")
    has_images = any(runner.kind_of(p) == "image" for p in files)
    has_videos = any(runner.kind_of(p) == "video" for p in files)
    settings = load_settings()

    explicit = bool(scorer)
    if explicit:
        requested = [n.strip() for item in scorer or [] for n in item.split(",") if n.strip()]
        image_names, video_names = registry.split_names(",".join(requested))
        named = set(requested)  # `offline` expands to image and video statistics: keep the kinds given
        for name in image_names:
            if name in named and not has_images:
                raise InputError(f"--scorer {name} scores images, but no image was given")
        for name in video_names:
            if name in named and not has_videos:
                raise InputError(f"--scorer {name} scores videos, but no video was given")
        image_names = image_names if has_images else []
        video_names = video_names if has_videos else []
    else:
        image_names = scorer_sets.default_image_scorers(settings) if has_images else []
        video_names = list(registry.names_of("video", "standard")) if has_videos else []

    names = [*image_names, *video_names]
    if explicit:
        preflight.preflight(names, settings)
        skipped: dict[str, ScorerUnavailable] = {}
    else:
        skipped = preflight.problems(names, settings)
        image_names = [n for n in image_names if n not in skipped]
        video_names = [n for n in video_names if n not in skipped]
        for name, exc in skipped.items():
            terminal.note(f"fbloop: skipping {name}: {_reason(name, exc)}")
        # the default is what can run here: when no real scorer can, the offline statistics (which always can)
        if has_images and not image_names:
            image_names = list(registry.OFFLINE_IMAGE_SET)
        if has_videos and not video_names:
            video_names = list(registry.OFFLINE_VIDEO_SET)
        if (
            skipped
            and (set(image_names) <= set(registry.OFFLINE_IMAGE_SET))
            and (set(video_names) <= set(registry.OFFLINE_VIDEO_SET))
        ):
            terminal.note("fbloop: no real scorer can run here; scoring with offline statistics")

    if any("transformers" in registry.scorer_class(n).needs_modules for n in image_names + video_names):
        _quiet_transformers()
    err = terminal.err
    status = err.status("scoring ...") if err.is_terminal else contextlib.nullcontext()
    with contextlib.redirect_stdout(sys.stderr), status:

        def on_scorer(name: str) -> None:
            if err.is_terminal and hasattr(status, "update"):
                status.update(f"scoring: {name}")

        report = runner.score_files(files, prompt, image_names, video_names, settings, on_scorer=on_scorer)
    report.errors = {**skipped, **report.errors}

    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        _render(terminal, report)
    failed = {n: e for n, e in report.errors.items() if n not in skipped}
    if failed:
        name, exc = next(iter(failed.items()))
        raise ScorerUnavailable(exc.message, hint=exc.hint)


def _reason(name: str, exc: ScorerUnavailable) -> str:
    line = exc.line()
    return line[len(name) + 2 :] if line.startswith(f"{name}: ") else line


def _quiet_transformers() -> None:
    """No "Loading weights" progress bars from transformers on stderr (the spinner says what runs)."""
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()


def _render(terminal: Terminal, report: Report) -> None:
    from rich.table import Table
    from rich.text import Text

    from feedback_cli.ui.console import print_line, print_table

    console = terminal.out
    print_line(console, f"Scores for: {report.prompt}")  # the prompt whole, not a wrapped table title
    table = Table(title_justify="left")
    table.add_column("file", no_wrap=True)
    table.add_column("scorer / dimension")
    table.add_column("raw", justify="right")
    table.add_column("0-100", justify="right")
    table.add_column("model", no_wrap=True)
    for f in report.files:
        first = True
        for key, s in f.scores.items():
            table.add_row(
                Text(f.path.name if first else ""),
                key,
                f"{s.raw:.4g}",
                f"{s.normalized:.1f}",
                Text(s.model_id),
            )
            first = False
        if not f.scores:
            table.add_row(Text(f.path.name), "-", "-", "-", "-")
    print_table(console, table)
    notes = {(key, note) for f in report.files for key, s in f.scores.items() for note in s.notes}
    for key, note in sorted(notes):
        console.print(Text.assemble((key, "cyan"), f": {note}"))
    for name, exc in report.errors.items():
        console.print(Text.assemble((name, "yellow"), f" not scored: {_reason(name, exc)}"))
    for name, calls in report.paid.items():  # paid to the API, though no run keeps a ledger of it
        if calls.requests:
            models = ", ".join(sorted(calls.models))
            plural = "" if calls.requests == 1 else "s"
            estimated = f", {calls.estimated} of them at an estimate" if calls.estimated else ""
            console.print(
                Text.assemble(
                    (name, "cyan"), f": {calls.requests} paid request{plural} to {models}, ${calls.usd:.4f}{estimated}"
                )
            )
