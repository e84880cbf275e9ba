"""`fbloop stage NAME`: one stage alone, from files, into `{output dir}/{stage}/{timestamp}/` with its own
trace (the equivalents of enhance_image_prompt.py, generate_images.py, create_storyboard.py,
enhance_video_prompt.py and generate_videos.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from feedback_cli.choices import Backend
from feedback_cli.commands import options as o
from feedback_cli.errors import InputError, UsageError
from feedback_cli.workflow.inputs import nonempty_path


def register(app: typer.Typer) -> None:
    app.command("stage", cls=StageCommand)(stage)


def _stage_names() -> list[str]:
    """The `fbloop stage` names, from the stage registry: loaded only when a stage is named or its help
    shown, so `fbloop --help` imports no stage."""
    from feedback_cli.stages.registry import command_names

    return command_names()


def _stage_of(value: str) -> str:
    """Parser of the NAME argument: a registered stage's command name."""
    if value in _stage_names():
        return value
    from pydantic_core import PydanticCustomError  # Typer validates arguments with pydantic: no "Value error, "

    choices = ", ".join(repr(n) for n in _stage_names())
    raise PydanticCustomError(
        "stage_name", "{value} is not one of {choices}.", {"value": repr(value), "choices": choices}
    )


def _complete_stage(incomplete: str) -> list[str]:
    return [n for n in _stage_names() if n.startswith(incomplete)]


