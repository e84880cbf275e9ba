"""What the agents exchange: requests in, pydantic replies out (the same for offline and cloud)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

PromptKind = Literal["image", "video"]


class Draft(BaseModel):
    """The writer's output."""

    prompt: str = Field(min_length=1)
    rationale: str = ""


class Critique(BaseModel):
    """The critic's verdict on a prompt: a score per rubric criterion and overall, and what to fix."""

    scores: dict[str, float] = Field(default_factory=dict)
    overall: float = Field(ge=0, le=100)
    feedback: list[str] = Field(default_factory=list)
    faithful: bool = True


class HistoryEntry(BaseModel):
    prompt: str
    score: float
    feedback: list[str] = Field(default_factory=list)


class WriteRequest(BaseModel):
    kind: PromptKind
    source: str  # the user's original idea (or the image prompt for video)
    history: list[HistoryEntry] = Field(default_factory=list)  # best first
    critique: Critique | None = None  # the latest verdict to act on
    human_feedback: str | None = None
    context: str = ""  # e.g. the clip's role in a storyboard, or the video plan
    seed: int = 0


class CritiqueRequest(BaseModel):
    kind: PromptKind
    source: str
    prompt: str


class Entity(BaseModel):
    id: str = Field(description="stable id such as e1, used across scenes")
    description: str


class Scene(BaseModel):
    index: int
    description: str
    entity_ids: list[str] = Field(default_factory=list)
    background: str = ""
    camera_motion: str = ""
    action: str = ""
    mood: str = ""
    duration_s: float = 5.0


class VideoPlan(BaseModel):
    """VideoDirectorGPT-style layout: scenes, entities with stable ids, background, camera,
    consistency groups (entities that must look the same across scenes)."""

    schema_version: int = 1
    scenes: list[Scene]
    entities: list[Entity]
    background: str
    camera_motion: str
    consistency_groups: list[list[str]] = Field(default_factory=list)


class PlanRequest(BaseModel):
    source: str  # the image prompt the video continues
    scenes: int = 1
    seed: int = 0


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
