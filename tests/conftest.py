"""Shared fixtures: an isolated environment per test, and a CLI runner that reads like the README."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from feedback_cli.app import app

pytest_plugins = ["tests.fakes.fixtures", "tests.scoring_models"]

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "red_fox.txt"

#: small media keep the offline suite fast; the code paths are the same as at full size
FAST_ENV = {"FBLOOP_OFFLINE_IMAGE_SIZE": "128", "FBLOOP_OFFLINE_VIDEO_SECONDS": "0.5"}


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No keys, no FBLOOP_* from the developer's shell, no .env from the repo, no CI flag."""
    for name in list(os.environ):
        if name.startswith("FBLOOP_") or name in (
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "REPLICATE_API_TOKEN",
            "REPLICATE_BASE_URL",
            "CI",
        ):
            monkeypatch.delenv(name, raising=False)
    for name, value in FAST_ENV.items():
        monkeypatch.setenv(name, value)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    yield


class Result:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr


@pytest.fixture
def cli() -> Any:
    """`cli("run", "prompt.txt", ...)` -> Result with exit_code, stdout, stderr."""
    runner = CliRunner()

    def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
        result = runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)

    return invoke


def only_run(output_dir: Path) -> Path:
    runs = [p for p in output_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
