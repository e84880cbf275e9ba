"""Score a set of files with named scorers: the code behind `fbloop score`, usable by the engine too.

Each image scorer gives one raw value per image and each video scorer one raw value per video per dimension
(docs/scorers.md §I for images, §V for the VBench dimensions); every raw value is reported with its 0-100 mapping
(`normalize`) and the checkpoint that produced it (`model_id`). A scorer that cannot run is reported in `errors`
by name and left out; nothing is invented in its place. A scorer that pays per request (VQAScore asking a vision
model) is tallied: the report says how many requests each such scorer sent and what the API billed for them.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from feedback_cli.errors import ScorerUnavailable
from feedback_cli.providers.base import SCORER_CALL_METER, BilledResponse
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
class PaidCalls:
    """What one scorer that pays per request sent: requests, what was billed, and the models asked."""

    requests: int = 0
    usd: float = 0.0
    #: requests billed without usage or price (booked at their estimate, or at $0 when no price is known)
    estimated: int = 0
    models: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "usd": round(self.usd, 6),
            "estimated": self.estimated,
            "models": sorted(self.models),
        }


class PaidCallTally:
    """The SyncCallMeter of `fbloop score`: no run, no ledger and no cap, but every billed request counted, so
    the person sees what scoring cost. Scorers call it from their worker threads."""

    def __init__(self, calls: PaidCalls) -> None:
        self.calls = calls
        self._lock = threading.Lock()
        self._next = 0

    def started(self, model: str, estimate_usd: float | None) -> str:
        with self._lock:
            self._next += 1
            self.calls.requests += 1
            self.calls.models.add(model)
            return str(self._next)

    def finished(self, call_id: str, billed: BilledResponse | None, error: str | None = None) -> None:
        if billed is None:
            return
        with self._lock:
            self.calls.usd += billed.usd or 0.0
            if billed.estimated or billed.usd is None:
                self.calls.estimated += 1


@dataclass
class Report:
    prompt: str
    files: list[FileScores]
    errors: dict[str, ScorerUnavailable] = field(default_factory=dict)
    #: per scorer that pays per request: what it sent and what was billed
    paid: dict[str, PaidCalls] = field(default_factory=dict)

    @property
    def cost_usd(self) -> float:
        return round(sum(p.usd for p in self.paid.values()), 6)

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "results": [f.as_dict() for f in self.files],
            "errors": {name: exc.line() for name, exc in self.errors.items()},
            "paid_calls": {name: calls.as_dict() for name, calls in self.paid.items()},
            "cost_usd": self.cost_usd,
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
                metered = contextvars.copy_context()
                if scorer.pays_per_call:
                    calls = report.paid.setdefault(name, PaidCalls())
                    metered.run(SCORER_CALL_METER.set, PaidCallTally(calls))
                rows = metered.run(measure, scorer, [f.path for f in group], prompt)
            except ScorerUnavailable as exc:
                report.errors[name] = exc
                continue
            for f, row in zip(group, rows, strict=True):
                for dimension, m in row.items():
                    f.scores[dimension] = Score(name, m.raw, m.normalized, scorer.model_id, m.notes)
    return report
