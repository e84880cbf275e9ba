"""Where providers come from: one route for the built-ins and for third parties, loaded only when asked for.

A provider (`providers/provider.py`) is registered by name as an entry point `"module:Class"` of the group
`fbloop.providers`. A third-party package declares it in its own pyproject.toml:

    [project.entry-points."fbloop.providers"]
    acme = "acme_fbloop.provider:AcmeProvider"

The built-ins are the same kind of entry point, listed in `BUILTIN_PROVIDERS` below (one line each) so that a
source checkout works without re-installing fbloop's metadata. Nothing is imported until a name is asked for.
A third-party name that clashes with a built-in is ignored; the built-in wins.

Each role (agents, media) is chosen on its own (`resolve_backend`): `--backend offline` gives every role the
`offline` provider; `auto` and `cloud` give a role the provider its setting names (`FBLOOP_AGENTS_PROVIDER`,
default openai; `FBLOOP_MEDIA_PROVIDER`, default replicate), read from what that provider declares.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from feedback_cli.config import PROVIDER_ENTRY_POINT_GROUP, Settings, add_provider_options, env_name
from feedback_cli.errors import UsageError
from feedback_cli.plugins import PluginGroup, PluginImportError

if TYPE_CHECKING:
    from feedback_cli.providers.base import Agents, Media
    from feedback_cli.providers.provider import Provider, Role

ENTRY_POINT_GROUP = PROVIDER_ENTRY_POINT_GROUP

#: the built-in providers, name -> "module:Class"
BUILTIN_PROVIDERS: dict[str, str] = {
    "offline": "feedback_cli.providers.builtin:OfflineProvider",
    "openai": "feedback_cli.providers.builtin:OpenAIProvider",
    "replicate": "feedback_cli.providers.builtin:ReplicateProvider",
}
#: what `--backend offline` (and `auto` without a configured provider) gives a role
OFFLINE = "offline"

#: the roles a run's stages use
ROLES: tuple[Role, ...] = ("agents", "media")
_ROLE_WORDS = {"agents": "agents", "media": "images and videos"}

#: the built-ins and the installed and registered third parties (`register`, e.g. by a test)
PLUGINS = PluginGroup(ENTRY_POINT_GROUP, BUILTIN_PROVIDERS, on_change=lambda: provider_class.cache_clear())
targets = PLUGINS.targets
register = PLUGINS.register
unregister = PLUGINS.unregister


@functools.cache
def provider_class(name: str) -> type[Provider]:
    """The class registered as `name`, imported now; one line (UsageError) for an unknown or broken one."""
    from feedback_cli.providers.provider import Provider

    target = targets().get(name)
    if target is None:
        raise UsageError(f"unknown provider {name!r}; known: {', '.join(sorted(targets()))}")
    try:
        cls = PLUGINS.load(name)
    except PluginImportError as exc:
        raise UsageError(f"provider {name!r}: {exc.message}") from None
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise UsageError(f"provider {name!r}: {target} is not a Provider subclass")
    if cls.name != name:
        raise UsageError(f"provider {name!r}: {target} declares the name {cls.name!r}")
    if cls.Options is not None:
        add_provider_options(name, cls.Options)  # its keys are secrets from now on, whoever reads Settings
    return cls


def classes(role: Role | None = None) -> dict[str, type[Provider]]:
    """Every registered provider (of `role`) that can be imported, by name (imports each declaration)."""
    out: dict[str, type[Provider]] = {}
    for name in targets():
        try:
            cls = provider_class(name)
        except UsageError:
            continue
        if role is None or role in cls.roles:
            out[name] = cls
    return out


def names(role: Role | None = None) -> list[str]:
    return list(classes(role))


def _build(name: str, role: Role, settings: Settings, pricing: bool) -> Any:
    cls = provider_class(name)
    if role not in cls.roles:
        raise UsageError(f"provider {name!r} has no {_ROLE_WORDS[role]}; it provides {', '.join(cls.roles)}")
    provider = cls.for_pricing(settings) if pricing else cls(settings)
    return provider.agents() if role == "agents" else provider.media()


def load_agents(name: str, settings: Settings, *, pricing: bool = False) -> Agents:
    """`pricing`: built to name models and prices only (a dry run), with placeholders for unset keys."""
    return _build(name, "agents", settings, pricing)


def load_media(name: str, settings: Settings, *, pricing: bool = False) -> Media:
    return _build(name, "media", settings, pricing)


def concurrency(name: str, settings: Settings) -> int:
    """The concurrency limit of the calls to provider `name`, as it declares it."""
    try:
        return provider_class(name).concurrency(settings)
    except UsageError:
        return settings.offline_concurrency


def chosen(role: Role, settings: Settings) -> type[Provider]:
    """The provider the settings name for `role` when it is not offline (FBLOOP_<ROLE>_PROVIDER)."""
    field = f"{role}_provider"
    name = getattr(settings, field)
    try:
        cls = provider_class(name)
    except UsageError as exc:
        raise UsageError(f"{env_name(field)}: {exc.message}", hint=exc.hint) from None
    if role not in cls.roles:
        words = _ROLE_WORDS[role]
        raise UsageError(
            f"{env_name(field)}: provider {name!r} has no {words}; providers of {words}: {', '.join(names(role))}"
        )
    return cls


def providers_for(backend: str, settings: Settings) -> dict[str, str]:
    """Role -> provider of a run that recorded only its backend: offline throughout, else the chosen ones."""
    if backend == OFFLINE:
        return dict.fromkeys(ROLES, OFFLINE)
    return {role: str(getattr(settings, f"{role}_provider")) for role in ROLES}


@dataclass(frozen=True)
class BackendChoice:
    """Who does what in a run: each role's provider, chosen on its own.

    `backend` is what a run records as `options.backend`: `cloud` when any role the run uses goes to a
    provider other than offline (something may be paid), `offline` when none does. `reason` is the one
    `backend:` line."""

    backend: str
    providers: dict[str, str]
    reason: str
    #: dry run only: roles priced although their provider is not configured (nothing is called in a dry run)
    unconfigured: tuple[str, ...] = ()
    #: the setting each of those roles' providers asks for (its key), in the same order
    unconfigured_keys: tuple[str, ...] = ()


def role_configured(role: Role, settings: Settings) -> str | None:
    """The setting that makes `role` use its chosen provider, or None when it is not configured."""
    return chosen(role, settings).configured(settings)


def resolve_backend(
    requested: str, settings: Settings, roles: tuple[str, ...] = ROLES, *, dry_run: bool = False
) -> BackendChoice:
    """Each role on its own: `auto` gives a role its chosen provider when that provider is configured (what it
    declares: a key, or a base URL, ...), else the offline one; `cloud` insists on the chosen provider for
    every role in `roles` (the roles the run's stages use) and names the missing setting, except in a dry run,
    which prices the run without keys; `offline` is offline throughout. A role the run does not use is
    recorded as offline and never loaded."""
    providers: dict[str, str] = {}
    parts: list[str] = []
    missing: list[tuple[str, type[Provider]]] = []
    for role in ROLES:
        words = _ROLE_WORDS[role]
        if role not in roles:
            providers[role] = OFFLINE
            parts.append(f"{words}: not used")
            continue
        if requested == OFFLINE:
            providers[role] = OFFLINE
            parts.append(f"{words}: offline (--backend offline)")
            continue
        cls = chosen(role, settings)
        configured = cls.configured(settings)
        if configured is not None:
            providers[role] = cls.name
            why = f"{configured} is set" if configured else f"{env_name(f'{role}_provider')}={cls.name}"
            parts.append(f"{words}: {cls.name} ({why})")
        elif requested == "cloud":
            providers[role] = cls.name
            missing.append((role, cls))
            parts.append(f"{words}: {cls.name} (priced; {cls.needs()} not set)")
        else:
            providers[role] = OFFLINE
            parts.append(f"{words}: offline ({cls.needs()} not set)")
    if missing and not dry_run:
        needed = " and ".join(cls.key() for _, cls in missing)
        used = " and ".join(_ROLE_WORDS[role] for role, _ in missing)
        hints = [cls.hint for _, cls in missing if cls.hint]
        raise UsageError(
            f"--backend cloud needs {needed} for the {used} of this run",
            hint="; ".join(
                [*hints, "--backend auto runs what is not configured offline", "--dry-run prices it without keys"]
            ),
        )
    backend = "cloud" if any(providers[r] != OFFLINE for r in roles) else "offline"
    tail = "; nothing is generated by a real model, nothing is paid" if backend == "offline" else ""
    via = " with --backend cloud" if requested == "cloud" else ""
    reason = f"{backend}{via}: {'; '.join(parts)}{tail}"
    return BackendChoice(
        backend,
        providers,
        reason,
        tuple(role for role, _ in missing),
        tuple(cls.key() for _, cls in missing),
    )


def recorded_reason(backend: str, providers: dict[str, str]) -> str:
    """The `backend:` line of a resumed run: the providers it recorded when it started."""
    parts = [f"{_ROLE_WORDS[role]}: {providers[role].partition(':')[0]}" for role in ROLES if role in providers]
    return f"{backend} (as the run recorded it): {'; '.join(parts)}" if parts else f"{backend} (as the run recorded it)"


@dataclass(frozen=True)
class ProviderInfo:
    """One registered provider as `fbloop models providers` lists it, read from its declaration."""

    name: str
    roles: tuple[str, ...]
    #: the roles whose setting (FBLOOP_<ROLE>_PROVIDER) names it
    chosen_for: tuple[str, ...]
    #: what configures it ("" when it needs nothing)
    needs: str
    #: the setting that configures it now, "" when it needs none, None when it is not configured
    configured: str | None
    #: why it cannot be used (its module cannot be imported, a bad setting), else ""
    problem: str = ""


def describe(settings: Settings) -> list[ProviderInfo]:
    """Every registered provider, built-ins first, with what it declares and whether it is configured."""
    out: list[ProviderInfo] = []
    for name in targets():
        chosen_for = tuple(role for role in ROLES if getattr(settings, f"{role}_provider") == name)
        try:
            cls = provider_class(name)
            out.append(ProviderInfo(name, cls.roles, chosen_for, cls.needs(), cls.configured(settings)))
        except UsageError as exc:
            out.append(ProviderInfo(name, (), chosen_for, "", None, exc.message))
    return out
