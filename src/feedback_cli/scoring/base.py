"""The scorer interface shared by the offline statistics and the real model-based scorers.

A scorer reports raw values in its own documented range and maps each to 0-100 with `normalize`.
A scorer that cannot run raises `ScorerUnavailable` with the reason; it is then left out of the
overall score and the trace says why. Scorers never invent a value.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from feedback_cli.errors import UsageError

if TYPE_CHECKING:
    from feedback_cli.config import Settings
    from feedback_cli.errors import ScorerUnavailable
    from feedback_cli.scoring.requirements import Requirement

ScorerKind = Literal["image", "video"]
#: which default set a scorer joins: "offline" (`--scorers offline`), "standard" (the cloud backend's default),
#: "optional" (the cloud default, but only when every requirement is already here), "" (only when named)
DefaultSet = Literal["offline", "standard", "optional", ""]
#: the python modules of the `scoring` extra that torch-based scorers import
TORCH_STACK: tuple[str, ...] = ("torch", "torchvision", "transformers")


class ScorerOptions(BaseSettings):
    """A scorer's own settings: subclass it with fields and set it as the scorer's `Options`.

    Read from `FBLOOP_<NAME>_<FIELD>` (the scorer's name upper-cased, `-` as `_`) in the environment or `.env`,
    then overridden by `FBLOOP_SCORER_OPTIONS='{"<name>": {"<field>": ...}}'` (`Settings.scorer_options`), so a
    new scorer never adds fields to `Settings`. (Settings fields named `<name>_<field>` that were set explicitly
    are honoured too, for HPSv2's two, which predate this.)
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")


def options_env_prefix(name: str) -> str:
    return f"FBLOOP_{name.upper().replace('-', '_')}_"


@dataclass(frozen=True)
class NotedValue:
    """A raw value and what a reader of scores.json should know about it (a truncated prompt, a fallback)."""

    raw: float
    notes: tuple[str, ...] = ()


class Scorer(ABC):
    """What every scorer declares about itself; the engine, preflight and `fbloop models` read only this.

    The declarations must be readable without torch: a scorer module imports torch (and anything else heavy)
    inside its methods or through `scoring.lazy.lazy`, never at module level.
    """

    name: ClassVar[str]
    kind: ClassVar[ScorerKind]
    #: the names its results are reported under: (name,) for an image scorer, the dimensions of a video scorer
    dimensions: ClassVar[tuple[str, ...]]
    #: an offline statistic: needs nothing, is never preflighted
    offline: ClassVar[bool] = False
    default_set: ClassVar[DefaultSet] = ""
    #: python modules its code imports, checked by preflight before any paid call
    needs_modules: ClassVar[tuple[str, ...]] = ()
    #: the fbloop extra that installs `needs_modules`
    extra: ClassVar[str] = "scoring"
    #: its own settings model (`ScorerOptions`), when it has any
    Options: ClassVar[type[ScorerOptions] | None] = None
    #: it calls a paid API for each file (VQAScore, the element check): `call_estimate` prices one file, the
    #: engine holds that to the cap before scoring, and each request is booked through the meter the engine sets
    #: (`providers.base.SCORER_CALL_METER`) in the process that scores
    pays_per_call: ClassVar[bool] = False
    #: it holds one run's state (the element check's bound questions)
    local_only: ClassVar[bool] = False

    @classmethod
    def shareable(cls) -> bool:
        """May it score on a process shared by a batch's rows (the Ray executor's scorer actor)? Not when it holds
        a run's state, and not when it pays per call: only the run's own process has the run's meter and budget,
        so elsewhere its requests would be sent unbooked and past the cap."""
        return not (cls.local_only or cls.pays_per_call)

    def call_estimate(self) -> float | None:
        """USD scoring one file may cost (a `pays_per_call` scorer); None if unknown (refused under a cap)."""
        return 0.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def options(cls, settings: Settings) -> ScorerOptions:
        """Its own settings (`Options`): env/.env `FBLOOP_<NAME>_<FIELD>`, then `settings.scorer_options[name]`.
        A bad value is a UsageError naming the variable."""
        if cls.Options is None:
            raise TypeError(f"scorer {cls.name} declares no Options")
        prefix = options_env_prefix(cls.name)
        overrides = getattr(settings, "scorer_options", {}).get(cls.name, {})
        try:
            return cls.Options(_env_prefix=prefix, **overrides)  # type: ignore[call-arg]
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise UsageError(f"{prefix}{field.upper()}: {first['msg']}") from None

    @classmethod
    def requirements(cls, settings: Settings) -> list[Requirement]:
        """Every checkpoint, package, API or environment it needs with these settings (none by default)."""
        return []

    @classmethod
    def unavailable(cls, settings: Settings) -> ScorerUnavailable | None:
        """Why it cannot run with these settings beyond its requirements (a model the API lacks, ...), or None."""
        return None

    @property
    def model_id(self) -> str:
        """The checkpoint (hub id or local path) this scorer uses; a fixed label for statistics."""
        return "n/a"

    @property
    def default_weights(self) -> dict[str, float]:  # pragma: no cover - overridden by both kinds
        return {}

    @abstractmethod
    def results(self, paths: Sequence[Path], prompt: str) -> dict[str, list[NotedValue]]:
        """The one result shape: for each of its dimensions, one value per file, in input order."""

    @abstractmethod
    def normalize_dimension(self, dimension: str, raw: float) -> float:
        """Map one dimension's raw value to 0-100."""


@dataclass(frozen=True)
class Measured:
    """One dimension's value for one file: raw, its 0-100 mapping, and the notes."""

    raw: float
    normalized: float
    notes: tuple[str, ...] = ()


def measure(scorer: Scorer, paths: Sequence[Path], prompt: str) -> list[dict[str, Measured]]:
    """Score `paths` with any scorer: for each file, its values by dimension (the loop the runner and the
    engine share)."""
    out: list[dict[str, Measured]] = [{} for _ in paths]
    for dimension, values in scorer.results(paths, prompt).items():
        for row, value in zip(out, values, strict=True):
            raw = float(value.raw)
            row[dimension] = Measured(raw, float(scorer.normalize_dimension(dimension, raw)), value.notes)
    return out


class ImageScorer(Scorer):
    """Scores images against the prompt that produced them."""

    kind: ClassVar[ScorerKind] = "image"
    #: human description of the raw range, e.g. "0..100 (100 x cosine, clamped at 0)"
    raw_range: ClassVar[str] = ""
    offline: ClassVar[bool] = False
    #: weight in the overall score unless settings override it
    default_weight: ClassVar[float] = 1.0

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            cls.dimensions = (cls.name,)

    @property
    def default_weights(self) -> dict[str, float]:
        return {self.name: self.default_weight}

    def results(self, paths: Sequence[Path], prompt: str) -> dict[str, list[NotedValue]]:
        return {self.name: self.score_with_notes(paths, prompt)}

    def normalize_dimension(self, dimension: str, raw: float) -> float:
        return self.normalize(raw)

    @abstractmethod
    def score(self, images: Sequence[Path], prompt: str) -> list[float]:
        """One raw value per image, in input order."""

    def score_with_notes(self, images: Sequence[Path], prompt: str) -> list[NotedValue]:
        """`score` with notes per image; scorers that have something to note override this and derive `score`."""
        return [NotedValue(float(v)) for v in self.score(images, prompt)]

    @abstractmethod
    def normalize(self, raw: float) -> float:
        """Map a raw value to 0-100 (documented per scorer)."""


class VideoScorer(Scorer):
    """Scores videos; one scorer may compute several named dimensions."""

    kind: ClassVar[ScorerKind] = "video"
    #: per-dimension weight in the overall score unless settings override it
    default_weights: ClassVar[dict[str, float]] = {}  # type: ignore[assignment]

    def results(self, paths: Sequence[Path], prompt: str) -> dict[str, list[NotedValue]]:
        return {dim: [NotedValue(float(v)) for v in raws] for dim, raws in self.score(paths, prompt).items()}

    def normalize_dimension(self, dimension: str, raw: float) -> float:
        return self.normalize(dimension, raw)

    @abstractmethod
    def score(self, videos: Sequence[Path], prompt: str) -> dict[str, list[float]]:
        """For each dimension it computes, one raw value per video, in input order."""

    @abstractmethod
    def normalize(self, dimension: str, raw: float) -> float:
        """Map a dimension's raw value to 0-100."""
