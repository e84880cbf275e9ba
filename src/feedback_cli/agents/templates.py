"""Prompt templates for the cloud agents (writer, critic, planner, describer) and the replies they return.

The reply models are what the LLM fills through structured outputs: flat, every field required, no
free-form dicts (strict JSON schema rejects those), converted to fbloop's own models afterwards.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pydantic import BaseModel, Field, create_model

from feedback_cli.agents.rubric import rubric
from feedback_cli.agents.schemas import CritiqueRequest, PlanRequest, WriteRequest


class WriterReply(BaseModel):
    prompt: str
    rationale: str


class CriticReply(BaseModel):
    """The critic's reply; `scores` is a model with one required 0-100 field per rubric criterion, so the
    strict schema itself holds the critic to the rubric (see `critic_reply`)."""

    scores: BaseModel
    overall: float = Field(ge=0, le=100)
    feedback: list[str]
    faithful: bool


@cache
def critic_reply(kind: str) -> type[CriticReply]:
    fields: dict[str, Any] = {c.name: (int, Field(ge=0, le=100, description=c.question)) for c in rubric(kind)}
    scores = create_model(f"{kind.title()}RubricScores", **fields)
    return create_model(f"{kind.title()}CriticReply", __base__=CriticReply, scores=(scores, ...))


class EntityReply(BaseModel):
    id: str
    description: str


class SceneReply(BaseModel):
    description: str
    entity_ids: list[str]
    background: str
    camera_motion: str
    action: str
    mood: str
    duration_s: float


class PlanReply(BaseModel):
    scenes: list[SceneReply]
    entities: list[EntityReply]
    background: str
    camera_motion: str
    consistency_groups: list[list[str]]


WHAT = {"image": "a text-to-image prompt", "video": "an image-to-video motion prompt"}


def writer_messages(request: WriteRequest) -> list[dict[str, str]]:
    criteria = "\n".join(f"- {c.name}: {c.question}" for c in rubric(request.kind))
    system = (
        f"You write {WHAT[request.kind]}. Keep every element of the user's original idea; make it specific "
        f"and visual. A critic will score it 0-100 on these criteria:\n{criteria}\n"
        "Do not repeat a prompt that already scored badly: change what the critique points at. "
        "Return the prompt and one sentence on what you changed."
    )
    parts = [f"Original idea: {request.source}"]
    if request.kind == "video":
        parts.append("The video starts from an image made with the prompt above; describe motion, camera and pacing.")
    if request.context:
        parts.append(f"Context: {request.context}")
    if request.history:
        lines = [f"{i + 1}. score {h.score:.0f}: {h.prompt}" for i, h in enumerate(request.history[:5])]
        parts.append("Earlier prompts, best first:\n" + "\n".join(lines))
    if request.critique is not None:
        parts.append("Latest critique:\n" + "\n".join(f"- {f}" for f in request.critique.feedback))
    if request.human_feedback:
        parts.append(f"The person reviewing the results asks: {request.human_feedback}")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def critic_messages(request: CritiqueRequest) -> list[dict[str, str]]:
    criteria = "\n".join(f"- {c.name}: {c.question}" for c in rubric(request.kind))
    system = (
        f"You are a strict critic of {WHAT[request.kind]}s. Score the prompt 0-100 on each criterion, give an "
        f"overall 0-100, and concrete, actionable feedback for anything under 90.\nCriteria:\n{criteria}\n"
        "Set faithful=false if the prompt drops or changes an element of the original idea."
    )
    user = f"Original idea: {request.source}\n\nPrompt to score: {request.prompt}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def planner_messages(request: PlanRequest) -> list[dict[str, str]]:
    system = (
        "You are a video director planning a short clip sequence in the style of VideoDirectorGPT. Give exactly "
        f"{request.scenes} scene(s). List the entities with stable ids (e1, e2, ...) and use those ids in every "
        "scene they appear in; give the background, the camera motion, and consistency groups: lists of entity "
        "ids that must look the same across scenes. Each scene: description, action, camera motion, mood, "
        "duration in seconds."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": f"Image prompt: {request.source}"}]


DESCRIBE_PROMPT = (
    "Describe this image as a one-sentence idea for an image generator: the subject, the setting, the style "
    "and the dominant colours. Reply with the sentence only."
)


def json_mode_instructions(schema: dict) -> str:
    return "Reply with one JSON object, nothing else, matching this JSON schema:\n" + json.dumps(schema)
