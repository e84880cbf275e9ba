"""Score a set of files with named scorers: the code behind `fbloop score`, usable by the engine too.

Each image scorer gives one raw value per image and each video scorer one raw value per video per dimension
(docs/scorers.md §I for images, §V for the VBench dimensions); every raw value is reported with its 0-100 mapping
(`normalize`) and the checkpoint that produced it (`model_id`). A scorer that cannot run is reported in `errors`
by name and left out; nothing is invented in its place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from feedback_cli.errors import ScorerUnavailable
from feedback_cli.scoring import registry
from feedback_cli.scoring.base import Scorer, measure

if TYPE_CHECKING:
    from feedback_cli.config import Settings

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v", ".gif"})


@dataclass(frozen=True)
class Score:
    """One value: a scorer's (or a VBench dimension's) raw number, its 0-100 mapping and the model behind it."""

    scorer: str
    raw: float
    normalized: float
    model_id: str
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "scorer": self.scorer,
            "raw": self.raw,
            "normalized": self.normalized,
            "model_id": self.model_id,
        }
        if self.notes:
            out["notes"] = list(self.notes)
        return out


@dataclass
class FileScores:
    path: Path
    kind: Literal["image", "video"]
    #: key: scorer name for images, dimension name for videos
    scores: dict[str, Score] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "kind": self.kind,
            "scores": {k: v.as_dict() for k, v in self.scores.items()},
        }


@dataclass
class Report:
    prompt: str
    files: list[FileScores]
    errors: dict[str, ScorerUnavailable] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "results": [f.as_dict() for f in self.files],
            "errors": {name: exc.line() for name, exc in self.errors.items()},
        }


def kind_of(path: Path) -> Literal["image", "video"] | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def score_files(
    paths: Sequence[Path],
    prompt: str,
    image_scorers: Sequence[str],
    video_scorers: Sequence[str],
    settings: Settings,
    on_scorer: Callable[[str], None] | None = None,
) -> Report:
    """Run every image scorer on the images and every video scorer on the videos of `paths`, in input order."""
    files = [FileScores(Path(p), kind_of(Path(p)) or "image") for p in paths]
    images = [f for f in files if f.kind == "image"]
    videos = [f for f in files if f.kind == "video"]
    report = Report(prompt, files)
    for kind, names, group in (("image", image_scorers, images), ("video", video_scorers, videos)):
        for name in names if group else ():
            if on_scorer is not None:
                on_scorer(name)
            try:
                make = registry.image_scorer if kind == "image" else registry.video_scorer
                scorer: Scorer = make(name, settings)
                rows = measure(scorer, [f.path for f in group], prompt)
            except ScorerUnavailable as exc:
                report.errors[name] = exc
                continue
            for f, row in zip(group, rows, strict=True):
                for dimension, m in row.items():
                    f.scores[dimension] = Score(name, m.raw, m.normalized, scorer.model_id, m.notes)
    return report
