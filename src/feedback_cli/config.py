"""Settings: environment variables, a `.env` file, then flags (flags win, applied by the commands).

Secrets are `SecretStr` so they never print, and `Settings.public_dict()` is what lands in traces.
"""

from __future__ import annotations

import functools
import math
import os
import re
import stat
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from feedback_cli.choices import Backend
from feedback_cli.errors import UsageError
from feedback_cli.plugins import PluginGroup
from feedback_cli.redaction import Redactor, looks_like_url, mask_url, remember, url_secrets

DEFAULT_OUTPUT_DIR = Path("output/feedback_loops")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FBLOOP_", env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- keys and endpoints of the built-in providers (the client libraries' own variable names); a provider
    # added later declares its own in its `ProviderOptions` (below), read from the environment the same way ---
    openai_api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(default=None, validation_alias=AliasChoices("OPENAI_BASE_URL"))
    replicate_api_token: SecretStr | None = Field(default=None, validation_alias=AliasChoices("REPLICATE_API_TOKEN"))
    replicate_base_url: str | None = Field(default=None, validation_alias=AliasChoices("REPLICATE_BASE_URL"))

    # --- backend and models ---
    backend: Backend = Backend.auto
    #: the provider each role gets when it is not offline (`--backend auto|cloud`), by its registered name
    #: (`providers/registry.py`, entry points `fbloop.providers`)
    agents_provider: str = "openai"
    media_provider: str = "replicate"
    writer_model: str = "gpt-4.1-mini"
    critic_model: str = "gpt-4.1-mini"
    planner_model: str = "gpt-4.1-mini"  # the video plan (scenes, entities, camera) before the motion prompt
    vision_model: str = "gpt-4.1-mini"
    image_model: str = "black-forest-labs/flux-schnell"
    video_model: str = "kwaivgi/kling-v2.1"
    storyboard_video_model: str = "kwaivgi/kling-v2.1"
    video_duration_s: int = 5
    aspect_ratio: str = "16:9"

    # --- limits, timeouts, retries ---
    llm_concurrency: int = Field(default=4, ge=1)
    replicate_concurrency: int = Field(default=8, ge=1)
    offline_concurrency: int = Field(default=8, ge=1)
    request_timeout_s: float = Field(default=120.0, gt=0)
    prediction_deadline_s: float = Field(default=1800.0, gt=0)
    create_retries: int = Field(default=5, ge=0)
    llm_retries: int = Field(default=3, ge=0)
    min_successful_items: int = Field(default=1, ge=1)
    max_cost: float | None = Field(default=None, ge=0)
    price_file: Path | None = None

    # --- cloud providers ---
    poll_interval_s: float = Field(default=0.5, gt=0)  # first poll wait; grows to 5 s (images) / 15 s (videos)
    download_retries: int = Field(default=2, ge=0)
    #: when fbloop gives up waiting on a prediction (deadline, polling keeps failing) it cancels it, so nothing
    #: is billed for an output nobody collects; set to keep it running instead (a resume collects and books it)
    keep_predictions: bool = False

    # --- offline backend ---
    offline_latency: float = Field(default=0.0, ge=0)  # seconds per simulated call
    offline_latency_llm: float | None = Field(default=None, ge=0)  # overrides per kind of call
    offline_latency_image: float | None = Field(default=None, ge=0)
    offline_latency_video: float | None = Field(default=None, ge=0)
    offline_image_size: int = Field(default=512, ge=64, le=2048)
    offline_video_seconds: float = Field(default=3.0, gt=0, le=20)

    # --- scoring ---
    scorers: str | None = None
    selection: Literal["weighted", "rank"] = "weighted"
    image_weights: dict[str, float] = Field(default_factory=dict)
    video_weights: dict[str, float] = Field(default_factory=dict)
    device: str = "auto"
    clip_model: str = "openai/clip-vit-large-patch14"
    pickscore_model: str = "yuvalkirstain/PickScore_v1"
    pickscore_processor: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    aesthetic_head: str | None = None
    vqa_backend: Literal["openai", "t2v_metrics"] = "openai"
    vqa_model: str = "gpt-4.1-mini"
    dino_model: str = "facebook/dino-vitb16"
    vbench_clip_b32_model: str = "openai/clip-vit-base-patch32"
    vbench_aesthetic_head: str | None = None
    raft_weights: str | None = None
    musiq_weights: str | None = None
    vbench_python: str | None = None
    #: native: fbloop computes the VBench dimensions itself (motion_smoothness, and imaging_quality without
    #: pyiqa, go to the official CLI when vbench_python is set); official: every dimension via VBench's CLI.
    vbench_backend: Literal["native", "official"] = "native"
    vbench_imaging_preprocessing: Literal["longer", "shorter", "shorter_centercrop", "None"] = "longer"
    #: images / frames per forward pass of a scoring model
    score_batch_size: int = Field(default=16, ge=1, le=1024)
    #: per-scorer (low, high) raw anchors of the linear 0-100 mapping, e.g. {"pickscore": [17, 24]}
    score_anchors: dict[str, tuple[float, float]] = Field(default_factory=dict)
    #: VQAScore over the OpenAI-compatible API: how many top logprobs to ask for (0-20 in the API)
    vqa_top_logprobs: int = Field(default=20, ge=1, le=20)
    #: where weight files that are not on the HF hub go (default ~/.cache/fbloop/weights)
    weights_dir: Path | None = None
    #: a scorer's own settings by scorer name, overriding its FBLOOP_<SCORER>_<FIELD> variables
    #: (scoring/base.py::ScorerOptions), e.g. {"my-scorer": {"threshold": 0.5}}
    scorer_options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    # --- `fbloop batch --executor ray` ---
    #: GPUs each scoring actor declares (0.5 lets two actors share a GPU); 0 scores on CPU
    ray_scorer_gpus: float = Field(default=0.0, ge=0)
    #: scoring actors per batch: each loads the scorers' models once and serves every row's scoring
    ray_scorer_actors: int = Field(default=1, ge=1, le=256)
    #: CPUs a row task reserves: a row mostly waits on providers, its scoring runs on the scorer actors
    ray_row_cpus: float = Field(default=0.25, gt=0)
    #: times Ray re-runs a row whose worker died (the retry resumes the row from its checkpoint)
    ray_task_retries: int = Field(default=1, ge=0)

    # --- output ---
    output_dir: Path = DEFAULT_OUTPUT_DIR

    @field_validator("output_dir", mode="before")
    @classmethod
    def _output_dir_not_empty(cls, value: Any) -> Any:
        # "" would become Path("."): runs written into whatever the working directory is
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty (it would write into the working directory)")
        return value

    @field_validator("image_weights", "video_weights")
    @classmethod
    def _weights_usable(cls, weights: dict[str, float]) -> dict[str, float]:
        """Overall-score weights: each finite and >= 0, and not all zero (nothing would count)."""
        for name, weight in weights.items():
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"the weight of {name!r} is {weight}; weights must be finite and >= 0")
        if weights and not any(weights.values()):
            raise ValueError("every weight is 0, so no scorer would count")
        return weights

    def public_dict(self) -> dict[str, Any]:
        """Everything but secrets, for traces and logs: each `SecretStr` setting becomes `<name>_set`, and
        each URL-valued setting loses its credentials (`http://***@host/v1?token=***`)."""
        fields = type(self).model_fields
        hidden = {name for name, field in fields.items() if _is_secret_field(field.annotation)}
        data = self.model_dump(mode="json", exclude=hidden)
        for name, value in data.items():
            if looks_like_url(value):
                data[name] = mask_url(value)
        for name in sorted(hidden):
            data[f"{name}_set"] = getattr(self, name) is not None
        return data

    def secrets(self) -> list[str]:
        """Every secret value, derived, not listed: each `SecretStr` setting, and the credentials inside each
        URL-valued setting, here and in every provider's own settings (`ProviderOptions`), a plugin's too.
        `redaction.Redactor` ignores those too short to be secrets."""
        out = _secret_values(self)
        for model in provider_options_models():
            out += _provider_option_secrets(model)
        return [v for v in out if v]

    def redactor(self) -> Redactor:
        return Redactor(self.secrets())


