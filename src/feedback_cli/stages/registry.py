"""The one registry of stages. A stage module registers its class with `@register`, which refuses a stage
that does not declare what the engine needs (its estimate, ...); built-in stage modules are listed once here.

Adding a stage: write its module (a `Stage` subclass declaring its facts, decorated with `@register`) and add
the module to BUILTIN_MODULES, the one registration line; from another package, the line is an entry point of
the group `fbloop.stages` (`caption = "my_package.caption:CaptionStage"`), loaded the first time the stages are
read (never by `fbloop --help`). Nothing else names it: the workflows, `--dry-run`, `fbloop stage`, the review
and the summary read its declarations."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from feedback_cli.errors import UsageError
from feedback_cli.plugins import PluginGroup, PluginImportError
from feedback_cli.stages.base import Stage

if TYPE_CHECKING:
    from feedback_cli.runstate.models import RunOptions

STAGES: dict[str, type[Stage]] = {}

BUILTIN_MODULES = (
    "feedback_cli.stages.image_prompt",
    "feedback_cli.stages.image_generation",
    "feedback_cli.stages.storyboard",
    "feedback_cli.stages.video_prompt",
    "feedback_cli.stages.video_generation",
    "feedback_cli.stages.assemble",
)


class StageDeclarationError(TypeError):
    """A stage class that cannot be registered: it leaves out a fact the engine needs."""


def register(cls: type[Stage]) -> type[Stage]:
    missing = cls.undeclared()
    if missing:
        # loud, at import: a stage without an estimate would otherwise price at $0 in every dry run
        raise StageDeclarationError(f"stage {cls.__name__} does not declare {', '.join(missing)}")
    taken = {other.command_name(): other for other in STAGES.values() if other.name != cls.name}
    if cls.command_name() in taken:
        raise StageDeclarationError(
            f"stage {cls.name}: `fbloop stage {cls.command_name()}` is already stage {taken[cls.command_name()].name}"
        )
    STAGES[cls.name] = cls
    return cls


ENTRY_POINT_GROUP = "fbloop.stages"
#: third-party stages: entry points name -> "module:Class" (the built-ins are the modules above)
PLUGINS = PluginGroup(ENTRY_POINT_GROUP, {})


def load_builtin() -> dict[str, type[Stage]]:
    """Every stage: the built-in modules, then the installed stage plugins."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for name in PLUGINS.targets():
        if name not in STAGES:
            _load_plugin(name)
    return STAGES


def _load_plugin(name: str) -> None:
    """Import an installed stage; one line naming it when it cannot be used (a broken stage must not change
    a workflow silently)."""
    target = PLUGINS.targets()[name]
    try:
        cls = PLUGINS.load(name)
        if not (isinstance(cls, type) and issubclass(cls, Stage)):
            raise StageDeclarationError(f"{target} is not a Stage subclass")
        if cls.name != name:
            raise StageDeclarationError(f"{target} declares the name {cls.name!r}")
        if STAGES.get(name) is not cls:
            register(cls)  # a class without `@register` is registered (and checked) here
    except (PluginImportError, StageDeclarationError) as exc:
        message = exc.message if isinstance(exc, PluginImportError) else str(exc)
        raise UsageError(
            f"stage plugin {name!r}: {message}", hint=f"fix or uninstall the package that provides {target}"
        ) from None


def get(name: str) -> type[Stage]:
    load_builtin()
    return STAGES[name]


def ordered() -> list[type[Stage]]:
    return sorted(load_builtin().values(), key=lambda cls: (cls.order(), cls.number))  # then in order of registration


def for_workflow(workflow: str) -> tuple[str, ...]:
    """The stages a workflow (its `Workflow` value) runs, in order: those that declare it."""
    return tuple(cls.name for cls in ordered() if workflow in cls.workflows)


def by_command_name(name: str) -> type[Stage] | None:
    """The stage `fbloop stage NAME` names, or None."""
    return next((cls for cls in ordered() if cls.command_name() == name), None)


def command_names() -> list[str]:
    return [cls.command_name() for cls in ordered()]


def roles_for(names: tuple[str, ...] | list[str], options: RunOptions) -> tuple[str, ...]:
    """The provider roles the stages `names` use with `options`, in the registry's order of roles."""
    from feedback_cli.providers.registry import ROLES

    used = {role for name in names for role in get(name).roles(options)}
    return tuple(role for role in ROLES if role in used)
