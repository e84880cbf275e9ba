"""Human review between stages: what the engine asks, and the interface a UI implements."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, Field

from feedback_cli.runstate.models import ReviewDecision


class Candidate(BaseModel):
    key: str
    path: str | None
    absolute_path: str | None
    status: str
    overall: float | None
    scores: dict[str, float] = Field(default_factory=dict)
    cost_usd: float = 0.0
    latency_s: float | None = None
    error: str | None = None
    group: str = ""
    round: int = 1  # regenerating adds rounds; every round's candidates stay pickable


class ReviewRequest(BaseModel):
    stage: str
    title: str
    kind: str  # "images", "frames", "videos"
    prompt: str = ""
    candidates: list[Candidate]
    picks: dict[str, str] = Field(default_factory=dict)  # group -> current pick key
    can_pick: bool = True
    can_regenerate: bool = True
    extra: dict[str, Any] = Field(default_factory=dict)


class Reviewer(Protocol):
    def review(self, request: ReviewRequest) -> ReviewDecision:
        """Ask the person; runs on a worker thread (the UI may block on the terminal).

        A reviewer may also have `cancel()`: the engine calls it (from another thread) when the run is
        interrupted while the review is open; the question on screen should then end as Ctrl-C would."""
        ...