def _is_secret_field(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


def _secret_values(model: BaseSettings) -> list[str]:
    out: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            out.append(value.get_secret_value())
        elif looks_like_url(value):
            out.extend(url_secrets(value))
    return out


class ProviderOptions(BaseSettings):
    """A provider's own settings: subclass it with fields, keys as `SecretStr`, and set it as the provider's
    `Options` (`providers/provider.py`). Read from the environment and `.env` like `Settings`; a field's
    variable is its alias (`Field(validation_alias="ACME_API_KEY")`) or `<env_prefix><FIELD>`. Every
    `SecretStr` (and every URL's credentials) in it is a secret `Settings.secrets()` knows, derived from the
    declaration: a provider never lists its keys anywhere else."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")


#: the entry-point group of provider plugins; the registry (`providers/registry.py`) loads them by name
PROVIDER_ENTRY_POINT_GROUP = "fbloop.providers"
#: providers' settings models made known in this process (`providers.registry` adds each class it loads)
_known_options: dict[str, type[ProviderOptions]] = {}


def add_provider_options(name: str, model: type[ProviderOptions]) -> None:
    """Make a provider's settings model known to `Settings.secrets()` (the registry calls it on load)."""
    _known_options[name] = model


@functools.cache
def _installed_provider_options() -> tuple[type[ProviderOptions], ...]:
    """The settings models of the installed provider plugins, so their keys are redacted even before (or
    without) the provider being chosen. Loaded by entry point: providers sit above config, which never
    imports them by name. A plugin that cannot be loaded cannot run either, and is skipped."""
    found: list[type[ProviderOptions]] = []
    installed = PluginGroup(PROVIDER_ENTRY_POINT_GROUP, {})  # the same cached entry-point scan as the registry
    for name in installed.installed():
        try:
            model = getattr(installed.load(name), "Options", None)
        except Exception:  # a broken plugin must not break every command
            continue
        if isinstance(model, type) and issubclass(model, ProviderOptions):
            found.append(model)
    return tuple(found)


def provider_options_models() -> list[type[ProviderOptions]]:
    models = [*_installed_provider_options(), *_known_options.values()]
    return list(dict.fromkeys(models))


def _provider_option_secrets(model: type[ProviderOptions]) -> list[str]:
    try:
        return _secret_values(model())
    except ValidationError:
        # another of its settings is bad (the provider says so when it is used); its keys are still secrets
        return [
            os.environ[name]
            for field, info in model.model_fields.items()
            if _is_secret_field(info.annotation)
            for name in field_env_names(model, field)
            if os.environ.get(name)
        ]


def field_env_names(model: type[BaseSettings], field: str) -> list[str]:
    """The environment variables a settings field is read from: its alias(es), else `<env_prefix><FIELD>`."""
    alias = model.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices if isinstance(choice, str)]
    if isinstance(alias, str):
        return [alias]
    return [f"{model.model_config.get('env_prefix', '')}{field}".upper()]


