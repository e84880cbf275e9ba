"""What a provider declares about itself; the registry, `--backend`, `--dry-run` and redaction read only this.

A provider is one class, registered by name (`providers/registry.py`): the roles it plays (`agents`: writer,
critic, planner, describer; `media`: images and videos), its own settings (`Options`, keys as `SecretStr`,
from which redaction is derived), the settings any one of which configures it (its key first), and how it
builds its agents and media, which in turn name their models and price their calls (`estimate_*`).

The declaration must be cheap to import: a provider module imports its client library (openai, httpx, ...)
inside `agents()` / `media()` or in a module those import, so that reading every declaration (to redact
every installed provider's keys, to list them) costs nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal, get_args

from pydantic import SecretStr, ValidationError

from feedback_cli.config import ProviderOptions, env_name, field_env_names
from feedback_cli.errors import UsageError

if TYPE_CHECKING:
    from feedback_cli.config import Settings
    from feedback_cli.providers.base import Agents, Media

Role = Literal["agents", "media"]
#: what a dry run prices with when a key is not set: the constructors want one, a dry run calls nothing
PRICING_PLACEHOLDER = "dry-run-no-key"


class Provider:
    """Subclass it, declare the class variables, implement `agents()` and/or `media()` for its roles."""

    name: ClassVar[str]
    roles: ClassVar[tuple[Role, ...]]
    #: its own settings model, when it has any (a built-in's may be fields of `Settings` instead)
    Options: ClassVar[type[ProviderOptions] | None] = None
    #: settings (fields of `Options`, else of `Settings`), any one of which, set, configures it; the first is
    #: the one a message asks for (its key). Empty: it needs nothing (it runs offline or on this machine).
    configured_by: ClassVar[tuple[str, ...]] = ()
    #: a short alternative to setting the key, added to the message that asks for it
    hint: ClassVar[str] = ""
    #: the `Settings` field sizing the concurrency limit of its calls
    concurrency_setting: ClassVar[str] = "offline_concurrency"

    def __init__(self, settings: Settings, options: ProviderOptions | None = None) -> None:
        self.settings = settings
        self.options = options if options is not None else self.read_options(settings)

    # --- declarations, read without building anything ---
    @classmethod
    def read_options(cls, settings: Settings) -> ProviderOptions | None:
        """Its own settings from the environment and `.env`; a bad value is one line naming the variable."""
        if cls.Options is None:
            return None
        try:
            return cls.Options()
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "?"
            names = field_env_names(cls.Options, field) if field in cls.Options.model_fields else [field]
            raise UsageError(f"{names[0]}: {first['msg'].removeprefix('Value error, ')}") from None

    @classmethod
    def _holder(cls, field: str, settings: Settings, options: ProviderOptions | None) -> object:
        if options is not None and field in type(options).model_fields:
            return options
        if field in type(settings).model_fields:
            return settings
        raise TypeError(f"provider {cls.name}: {field!r} is neither in its Options nor a Settings field")

    @classmethod
    def setting_env_name(cls, field: str) -> str:
        """The environment variable behind one of its settings."""
        if cls.Options is not None and field in cls.Options.model_fields:
            return field_env_names(cls.Options, field)[0]
        return env_name(field)

    @classmethod
    def configured(cls, settings: Settings, options: ProviderOptions | None = None) -> str | None:
        """The variable of the first `configured_by` setting that is set, or None when none is. A provider
        that needs nothing is configured by being chosen: "" ."""
        if not cls.configured_by:
            return ""
        options = options if options is not None else cls.read_options(settings)
        for field in cls.configured_by:
            value = getattr(cls._holder(field, settings, options), field)
            if value is not None and value != "":
                return cls.setting_env_name(field)
        return None

    @classmethod
    def needs(cls) -> str:
        """What configures it, for a message: `OPENAI_API_KEY or OPENAI_BASE_URL`."""
        return " or ".join(cls.setting_env_name(field) for field in cls.configured_by)

    @classmethod
    def key(cls) -> str:
        """The one setting a message asks for when it is not configured."""
        return cls.setting_env_name(cls.configured_by[0]) if cls.configured_by else ""

    @classmethod
    def concurrency(cls, settings: Settings) -> int:
        return int(getattr(settings, cls.concurrency_setting))

    @classmethod
    def for_pricing(cls, settings: Settings) -> Provider:
        """Built with a placeholder for each of its unset key settings (`SecretStr`), so a dry run can price
        it before there is a key: building calls nothing."""
        options = cls.read_options(settings)
        settings_update: dict[str, SecretStr] = {}
        options_update: dict[str, SecretStr] = {}
        for field in cls.configured_by:
            holder = cls._holder(field, settings, options)
            info = type(holder).model_fields[field]  # type: ignore[attr-defined]
            if getattr(holder, field) is None and _is_secret(info.annotation):
                (options_update if holder is options else settings_update)[field] = SecretStr(PRICING_PLACEHOLDER)
        if options is not None and options_update:
            options = options.model_copy(update=options_update)
        return cls(settings.model_copy(update=settings_update) if settings_update else settings, options)

    # --- what it builds ---
    def agents(self) -> Agents:
        raise UsageError(f"provider {self.name} has no agents (writer, critic, planner, describer)")

    def media(self) -> Media:
        raise UsageError(f"provider {self.name} makes no images or videos")


def _is_secret(annotation: object) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)
