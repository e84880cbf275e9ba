"""A fresh venv with one third-party plugin package pip-installed, so its entry points are real metadata, and
fbloop run from it: the plugin route of scorers, providers and stages is tested the way a user installs a plugin.

fbloop and its dependencies come from this interpreter's site-packages (a `.pth` file), this checkout's src
first, so nothing is downloaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def install_plugin(root: Path, package: Path) -> Path:
    """Make a venv under `root` with `package` (a folder with a pyproject.toml) installed; its python."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shared = sysconfig.get_paths()["purelib"]
    Path(site, "_fbloop_test_shared.pth").write_text(f"import site; site.addsitedir({shared!r})\n")
    copy = root / "package"
    shutil.copytree(package, copy)
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", str(copy)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    return python


def run_fbloop(
    python: Path, *args: object, cwd: Path, drop: tuple[str, ...] = ("FBLOOP_",), **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -m feedback_cli ARGS` in that venv, with this checkout's src and without variables in `drop`."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    environ.update(PYTHONPATH=str(REPO / "src"), **env)
    return subprocess.run(
        [python, "-m", "feedback_cli", *map(str, args)], capture_output=True, text=True, env=environ, cwd=cwd
    )
