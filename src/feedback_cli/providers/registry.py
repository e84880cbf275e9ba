"""Agents and media backends by name, as import paths (imported only when chosen).

`offline` is built in; the cloud providers are `openai` agents and `replicate` media, each role chosen on its
own (`resolve_backend`). Third-party backends register the same way.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from feedback_cli.errors import UsageError

if TYPE_CHECKING:
    from feedback_cli.config import Settings
    from feedback_cli.providers.base import Agents, Media

AGENTS: dict[str, str] = {
    "offline": "feedback_cli.providers.offline.agents:OfflineAgents",
    "openai": "feedback_cli.providers.openai_agents:OpenAIAgents",
}
MEDIA: dict[str, str] = {
    "offline": "feedback_cli.providers.offline.media:OfflineMedia",
    "replicate": "feedback_cli.providers.replicate_media:ReplicateMedia",
}
#: backend name -> (agents, media)
BACKENDS: dict[str, tuple[str, str]] = {
    "offline": ("offline", "offline"),
    "cloud": ("openai", "replicate"),
}


def _load(table: dict[str, str], name: str, settings: Settings) -> Any:
    if name not in table:
        raise UsageError(f"unknown provider {name!r}; known: {', '.join(sorted(table))}")
    module_name, _, attr = table[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise UsageError(f"provider {name!r} is not available in this build of fbloop") from None
        raise
    return getattr(module, attr)(settings)


def load_agents(name: str, settings: Settings) -> Agents:
    return _load(AGENTS, name, settings)


def load_media(name: str, settings: Settings) -> Media:
    return _load(MEDIA, name, settings)


#: the roles a run's stages use, and the cloud provider of each
ROLES: tuple[str, ...] = ("agents", "media")
CLOUD_PROVIDERS: dict[str, str] = {"agents": "openai", "media": "replicate"}
_ROLE_WORDS = {"agents": "agents", "media": "images and videos"}
_KEYS = {"agents": "OPENAI_API_KEY", "media": "REPLICATE_API_TOKEN"}


@dataclass(frozen=True)
class BackendChoice:
    """Who does what in a run: each role's provider, chosen on its own.

    `backend` is what a run records as `options.backend`: `cloud` when any role the run uses goes to a cloud
    provider (something may be paid), `offline` when none does. `reason` is the one `backend:` line."""

    backend: str
    providers: dict[str, str]
    reason: str
    #: dry run only: cloud roles priced although their key is not set (nothing is called in a dry run)
    unconfigured: tuple[str, ...] = ()


def role_configured(role: str, settings: Settings) -> str | None:
    """The setting that makes `role` use its cloud provider, or None when it is not configured."""
    if role == "agents":
        if settings.openai_api_key is not None:
            return "OPENAI_API_KEY"
        if settings.openai_base_url:
            return "OPENAI_BASE_URL"  # an OpenAI-compatible server (Ollama, vLLM, ...) needs no key
        return None
    if role == "media":
        return "REPLICATE_API_TOKEN" if settings.replicate_api_token is not None else None
    raise ValueError(f"unknown role {role!r}")


def _needs(role: str) -> str:
    return "OPENAI_API_KEY or OPENAI_BASE_URL" if role == "agents" else "REPLICATE_API_TOKEN"


def resolve_backend(
    requested: str, settings: Settings, roles: tuple[str, ...] = ROLES, *, dry_run: bool = False
) -> BackendChoice:
    """Each role on its own: `auto` gives a role its cloud provider when that provider is configured
    (agents: OPENAI_API_KEY or OPENAI_BASE_URL; media: REPLICATE_API_TOKEN), else the offline one;
    `cloud` insists on the cloud provider for every role in `roles` (the roles the run's stages use) and
    names the missing setting, except in a dry run, which prices the cloud run without keys; `offline`
    is offline throughout. A role the run does not use is recorded as offline and never loaded."""
    providers: dict[str, str] = {}
    parts: list[str] = []
    missing: list[str] = []
    for role in ROLES:
        cloud = CLOUD_PROVIDERS[role]
        words = _ROLE_WORDS[role]
        if role not in roles:
            providers[role] = "offline"
            parts.append(f"{words}: not used")
            continue
        configured = role_configured(role, settings)
        if requested == "offline":
            providers[role] = "offline"
            parts.append(f"{words}: offline (--backend offline)")
        elif configured is not None:
            providers[role] = cloud
            parts.append(f"{words}: {cloud} ({configured} is set)")
        elif requested == "cloud":
            providers[role] = cloud
            missing.append(role)
            parts.append(f"{words}: {cloud} (priced; {_needs(role)} not set)")
        else:
            providers[role] = "offline"
            parts.append(f"{words}: offline ({_needs(role)} not set)")
    if missing and not dry_run:
        needed = " and ".join(_KEYS[role] for role in missing)
        used = " and ".join(_ROLE_WORDS[role] for role in missing)
        raise UsageError(
            f"--backend cloud needs {needed} for the {used} of this run",
            hint="OPENAI_BASE_URL alone will do for a local OpenAI-compatible server; --backend auto runs "
            "what is not configured offline; --dry-run prices it without keys",
        )
    backend = "cloud" if any(providers[r] != "offline" for r in roles) else "offline"
    tail = "; nothing is generated by a real model, nothing is paid" if backend == "offline" else ""
    via = " with --backend cloud" if requested == "cloud" else ""
    reason = f"{backend}{via}: {'; '.join(parts)}{tail}"
    return BackendChoice(backend, providers, reason, tuple(missing))


def recorded_reason(backend: str, providers: dict[str, str]) -> str:
    """The `backend:` line of a resumed run: the providers it recorded when it started."""
    parts = [
        f"{_ROLE_WORDS[role]}: {providers[role].partition(':')[0]}" for role in ROLES if role in providers
    ]
    return f"{backend} (as the run recorded it): {'; '.join(parts)}" if parts else f"{backend} (as the run recorded it)"