def load_settings(**overrides: Any) -> Settings:
    """Settings from env/.env with non-None overrides from flags applied on top.

    A bad value is one line naming the variable (or flag) and what is wrong with it, exit 2."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    _check_env_file()
    try:
        settings = Settings(**clean)
    except ValidationError as exc:
        raise UsageError(_validation_problem(exc, clean)) from None
    except SettingsError as exc:
        raise UsageError(_parsing_problem(exc)) from None
    remember(settings.secrets())  # so even the last-resort error line can redact them
    return settings


def _check_env_file() -> None:
    """A `.env` that is a FIFO (or a device) would block the settings read for ever. A directory is
    fine (it is often a virtualenv): pydantic-settings skips it."""
    env_file = Path(str(Settings.model_config.get("env_file") or ".env"))
    try:
        mode = env_file.stat().st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise UsageError(f"{env_file.absolute()} is not a regular file; settings are read from a .env file")


#: values too long to echo are cut; secrets are never echoed
_ECHO_LIMIT = 60


def env_name(field: str) -> str:
    """The environment variable a settings field is read from."""
    alias = Settings.model_fields[field].validation_alias if field in Settings.model_fields else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"{Settings.model_config.get('env_prefix', '')}{field}".upper()


#: the name tests and messages use for `env_name`
setting_name = env_name


def _where(field: str, overrides: dict[str, Any]) -> tuple[str, str]:
    """(what the value is called, where it came from) for a message."""
    if field in overrides:
        return f"--{field.replace('_', '-')}", ""
    name = env_name(field)
    if name.lower() in {key.lower() for key in os.environ}:
        return name, " from the environment"
    return name, " from .env"


def _validation_problem(exc: ValidationError, overrides: dict[str, Any]) -> str:
    """`NAME: what is wrong; got VALUE from SOURCE`, NAME the environment variable (or the flag)."""
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    field = loc[0] if loc else "?"
    field = {env_name(name): name for name in Settings.model_fields}.get(field, field)  # an alias's error
    name, source = _where(field, overrides)
    inner = f" (at {'.'.join(loc[1:])})" if len(loc) > 1 else ""
    got = f";{source.replace(' from', ' set in', 1)}" if source else ""
    secret = field in Settings.model_fields and _is_secret_field(Settings.model_fields[field].annotation)
    if not secret and len(loc) == 1 and isinstance(first.get("input"), str | int | float):
        value = str(first["input"])
        value = value if len(value) <= _ECHO_LIMIT else value[:_ECHO_LIMIT] + "..."
        got = f"; got {value!r}{source}"
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    message = first["msg"].removeprefix("Value error, ")
    return f"{name}: {message}{inner}{got}{more}"


def _parsing_problem(exc: SettingsError) -> str:
    """pydantic-settings reads dict and list settings as JSON and fails before validation."""
    found = re.search(r'field "([^"]+)" from source "(\w+)"', str(exc))
    if found is None:
        return f"cannot read the settings: {exc}"
    field, source = found.groups()
    name = env_name(field) if field in Settings.model_fields else field
    where = "from .env" if "DotEnv" in source else "from the environment"
    return f'{name}: not valid JSON ({field} is read as JSON, e.g. {{"name": 1.0}}); {where}'
