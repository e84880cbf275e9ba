"""`fbloop models list` and `fbloop models download [SCORER...]`: the scorers' checkpoints (docs/scorers.md §I.6).

`list` shows every checkpoint each real scorer needs with these settings, its approximate size and whether it is
already here (Hugging Face cache, fbloop's weights folder, a local path). `download` fetches what is missing:
hub repos with `huggingface_hub.snapshot_download` (its progress bars, safetensors preferred over .bin), other
weight files from their published URL with a progress bar and a sha256 check. Nothing heavy is imported until a
command runs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from feedback_cli.errors import UsageError

if TYPE_CHECKING:
    from feedback_cli.config import Settings
    from feedback_cli.scoring.requirements import Requirement
    from feedback_cli.ui.terminal import Terminal


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(
        help="List and download the checkpoints the scorers need.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    models_app.command("list")(list_models)
    models_app.command("download")(download_models)
    models_app.command("providers")(list_providers)
    app.add_typer(models_app, name="models")


def _names(scorers: list[str] | None, *, optional: bool = True) -> list[str]:
    """The scorers named, or all with checkpoints (the optional ones, e.g. hpsv2, only if `optional`)."""
    from feedback_cli.scoring import registry

    with_checkpoints = registry.model_names("image") + registry.model_names("video")
    if not scorers:
        return [n for n in with_checkpoints if optional or registry.scorer_class(n).default_set != "optional"]
    names: list[str] = []
    for item in scorers:
        for name in (n.strip() for n in item.split(",")):
            if not name:
                continue
            if name not in with_checkpoints:
                if name in registry.targets():
                    raise UsageError(f"{name} is an offline statistic; it needs no checkpoint")
                known = ", ".join(with_checkpoints)
                raise UsageError(f"unknown scorer {name!r}; scorers with checkpoints: {known}")
            if name not in names:
                names.append(name)
    return names


def list_models(
    scorers: Annotated[list[str] | None, typer.Argument(help="Only these scorers (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")] = False,
) -> None:
    """Each checkpoint each scorer needs, its approximate size, and whether it is already here."""
    from feedback_cli.config import load_settings
    from feedback_cli.installation import extra_install_command, missing_scoring_modules
    from feedback_cli.scoring import requirements as reqs

    settings = load_settings()
    # without torch no model scorer runs, whatever is cached: the status says so, not "missing"
    no_torch = "torch" in missing_scoring_modules()
    rows: list[dict[str, Any]] = []
    for name in _names(scorers):
        needed = reqs.requirements(name, settings)
        if not needed:
            rows.append(
                {
                    "scorer": name,
                    "what": "nothing (pixel statistics)",
                    "setting": "",
                    "checkpoint": "",
                    "size": "-",
                    "available": True,
                    "status": "n/a",
                    "where": "",
                }
            )
        for req in needed:
            st = reqs.status(req, settings)
            state = "torch not installed" if no_torch and req.kind in _NEEDS_EXTRA else st.state
            rows.append(
                {
                    "scorer": name,
                    "kind": req.kind,
                    "what": req.label,
                    "setting": req.env_var,
                    "checkpoint": req.ref,
                    "size": reqs.human_size(req.approx_bytes),
                    "available": st.available,
                    "status": state,
                    "where": st.detail,
                }
            )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table
    from rich.text import Text

    from feedback_cli.ui.console import print_table
    from feedback_cli.ui.terminal import Terminal

    table = Table(title="Scorer checkpoints", title_justify="left")
    table.add_column("scorer", no_wrap=True)
    table.add_column("checkpoint", no_wrap=True)  # a hub id or a path, whole: stacked when too narrow
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for r in rows:
        style = "green" if r["available"] else "red"
        table.add_row(r["scorer"], Text(r["checkpoint"] or r["what"]), r["size"], Text(r["status"], style))
    settings_used = sorted({r["setting"] for r in rows if r["setting"]})
    console = Terminal().out
    print_table(console, table)
    console.print(Text("Choose a checkpoint (hub id or local path) with: " + ", ".join(settings_used)))
    if no_torch:
        console.print(
            Text(f"torch is not installed, so the model scorers cannot run: {extra_install_command()}"), soft_wrap=True
        )
    missing = sorted({r["scorer"] for r in rows if not r["available"] and r.get("kind") in _NEEDS_EXTRA})
    if missing:
        then = "Then fetch" if no_torch else "Fetch"
        console.print(Text(f"{then} what is missing: fbloop models download {' '.join(missing)}"), soft_wrap=True)


def list_providers(
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a table."),
) -> None:
    """The providers of agents and of images and videos: built-in and installed, and what configures each."""
    from dataclasses import asdict

    from feedback_cli.config import load_settings
    from feedback_cli.providers.registry import describe

    rows = describe(load_settings())
    if as_json:
        typer.echo(json.dumps([asdict(row) for row in rows], indent=2))
        return
    from rich.table import Table
    from rich.text import Text

    from feedback_cli.ui.console import print_table
    from feedback_cli.ui.terminal import Terminal

    table = Table(title="Providers", title_justify="left")
    for column in ("provider", "roles", "chosen for", "configured by", "status"):
        table.add_column(column, no_wrap=column != "status")
    for row in rows:
        if row.problem:
            status = Text(row.problem, "red")
        elif row.configured is None:
            status = Text("not configured", "red")
        else:
            status = Text(f"{row.configured} is set" if row.configured else "needs nothing", "green")
        table.add_row(row.name, ", ".join(row.roles), ", ".join(row.chosen_for), row.needs or "-", status)
    console = Terminal().out
    print_table(console, table)
    console.print(Text("Choose a provider per role with FBLOOP_AGENTS_PROVIDER and FBLOOP_MEDIA_PROVIDER"))


#: checkpoints fetched with (and run by) the scoring extra: hub repos need huggingface_hub, all need torch
_NEEDS_EXTRA = ("hf-model", "hf-processor", "url")


def download_models(
    scorers: Annotated[
        list[str] | None,
        typer.Argument(help="Scorers to fetch weights for (default: all but optional ones such as hpsv2)."),
    ] = None,
) -> None:
    """Download the checkpoints of the given scorers (default: all but the optional ones) into the local caches."""
    from feedback_cli.config import load_settings
    from feedback_cli.scoring import requirements as reqs
    from feedback_cli.scoring.weights import hub_offline
    from feedback_cli.ui.terminal import Terminal

    if hub_offline():
        raise UsageError("HF_HUB_OFFLINE=1 forbids downloads", hint="unset HF_HUB_OFFLINE for `fbloop models download`")
    settings = load_settings()
    names = _names(scorers, optional=False)
    _require_extra(names, settings)
    terminal = Terminal()
    seen: set[tuple[str, str]] = set()
    for name in names:
        for req in reqs.requirements(name, settings):
            key = (req.kind, req.ref)
            if key in seen:
                continue
            seen.add(key)
            st = reqs.status(req, settings)
            if st.available:
                terminal.note(f"{name}: {req.label} already here ({st.state}: {st.detail})")
                continue
            _download(terminal, name, req, settings)


def _require_extra(names: list[str], settings: Settings) -> None:
    """A download needs the scoring extra (huggingface_hub fetches, torch runs what is fetched): without it,
    one line with the command that installs it for this installation (pipx, uv or pip), before anything."""
    from feedback_cli.installation import extra_install_command, missing_scoring_modules
    from feedback_cli.scoring import requirements as reqs

    missing = missing_scoring_modules()
    if not missing:
        return
    needing = [n for n in names if any(r.kind in _NEEDS_EXTRA for r in reqs.requirements(n, settings))]
    if needing:
        raise UsageError(
            f"downloading the checkpoints of {', '.join(needing)} needs the scoring extra "
            f"({', '.join(missing)} not installed); install it with: {extra_install_command()}"
        )


def _download(terminal: Terminal, name: str, req: Requirement, settings: Settings) -> None:
    from feedback_cli.errors import ScorerUnavailable
    from feedback_cli.scoring import requirements as reqs
    from feedback_cli.scoring import weights

    if req.kind in ("hf-model", "hf-processor"):
        if reqs.looks_local(req.ref):
            raise UsageError(f"{name}: {req.env_var}={req.ref} is a local path that is not a complete checkpoint")
        terminal.note(f"{name}: downloading {req.ref} ({req.label}, {reqs.human_size(req.approx_bytes)})")
        _snapshot(req, name)
    elif req.kind == "url":
        assert req.url_file is not None
        if req.override:
            raise UsageError(f"{name}: {req.env_var}={req.ref} is not a file")
        dest = weights.default_path(req.url_file, settings)
        terminal.note(f"{name}: downloading {req.url_file.url}")
        _fetch_with_progress(terminal, req.url_file, dest, settings.request_timeout_s)
        terminal.note(f"{name}: saved {dest}")
    elif req.kind == "python":
        from feedback_cli.installation import package_install_command

        raise ScorerUnavailable(
            f"{name}: needs the {req.pip_name} package, not a download", hint=package_install_command(req.pip_name)
        )
    elif req.kind == "official":
        terminal.note(
            f"{name}: runs in VBench's own env, which downloads its checkpoints itself "
            "(set FBLOOP_VBENCH_PYTHON to that env's python)"
        )
    elif req.kind == "api":
        terminal.note(f"{name}: uses {req.label}; nothing to download")


def _snapshot(req: Requirement, name: str) -> None:
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    from feedback_cli.errors import ScorerUnavailable
    from feedback_cli.scoring.requirements import hf_cache_dir

    small = ["*.json", "*.txt", "*.model"]
    try:
        if req.kind == "hf-processor":
            patterns = small
        else:
            files = HfApi().list_repo_files(req.ref)
            if any(f.endswith(".safetensors") for f in files):
                patterns = [*small, "*.safetensors"]
            else:
                patterns = [*small, "pytorch_model*.bin"]
        snapshot_download(req.ref, allow_patterns=patterns, cache_dir=str(hf_cache_dir()))
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ScorerUnavailable(f"{name}: downloading {req.ref} failed: {exc}") from exc


def _fetch_with_progress(terminal: Terminal, spec: Any, dest: Any, timeout: float) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from feedback_cli.scoring import weights

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=terminal.err,
        transient=True,
    ) as progress:
        task = progress.add_task(spec.filename, total=spec.approx_bytes)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total or spec.approx_bytes)

        weights.fetch(spec, dest, timeout=timeout, progress=update)
