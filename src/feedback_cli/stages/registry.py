"""The one registry of stages. A stage module registers its class with `@register`; built-in stage
modules are listed once here. Adding a stage: write its module, add it to BUILTIN_MODULES."""

from __future__ import annotations

import importlib

from feedback_cli.stages.base import Stage

STAGES: dict[str, type[Stage]] = {}

BUILTIN_MODULES = (
    "feedback_cli.stages.image_prompt",
    "feedback_cli.stages.image_generation",
    "feedback_cli.stages.storyboard",
    "feedback_cli.stages.video_prompt",
    "feedback_cli.stages.video_generation",
    "feedback_cli.stages.assemble",
)


def register(cls: type[Stage]) -> type[Stage]:
    STAGES[cls.name] = cls
    return cls


def load_builtin() -> dict[str, type[Stage]]:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return STAGES


def get(name: str) -> type[Stage]:
    load_builtin()
    return STAGES[name]


def ordered() -> list[type[Stage]]:
    return sorted(load_builtin().values(), key=lambda cls: cls.number)