class StageCommand(TyperCommand):
    """`fbloop stage --help` lists the registered stages, read when the help is shown."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        names = _stage_names()
        for param in self.params:
            if param.name == "name":
                param.help = " | ".join(names)
                # shown as a choice, like an enum's values: `name <image-prompt|...>`
                param.display_type_rich = lambda ctx, shown=f"<{'|'.join(names)}>": shown  # type: ignore[method-assign]
        super().format_help(ctx, formatter)


def stage(
    name: Annotated[
        str,
        typer.Argument(
            help="a stage (fbloop stage --help lists them)",
            parser=_stage_of,
            autocompletion=_complete_stage,
            show_default=False,
        ),
    ],
    clip_videos: Annotated[
        list[Path] | None,
        typer.Argument(
            help="assemble: the per-clip videos to join, in order, or a storyboard run folder (its picks).",
            show_default=False,
        ),
    ] = None,
    prompt_file: Annotated[
        Path | None,
        typer.Option("--prompt-file", "-p", help="Prompt text file (or image, for image-prompt)."),
    ] = None,
    image: Annotated[
        Path | None,
        typer.Option("--image", help="Base image (storyboard) or start frame (video-generation)."),
    ] = None,
    storyboard_file: Annotated[
        Path | None,
        typer.Option("--storyboard", help="storyboard.json from a storyboard stage (video-prompt)."),
    ] = None,
    motion_prompts: Annotated[
        Path | None,
        typer.Option("--motion-prompts", help="storyboard_enhanced_motion_prompts.json (video-generation)."),
    ] = None,
    count: Annotated[
        int | None, typer.Option("--num", "-n", help="Images (default 8) or videos per clip (default 3).")
    ] = None,
    max_iterations: Annotated[int, typer.Option("--max-iterations", help="Prompt loop iterations.")] = o.ITERATIONS,
    threshold: Annotated[float, typer.Option("--threshold", help="Prompt score to stop at (0-100).")] = o.THRESHOLD,
    clips: o.ClipsOption = o.CLIPS,
    backend: o.BackendOption = None,
    scorers: o.ScorersOption = None,
    seed: o.SeedOption = None,
    output_dir: Annotated[
        Path | None,
        o.output_dir_option(
            "Root; the run goes in DIR/{stage}/{timestamp}/ [default: output/feedback_loops/].",
            parser=nonempty_path,
        ),
    ] = None,
    verbose: o.VerboseOption = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document on stdout at the end: the run's summary.")
    ] = False,
    max_cost: o.MaxCostOption = None,
    max_rounds_image: o.MaxRoundsImageOption = o.ROUNDS_IMAGE,
    max_rounds_video: o.MaxRoundsVideoOption = o.ROUNDS_VIDEO,
    target_image: o.TargetImageOption = o.TARGET,
    target_video: o.TargetVideoOption = o.TARGET,
    patience: o.PatienceOption = o.PATIENCE,
) -> None:
    """Run one stage on its own from files."""
    from feedback_cli.stages.registry import by_command_name

    chosen_stage = by_command_name(name)
    assert chosen_stage is not None  # the argument's parser accepts registered stages only
    declared = chosen_stage.inputs
    if declared.command is not None:
        import importlib

        given = [
            flag
            for flag, value in (
                ("--prompt-file", prompt_file),
                ("--image", image),
                ("--storyboard", storyboard_file),
                ("--motion-prompts", motion_prompts),
                ("--num", count),
                ("--max-cost", max_cost),
            )
            if value is not None
        ]
        if given:
            raise UsageError(f"fbloop stage {name} takes {declared.files}, not {given[0]}")
        module, _, function = declared.command.partition(":")
        command = getattr(importlib.import_module(module), function)
        raise typer.Exit(command(clip_videos or [], output_dir=output_dir, verbose=verbose, as_json=as_json))
    if clip_videos:
        raise UsageError(f"fbloop stage {name} takes no file arguments (got {clip_videos[0]}); see --help")
    from feedback_cli.config import load_settings
    from feedback_cli.providers.registry import resolve_backend
    from feedback_cli.ui.session import drive
    from feedback_cli.workflow.api import prepare_run
    from feedback_cli.workflow.bounds import ROUNDS_OPTIONS, RUN_FLAGS, build_options, clip_count_problem
    from feedback_cli.workflow.inputs import read_prompt, validate_clips, validate_image

    # `--num` is the image count of image-generation and the videos per clip of video-generation: each is
    # held to the bound `fbloop run` has for it (64 images, 16 videos per clip)
    counted = declared.count_option
    flags = {
        "max_iterations_image": "--max-iterations",
        "max_iterations_video": "--max-iterations",
        "threshold_image": "--threshold",
        "threshold_video": "--threshold",
        "clips": "--clips",
        "max_cost": "--max-cost",
        **{k: v for k, v in RUN_FLAGS.items() if k in ROUNDS_OPTIONS},
        **({counted: "--num"} if counted else {}),
    }
    numbers = {
        "max_iterations_image": max_iterations,
        "max_iterations_video": max_iterations,
        "threshold_image": threshold,
        "threshold_video": threshold,
        "clips": clips,
        "max_cost": max_cost,
        "max_rounds_image": max_rounds_image,
        "max_rounds_video": max_rounds_video,
        "target_image": target_image,
        "target_video": target_video,
        "patience": patience,
        **({counted: count} if counted and count is not None else {}),
    }
    build_options(flags, **numbers)  # every number checked before anything is read or created
    settings = load_settings(scorers=scorers, backend=backend.value if backend else None, max_cost=max_cost)
    stage_key = chosen_stage.name
    text, prompt_image = "", None
    if prompt_file is not None:
        text, prompt_image = read_prompt(prompt_file)
    given_flags = {"--prompt-file": prompt_file, "--image": image, "--storyboard": storyboard_file}
    given_flags["--motion-prompts"] = motion_prompts
    if declared.needs and all(given_flags[flag] is None for flag in declared.needs):
        hint = f" {declared.needs_hint}" if declared.needs_hint else ""
        raise UsageError(f"fbloop stage {name} needs {' or '.join(declared.needs)}{hint}")
    if declared.text_prompt_only and prompt_image is not None:
        raise InputError(f"{name} needs a text prompt file, not an image")
    if image is not None:
        validate_image(image, "--image")
    # the JSON files a stage may start from: a storyboard (its clips) and motion prompts (each clip's prompt)
    clip_files = (("--storyboard", storyboard_file), ("--motion-prompts", motion_prompts))
    given_json = {flag: _read_json(path, flag) for flag, path in clip_files if path is not None}
    for flag, path in clip_files:
        # a file's clips are held to the --clips bound: N clips make N x --num videos
        if flag in given_json and (
            too_many := clip_count_problem(len(given_json[flag]["clips"]), f"the number of clips in {flag} {path}")
        ):
            raise InputError(too_many)
    # every clip and frame is checked here, before the run folder exists: bad input writes nothing
    given_clips = {
        flag: validate_clips(given_json[flag], path, flag, needs_motion_prompt=flag == "--motion-prompts")
        for flag, path in clip_files
        if path is not None
    }
    from feedback_cli.commands.common import random_seed
    from feedback_cli.runstate.models import RunOptions
    from feedback_cli.stages.registry import roles_for

    # each provider role on its own; only the roles this stage uses need a key
    # (with this stage's own numbers: more than one round revises with the agents; bounds are checked below)
    asked = RunOptions.model_construct(**{k: v for k, v in numbers.items() if k in RunOptions.model_fields})
    choice = resolve_backend(settings.backend, settings, roles_for((stage_key,), asked))
    chosen, reason = choice.backend, choice.reason
    options = build_options(
        {**flags, "max_cost": "FBLOOP_MAX_COST"},  # the flag passed above: a bad cap here is the variable's
        **{**numbers, "max_cost": settings.max_cost},  # the flag, else FBLOOP_MAX_COST
        **declared.options,
        backend=Backend(chosen),
        scorers=settings.scorers or "",
        seed=seed if seed is not None else random_seed(),
        verbose=verbose,
        prompt_file=str(prompt_file) if prompt_file else None,
        input_image=str(image) if image else None,
    )

    def prepare(folder: Any, state: Any) -> None:
        if text and declared.prompt_given_as is not None:
            state.given[declared.prompt_given_as] = text
        if "--storyboard" in given_json:
            story_prompt = given_json["--storyboard"].get("prompt")
            if not text and isinstance(story_prompt, str) and story_prompt:
                state.given["final_prompt"] = story_prompt
                state.source_prompt = story_prompt
            state.given["clips"] = _copy_clips(folder, state, given_clips["--storyboard"])
        if "--motion-prompts" in given_json:
            state.given["clip_prompts"] = _copy_clips(folder, state, given_clips["--motion-prompts"])

    prepared = prepare_run(
        options,
        settings,
        output_dir=(output_dir or settings.output_dir) / stage_key,
        runs_root=output_dir or settings.output_dir,  # a run id names one run, workflow or stage
        source_prompt=text,
        prompt_image=prompt_image,
        input_image=image,
        stages=(stage_key,),
        kind="stage",
        prepare=prepare,
        providers=choice.providers,
    )
    raise typer.Exit(drive(prepared, verbose=verbose, announce=reason, as_json=as_json))


def _read_json(path: Path, flag: str) -> dict[str, Any]:
    from feedback_cli.workflow.inputs import read_json_input

    data = read_json_input(path, flag)
    if not isinstance(data, dict) or not isinstance(data.get("clips"), list) or not data["clips"]:
        raise InputError(f"{flag} {path} has no clips list")
    return data


def _copy_clips(folder: Any, state: Any, clips: list[Any]) -> list[dict[str, Any]]:
    """Copy each (already validated) clip's frames into the new run's input/ and point the entries at them."""
    from feedback_cli.workflow.orchestrator import copy_input

    entries = []
    for clip in clips:
        entry = dict(clip.entry)
        for end, frame in clip.frames.items():
            artifact = copy_input(folder, frame, f"clip_{clip.number:02d}_{end}", "image")
            state.inputs.append(artifact)
            entry[f"{end}_frame"] = artifact.path
        entries.append(entry)
    return entries
