"""How fbloop was installed, so a missing extra is named with the command that installs it here: `pipx inject`
under pipx, `uv tool install` under uv's tools, `pip install` otherwise. Imports nothing heavy."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

#: the packages of the `scoring` extra (pyproject.toml), when the installed metadata cannot be read
SCORING_PACKAGES: tuple[str, ...] = ("torch", "torchvision", "transformers", "huggingface_hub", "safetensors")
#: what the model scorers import, as module names
SCORING_MODULES: tuple[str, ...] = ("torch", "torchvision", "transformers", "huggingface_hub", "safetensors")


def installer(prefix: str | Path | None = None) -> str:
    """`pipx`, `uv` or `pip`: what made the environment fbloop runs in (sys.prefix)."""
    root = Path(prefix if prefix is not None else sys.prefix)
    if (root / "pipx_metadata.json").is_file():  # pipx writes it into every venv it makes
        return "pipx"
    if (root / "uv-receipt.toml").is_file():  # so does `uv tool install`
        return "uv"
    return "pip"


def _extra_packages(extra: str) -> list[str]:
    """The requirement names of fbloop's `extra`, from the installed metadata."""
    from importlib import metadata

    try:
        requires = metadata.requires("fbloop") or []
    except metadata.PackageNotFoundError:
        return []
    names = []
    for requirement in requires:
        if re.search(rf"""extra\s*==\s*["']{re.escape(extra)}["']""", requirement):
            match = re.match(r"[A-Za-z0-9_.-]+", requirement)
            if match:
                names.append(match.group(0))
    return names


def extra_install_command(extra: str = "scoring", prefix: str | Path | None = None) -> str:
    """The one command that adds `extra` to this installation of fbloop."""
    kind = installer(prefix)
    if kind == "pipx":
        packages = _extra_packages(extra) or list(SCORING_PACKAGES)
        return f"pipx inject fbloop {' '.join(packages)}"
    if kind == "uv":
        return f"uv tool install --reinstall 'fbloop[{extra}]'"
    return f"pip install 'fbloop[{extra}]'"


def package_install_command(package: str, prefix: str | Path | None = None) -> str:
    """The one command that adds `package` to the environment fbloop runs in."""
    kind = installer(prefix)
    if kind == "pipx":
        return f"pipx inject fbloop {package}"
    if kind == "uv":
        return f"uv tool install --reinstall fbloop --with {package}"
    return f"pip install {package}"


def missing_scoring_modules() -> list[str]:
    """The modules of the scoring extra that are not importable here."""
    return [name for name in SCORING_MODULES if importlib.util.find_spec(name) is None]
