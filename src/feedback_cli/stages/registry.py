"""The one registry of stages. A stage module registers its class with `@register`; built-in stage
modules are listed once here. Adding a stage: write its module, add it to BUILTIN_MODULES."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from feedback_cli.stages.base import Stage

if TYPE_CHECKING:
    from feedback_cli.workflow.models import RunOptions

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


def roles_for(names: tuple[str, ...] | list[str], options: RunOptions) -> tuple[str, ...]:
    """The provider roles the stages `names` use with `options`, in the registry's order of roles."""
    from feedback_cli.providers.registry import ROLES

    used = {role for name in names for role in get(name).roles(options)}
    return tuple(role for role in ROLES if role in used)
