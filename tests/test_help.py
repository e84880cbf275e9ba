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


# --- options: the environment variable behind each, shown in --help and as good as the flag (issue 12) -------


def _params(words: list[str]) -> list[Any]:
    command: Any = typer.main.get_command(app)
    for word in words:
        command = command.get_command(command.context_class(command), word)
    return list(command.params)


@pytest.mark.parametrize(
    ("words", "variables"),
    [
        (["run"], ["FBLOOP_BACKEND", "FBLOOP_SCORERS", "FBLOOP_MAX_COST", "FBLOOP_OUTPUT_DIR"]),
        (["stage"], ["FBLOOP_BACKEND", "FBLOOP_SCORERS", "FBLOOP_MAX_COST", "FBLOOP_OUTPUT_DIR"]),
        (["batch"], ["FBLOOP_BACKEND", "FBLOOP_SCORERS", "FBLOOP_MAX_COST"]),
        (["inspect"], ["FBLOOP_OUTPUT_DIR"]),
    ],
)
def test_help_shows_the_environment_variable_of_an_option(cli: Any, words: list[str], variables: list[str]) -> None:
    shown = " ".join(cli(*words, "--help").stdout.split())  # Click wraps the help text anywhere
    for variable in variables:
        assert f"[env var: {variable}]" in shown, (words, variable)


def test_every_option_variable_is_the_one_settings_reads() -> None:
    """No option names a variable Settings does not read (an option's variable and its setting cannot drift)."""
    from feedback_cli.commands.options import SETTING_ENVVARS
    from feedback_cli.config import Settings, env_name

    assert {field: env_name(field) for field in SETTING_ENVVARS} == SETTING_ENVVARS
    read = {env_name(field) for field in Settings.model_fields}
    named = {p.envvar for words in PATHS if words for p in _params(words) if getattr(p, "envvar", None)}
    assert named and named <= read, named - read


#: the options `fbloop stage` and `fbloop batch` take as `fbloop run` does
ROUNDS = ["max_rounds_image", "max_rounds_video", "target_image", "target_video", "patience"]
SHARED_WITH_RUN = {
    "stage": ["clips", "backend", "scorers", "seed", "verbose", "max_cost", *ROUNDS],
    "batch": [
        "workflow", "max_iterations_image", "max_iterations_video", "num_image_variations", "num_video_attempts",
        "threshold_image", "threshold_video", "storyboard", "clips", "backend", "scorers", *ROUNDS,
    ],
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(SHARED_WITH_RUN))
def test_run_stage_and_batch_share_one_definition_of_their_common_options(command: str) -> None:
    """`fbloop batch` (and `fbloop stage`) do not copy `fbloop run`'s options: the shared ones are the same
    flags, help, variable and default, and those defaults are RunOptions' own."""
    from feedback_cli.runstate.models import RunOptions

    run = {p.name: p for p in _params(["run"])}
    mine = {p.name: p for p in _params([command])}
    for name in SHARED_WITH_RUN[command]:
        ours, theirs = mine[name], run[name]
        assert (ours.opts, ours.secondary_opts, ours.help, ours.envvar, ours.default) == (
            theirs.opts,
            theirs.secondary_opts,
            theirs.help,
            theirs.envvar,
            theirs.default,
        ), name
        if name in RunOptions.model_fields and isinstance(theirs.default, int | float) and theirs.default is not False:
            assert theirs.default == RunOptions.model_fields[name].default, name


def _plan(cli: Any, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    import json

    result = cli("run", REPO / "examples" / "red_fox.txt", "--dry-run", "--json", *args, env=env)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_an_option_variable_does_what_its_flag_does(cli: Any) -> None:
    keys = {"OPENAI_API_KEY": "sk-test-" + "k" * 24, "REPLICATE_API_TOKEN": "r8_test" + "t" * 24}
    assert _plan(cli, env=keys)["backend"] == "cloud"  # keys set: auto picks the cloud
    by_flag = _plan(cli, "--backend", "offline", "--max-cost", "0.25", env=keys)
    by_variable = _plan(cli, env={**keys, "FBLOOP_BACKEND": "offline", "FBLOOP_MAX_COST": "0.25"})
    assert by_flag == by_variable
    assert by_variable["backend"] == "offline" and by_variable["max_cost_usd"] == 0.25
    # the flag still wins over the variable
    assert _plan(cli, "--max-cost", "0.5", env={"FBLOOP_MAX_COST": "0.25"})["max_cost_usd"] == 0.5


def test_the_output_dir_variable_is_where_the_run_goes_as_with_the_flag(cli: Any, tmp_path: Path) -> None:
    common = ["run", REPO / "examples" / "red_fox.txt", "--workflow", "prompt-only", "--seed", "1"]
    by_flag = cli(*common, "--output-dir", tmp_path / "flag")
    by_variable = cli(*common, env={"FBLOOP_OUTPUT_DIR": str(tmp_path / "variable")})
    assert by_flag.exit_code == 0 == by_variable.exit_code, by_flag.stderr + by_variable.stderr
    assert len(list((tmp_path / "flag").iterdir())) == 1 == len(list((tmp_path / "variable").iterdir()))
    listed = cli("inspect", "--json", env={"FBLOOP_OUTPUT_DIR": str(tmp_path / "variable")})
    assert listed.exit_code == 0 and len(__import__("json").loads(listed.stdout)) == 1, listed.stderr


@pytest.mark.parametrize(
    "words",
    [["stage", "image-prompt", "--prompt-file", str(REPO / "examples" / "red_fox.txt")], ["batch", "prompts.txt"]],
)
def test_a_bad_option_variable_is_the_settings_line_naming_it(cli: Any, words: list[str]) -> None:
    """Click reads the variable for the option; its line is still the one naming the variable."""
    result = cli(*words, env={"FBLOOP_BACKEND": "gpu"})
    assert result.exit_code == 2
    assert result.stderr == (
        "fbloop: error: FBLOOP_BACKEND: Input should be 'auto', 'offline' or 'cloud'; got 'gpu' from the environment\n"
    )


# --- one terminal object ------------------------------------------------------------------------------------


def test_commands_print_through_the_one_terminal_object() -> None:
    """No command builds its own console or writes to stderr itself: ui/terminal.py's Terminal does, so every
    line is cleaned of escape sequences and lands on the right stream."""
    import re

    banned = re.compile(r"Console\(|err_console|out_console|sys\.stderr\.write|err=True|error_line")
    for module in sorted((REPO / "src" / "feedback_cli" / "commands").glob("*.py")):
        for number, line in enumerate(module.read_text().splitlines(), start=1):
            assert not banned.search(line), f"{module.name}:{number}: {line.strip()}"


def test_one_table_of_exit_codes() -> None:
    from feedback_cli.errors import BudgetError, InputError, Interrupted, StorageError
    from feedback_cli.ui.terminal import exit_code
    from feedback_cli.workflow.orchestrator import RunStopped

    assert exit_code(InputError("x")) == 2 and exit_code(BudgetError("x")) == 1 and exit_code(StorageError("x")) == 1
    assert exit_code(Interrupted("x")) == 130 and exit_code(KeyboardInterrupt()) == 130
    assert exit_code(typer.Abort()) == 130
    assert exit_code(Interrupted("x"), 15) == 143 and exit_code(KeyboardInterrupt(), 1) == 129
    assert exit_code(RunStopped("stopped")) == 0 and exit_code(ValueError("x")) == 1
    assert exit_code(typer.BadParameter("x")) == 2
