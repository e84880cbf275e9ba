"""`-h` is `--help` for the app and every command; shell completion is on; usage errors name the
program once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from feedback_cli.app import app

REPO = Path(__file__).resolve().parents[1]


def command_paths() -> list[list[str]]:
    """Every command and subcommand of the app, as the words that name it."""
    root = typer.main.get_command(app)
    paths: list[list[str]] = [[]]

    def walk(command: Any, prefix: list[str]) -> None:
        # Typer may vendor its own Click: go by what a group can do, not by Click's class
        if hasattr(command, "list_commands"):
            ctx = command.context_class(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                paths.append([*prefix, name])
                walk(sub, [*prefix, name])

    walk(root, [])
    return paths


PATHS = command_paths()


def test_every_command_is_covered() -> None:
    names = {" ".join(p) for p in PATHS}
    assert {"", "run", "resume", "stage", "inspect", "score", "models", "models list", "models download"} <= names


@pytest.mark.parametrize("words", PATHS, ids=[" ".join(p) or "fbloop" for p in PATHS])
def test_dash_h_is_help(cli: Any, words: list[str]) -> None:
    short = cli(*words, "-h")
    long = cli(*words, "--help")
    assert short.exit_code == 0 == long.exit_code, short.stderr
    assert short.stdout == long.stdout and short.stdout.startswith("Usage: fbloop")
    assert "-h, --help" in short.stdout
    assert short.stderr == ""


def test_shell_completion_is_offered_and_works(cli: Any) -> None:
    help_text = cli("--help").stdout
    assert "--install-completion" in help_text and "--show-completion" in help_text
    # the shell is named, not detected: detection walks the process tree, which differs between a terminal,
    # CI and a test runner started by another program (Typer's own switch for this)
    env = {
        "PYTHONPATH": f"{REPO / 'src'}",
        "PATH": "/usr/bin:/bin",
        "SHELL": "/bin/bash",
        "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1",
    }
    shown = subprocess.run(
        [sys.executable, "-m", "feedback_cli", "--show-completion", "bash"], capture_output=True, text=True, env=env
    )
    assert shown.returncode == 0 and "_FBLOOP_COMPLETE=complete_bash" in shown.stdout, shown.stderr
    completed = subprocess.run(
        [sys.executable, "-m", "feedback_cli"],
        capture_output=True,
        text=True,
        env={**env, "_FBLOOP_COMPLETE": "complete_bash", "COMP_WORDS": "fbloop st", "COMP_CWORD": "1"},
    )
    assert completed.returncode == 0 and completed.stdout.split() == ["stage"], completed


@pytest.mark.parametrize(
    ("words", "line"),
    [
        (["-x"], "fbloop: error: No such option: -x"),
        (["run", "-x"], "fbloop: error: run: No such option: -x"),
        (["models", "list", "--nope"], "fbloop: error: models list: No such option: --nope"),
    ],
)
def test_unknown_option_names_the_program_once(cli: Any, words: list[str], line: str) -> None:
    r = cli(*words)
    assert r.exit_code == 2 and r.stderr == line + "\n", r.stderr
