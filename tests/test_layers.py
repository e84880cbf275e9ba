"""The import layers (issue 12): pyproject's import-linter contracts hold for the package, and they catch an
upward import, an engine module importing the terminal UI, and one command importing another."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (dev extra)")


def lint_imports(src: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache"],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_package_keeps_its_layers() -> None:
    result = lint_imports(REPO / "src", REPO / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout
    assert "Layers:" in result.stdout and "terminal UI" in result.stdout and "Commands do not import" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # a lower layer reaching up: the agents' schemas importing the stage context
        ("agents/schemas.py", "import feedback_cli.stages.base", "Layers:"),
        # the run state importing the engine above it
        ("runstate/models.py", "import feedback_cli.workflow.plan", "Layers:"),
        # an engine module importing the UI library
        ("stages/picks.py", "import rich", "terminal UI"),
        # one command importing another's helpers
        ("commands/batch.py", "import feedback_cli.commands.run", "Commands do not import"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, module: str, line: str, broken: str) -> None:
    shutil.copytree(REPO / "src" / "feedback_cli", tmp_path / "src" / "feedback_cli")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "feedback_cli" / module
    target.write_text(target.read_text() + f"\n{line}  # added by the test\n")
    result = lint_imports(tmp_path / "src", tmp_path / "pyproject.toml")
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout, result.stdout
    assert broken in result.stdout.split("Broken contracts")[-1], result.stdout
