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
from typing import ClassVar


@dataclass(frozen=True)
class NotedValue:
    """A raw value and what a reader of scores.json should know about it (a truncated prompt, a fallback)."""

    raw: float
    notes: tuple[str, ...] = ()


class ImageScorer(ABC):
    """Scores images against the prompt that produced them."""

    name: ClassVar[str]
    #: human description of the raw range, e.g. "0..100 (100 x cosine, clamped at 0)"
    raw_range: ClassVar[str] = ""
    offline: ClassVar[bool] = False
    #: weight in the overall score unless settings override it
    default_weight: ClassVar[float] = 1.0

    @property
    def model_id(self) -> str:
        """The checkpoint (hub id or local path) this scorer uses; a fixed label for statistics."""
        return "n/a"

    @abstractmethod
    def score(self, images: Sequence[Path], prompt: str) -> list[float]:
        """One raw value per image, in input order."""

    def score_with_notes(self, images: Sequence[Path], prompt: str) -> list[NotedValue]:
        """`score` with notes per image; scorers that have something to note override this and derive `score`."""
        return [NotedValue(float(v)) for v in self.score(images, prompt)]

    @abstractmethod
    def normalize(self, raw: float) -> float:
        """Map a raw value to 0-100 (documented per scorer)."""


class VideoScorer(ABC):
    """Scores videos; one scorer may compute several named dimensions."""

    name: ClassVar[str]
    dimensions: ClassVar[tuple[str, ...]]
    offline: ClassVar[bool] = False
    #: per-dimension weight in the overall score unless settings override it
    default_weights: ClassVar[dict[str, float]] = {}

    @property
    def model_id(self) -> str:
        return "n/a"

    @abstractmethod
    def score(self, videos: Sequence[Path], prompt: str) -> dict[str, list[float]]:
        """For each dimension it computes, one raw value per video, in input order."""

    @abstractmethod
    def normalize(self, dimension: str, raw: float) -> float:
        """Map a dimension's raw value to 0-100."""
