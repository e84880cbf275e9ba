"""Options the commands share, defined once: `fbloop run`, `fbloop stage` and `fbloop batch` take the same run
options (`batch` used to copy `run`'s list), declared here as `Annotated` aliases with their defaults.

An option that stands for a setting (config.py's `Settings` reads FBLOOP_BACKEND, FBLOOP_SCORERS,
FBLOOP_MAX_COST and FBLOOP_OUTPUT_DIR) names that variable, so `--help` shows `[env var: ...]` next to it and
setting the variable does what the flag does. The value keeps one reader, `Settings` (flag, then environment,
then `.env`, then the default): Click reads the variable to show and type-check it, and a value that came from
the environment is handed to the command as "not given" (`_left_to_settings`), so `Settings` reads it with its
own checks and its messages name the variable, not the flag (app.py gives a value Click cannot convert the same
line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from feedback_cli.choices import Backend, Workflow
from feedback_cli.workflow.inputs import nonempty_path

#: the settings an option stands for, and the variable `Settings` reads each from. config.py is not imported
#: here (pydantic would slow down `fbloop --help`); tests/test_help.py holds these equal to `config.env_name`.
SETTING_ENVVARS = {
    "backend": "FBLOOP_BACKEND",
    "scorers": "FBLOOP_SCORERS",
    "max_cost": "FBLOOP_MAX_COST",
    "output_dir": "FBLOOP_OUTPUT_DIR",
}

# the defaults of the run options, the same as RunOptions' own (a test holds them equal)
ITERATIONS = 3
IMAGES = 8
VIDEOS_PER_CLIP = 3
THRESHOLD = 85.0
CLIPS = 2
ROUNDS_IMAGE = 3
ROUNDS_VIDEO = 1
TARGET = 85.0
PATIENCE = 1


def _left_to_settings(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
    """A value read from the option's environment variable reaches the command as None: `Settings` reads the
    same variable itself (it also reads `.env`), with the checks and messages every setting has."""
    source = ctx.get_parameter_source(param.name or "")
    return None if source is not None and source.name == "ENVIRONMENT" else value


def setting_option(setting: str, *flags: str, help: str, **extra: Any) -> Any:
    """A `typer.Option` for the setting `setting`: shows and accepts the variable `Settings` reads it from."""
    return typer.Option(
        *flags, help=help, envvar=SETTING_ENVVARS[setting], show_envvar=True, callback=_left_to_settings, **extra
    )


def output_dir_option(help: str, **extra: Any) -> Any:
    """`--output-dir`: FBLOOP_OUTPUT_DIR (where runs go and are found); each command says what it puts there."""
    return setting_option("output_dir", "--output-dir", help=help, **extra)


# --- the run options of `fbloop run`, `fbloop stage` and `fbloop batch` ------------------------------------

WorkflowOption = Annotated[
    Workflow | None,
    typer.Option("--workflow", help="full | image-only | video-only | prompt-only [default: full]"),
]
MaxIterationsImageOption = Annotated[int, typer.Option("--max-iterations-image", help="Image prompt iterations.")]
MaxIterationsVideoOption = Annotated[int, typer.Option("--max-iterations-video", help="Video prompt iterations.")]
NumImageVariationsOption = Annotated[int, typer.Option("--num-image-variations", "-n", help="Images to generate.")]
NumVideoAttemptsOption = Annotated[int, typer.Option("--num-video-attempts", help="Videos to generate (per clip).")]
ThresholdImageOption = Annotated[
    float, typer.Option("--threshold-image", help="Image prompt score to stop at (0-100).")
]
ThresholdVideoOption = Annotated[
    float, typer.Option("--threshold-video", help="Video prompt score to stop at (0-100).")
]
StoryboardOption = Annotated[
    bool, typer.Option("--storyboard/--no-storyboard", help="Run stage 3: start/end frames per clip.")
]
ClipsOption = Annotated[int, typer.Option("--clips", help="Storyboard clips.")]
BackendOption = Annotated[
    Backend | None, setting_option("backend", "--backend", help="auto | offline | cloud [default: auto]")
]
ScorersOption = Annotated[
    str | None, setting_option("scorers", "--scorers", help="offline, or a comma list of scorer names.")
]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Base seed (default: random, recorded).")]
MaxCostOption = Annotated[
    float | None, setting_option("max_cost", "--max-cost", help="Stop before a call would pass this USD total.")
]
MaxRoundsImageOption = Annotated[
    int, typer.Option("--max-rounds-image", help="Image rounds (generate, check, revise).")
]
MaxRoundsVideoOption = Annotated[int, typer.Option("--max-rounds-video", help="Video rounds (1: no revision).")]
TargetImageOption = Annotated[float, typer.Option("--target-image", help="Overall image score that ends the rounds.")]
TargetVideoOption = Annotated[float, typer.Option("--target-video", help="Overall video score that ends the rounds.")]
PatienceOption = Annotated[int, typer.Option("--patience", help="Stop after this many rounds without a better pick.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show every item and score as it happens.")]
RunOutputDirOption = Annotated[
    Path | None,
    output_dir_option("Where run folders go [default: output/feedback_loops/].", parser=nonempty_path),
]
