"""Finding runs under an output folder: workflow runs are its sub-folders, `fbloop stage` runs are one level
down in `DIR/{stage}/`; a run is named by its folder, its checkpoint, or its id (the folder's name)."""

from __future__ import annotations

from pathlib import Path

from feedback_cli.errors import CheckpointError
from feedback_cli.workflow.checkpoint import CHECKPOINT_NAME


def _stage_names() -> set[str]:
    from feedback_cli.stages.registry import load_builtin

    return set(load_builtin())


def _is_stage_group(folder: Path, stage_names: set[str]) -> bool:
    """`DIR/{stage}/` holding `fbloop stage` runs (not itself a run, which has a checkpoint)."""
    return folder.name in stage_names and not (folder / CHECKPOINT_NAME).exists()


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def run_dirs(root: Path) -> list[Path]:
    """Every folder under `root` that is (or claims to be) a run: workflow runs and stage runs."""
    if not root.is_dir():
        return []
    names = _stage_names()
    out: list[Path] = []
    for folder in _subdirs(root):
        if _is_stage_group(folder, names):
            out.extend(_subdirs(folder))
        else:
            out.append(folder)
    return out


def find_run(target: Path, root: Path) -> Path:
    """A path that exists is taken as it is; otherwise `target` is a run id looked up under `root`
    (workflow and stage runs). One CheckpointError line when it is neither."""
    if target.exists() or target.is_symlink():
        return target
    if len(target.parts) == 1:
        matches = [d for d in run_dirs(root) if d.name == target.name]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            found = ", ".join(str(m) for m in matches)
            raise CheckpointError(f"run id {target} is ambiguous under {root}: {found}; give the folder")
    raise CheckpointError(
        f"{target} does not exist (not a run folder, and no run with that id under {root})",
        hint="the output folder is --output-dir or FBLOOP_OUTPUT_DIR",
    )
