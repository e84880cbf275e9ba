"""Offline writer, critic, planner and describer driven by the rubric (no LLM)."""

from __future__ import annotations

import asyncio
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from feedback_cli.agents.questions import QuestionSet, QuestionsRequest
from feedback_cli.agents.revision import Revision, RevisionRequest, offline_revision
from feedback_cli.agents.rubric import Criterion, content_words, covers, rubric
from feedback_cli.agents.schemas import (
    Critique,
    CritiqueRequest,
    Draft,
    Entity,
    PlanRequest,
    Scene,
    VideoPlan,
    WriteRequest,
)
from feedback_cli.config import Settings
from feedback_cli.providers.base import AgentReply
from feedback_cli.providers.offline import scene

MODEL = "offline-rubric"
PARTIAL = 75.0  # one keyword of a criterion
FULL = 95.0  # two or more
MISSING = 20.0
MAX_ADDITIONS = 4  # per writer turn, so the loop takes a few iterations like a real one

COLOUR_NAMES: dict[str, tuple[int, int, int]] = {
    "black": (10, 10, 10),
    "white": (245, 245, 245),
    "grey": (128, 128, 128),
    "red": (200, 30, 30),
    "orange": (240, 140, 30),
    "yellow": (240, 220, 50),
    "green": (40, 160, 60),
    "teal": (20, 140, 140),
    "blue": (30, 70, 200),
    "purple": (120, 50, 170),
    "pink": (240, 130, 180),
    "brown": (120, 75, 40),
}


def _stable(text: str) -> int:
    return zlib.crc32(text.encode())


def criterion_score(criterion: Criterion, source: str, prompt: str) -> float:
    if criterion.name == "subject":
        wanted = content_words(source)[:8]
        if not wanted:
            return 100.0
        present = content_words(prompt)
        return round(100.0 * sum(1 for w in wanted if w in present) / len(wanted), 1)
    hits = covers(criterion, prompt)
    return FULL if hits >= 2 else PARTIAL if hits == 1 else MISSING


def offline_critique(kind: str, source: str, prompt: str) -> Critique:
    scores: dict[str, float] = {}
    feedback: list[str] = []
    for criterion in rubric(kind):
        value = criterion_score(criterion, source, prompt)
        scores[criterion.name] = value
        if criterion.name == "subject" and value < 100:
            feedback.append("subject: keep every element of the original idea")
        elif value <= MISSING:
            feedback.append(f"{criterion.name}: missing. {criterion.question}")
        elif value < FULL and criterion.name != "subject":
            feedback.append(f"{criterion.name}: make it more specific")
    overall = round(sum(scores.values()) / len(scores), 1)
    return Critique(scores=scores, overall=overall, feedback=feedback, faithful=scores["subject"] >= 60)


def _pick_phrase(criterion: Criterion, prompt: str, seed: int) -> str | None:
    lowered = prompt.lower()
    options = [p for p in criterion.phrases if p.lower() not in lowered]
    if not options:
        return None
    return options[(seed + _stable(criterion.name)) % len(options)]


def offline_write(request: WriteRequest) -> Draft:
    kind = request.kind
    base = request.history[0].prompt if request.history else request.source
    if kind == "video" and not request.history:
        base = f"{request.source.rstrip('. ')}. Motion: {request.context}" if request.context else base
    critique = request.critique or offline_critique(kind, request.source, base)
    by_name = {c.name: c for c in rubric(kind)}
    ordered = sorted((name for name in critique.scores if name != "subject"), key=lambda n: (critique.scores[n], n))
    additions: list[str] = []
    for name in ordered:
        if len(additions) >= MAX_ADDITIONS or critique.scores[name] >= FULL:
            break
        phrase = _pick_phrase(by_name[name], base + " " + " ".join(additions), request.seed)
        if phrase:
            additions.append(phrase)
    if critique.scores.get("subject", 100) < 100:
        missing = [w for w in content_words(request.source) if w not in content_words(base)]
        if missing:
            additions.insert(0, "with " + " ".join(missing))
    if request.human_feedback:
        additions.append(request.human_feedback.strip().rstrip("."))
    prompt = ", ".join([base.rstrip(" ,."), *additions]) if additions else base
    rationale = "added " + "; ".join(additions) if additions else "no rubric gaps left; kept the best prompt"
    return Draft(prompt=prompt, rationale=rationale)


def offline_plan(request: PlanRequest) -> VideoPlan:
    words = content_words(request.source)
    subjects = words[:3] or ["subject"]
    entities = [Entity(id=f"e{i + 1}", description=word) for i, word in enumerate(subjects)]
    camera = next(
        (p for p in rubric("video")[2].phrases if p.split()[-1] in request.source.lower()),
        rubric("video")[2].phrases[request.seed % len(rubric("video")[2].phrases)],
    )
    background = " ".join(words[3:7]) or "the setting of the start frame"
    scenes = [
        Scene(
            index=i + 1,
            description=f"scene {i + 1} of {request.scenes}: {' '.join(subjects)}",
            entity_ids=[e.id for e in entities],
            background=background,
            camera_motion=camera,
            action=rubric("video")[1].phrases[(request.seed + i) % len(rubric("video")[1].phrases)],
            mood=rubric("video")[6].phrases[(request.seed + i) % len(rubric("video")[6].phrases)],
            duration_s=5.0,
        )
        for i in range(request.scenes)
    ]
    return VideoPlan(
        scenes=scenes,
        entities=entities,
        background=background,
        camera_motion=camera,
        consistency_groups=[[e.id for e in entities]] if request.scenes > 1 else [],
    )


def dominant_colours(path: Path, count: int = 2) -> list[str]:
    with Image.open(path) as img:
        small = np.asarray(img.convert("RGB").resize((32, 32)), dtype=np.float64).reshape(-1, 3)
    names = list(COLOUR_NAMES)
    table = np.array([COLOUR_NAMES[n] for n in names], dtype=np.float64)
    nearest = np.argmin(((small[:, None, :] - table[None]) ** 2).sum(-1), axis=1)
    counts = np.bincount(nearest, minlength=len(names))
    return [names[i] for i in np.argsort(-counts)[:count] if counts[i] > 0]


def offline_describe(path: Path) -> str:
    words = [w for w in path.stem.replace("-", " ").replace("_", " ").split() if w.isalpha()]
    subject = " ".join(words) or "an untitled scene"
    colours = dominant_colours(path)
    return f"{subject}, dominated by {' and '.join(colours)} tones"


class OfflineAgents:
    name = "offline"

    def __init__(self, settings: Settings) -> None:
        self.latency = (
            settings.offline_latency_llm if settings.offline_latency_llm is not None else settings.offline_latency
        )

    async def _delay(self) -> float:
        start = time.perf_counter()
        if self.latency:
            await asyncio.sleep(self.latency)
        return start

    async def write(self, request: WriteRequest) -> AgentReply[Draft]:
        start = await self._delay()
        draft = offline_write(request)
        return AgentReply(
            draft, MODEL, latency_s=time.perf_counter() - start, request={"role": "writer", "kind": request.kind}
        )

    async def critique(self, request: CritiqueRequest) -> AgentReply[Critique]:
        start = await self._delay()
        verdict = offline_critique(request.kind, request.source, request.prompt)
        return AgentReply(
            verdict, MODEL, latency_s=time.perf_counter() - start, request={"role": "critic", "kind": request.kind}
        )

    async def plan_video(self, request: PlanRequest) -> AgentReply[VideoPlan]:
        start = await self._delay()
        return AgentReply(
            offline_plan(request),
            MODEL,
            latency_s=time.perf_counter() - start,
            request={"role": "planner", "scenes": request.scenes},
        )

    async def describe_image(self, image: Path) -> AgentReply[str]:
        start = await self._delay()
        text = await asyncio.to_thread(offline_describe, image)
        return AgentReply(
            text, MODEL, latency_s=time.perf_counter() - start, request={"role": "describer", "image": image.name}
        )

    async def decompose(self, request: QuestionsRequest) -> AgentReply[QuestionSet]:
        start = await self._delay()
        questions = scene.decompose(request.source, request.kind)
        return AgentReply(
            questions,
            scene.OFFLINE_DECOMPOSER,
            latency_s=time.perf_counter() - start,
            request={"role": "questions", "kind": request.kind},
        )

    async def revise(self, request: RevisionRequest) -> AgentReply[Revision]:
        start = await self._delay()
        return AgentReply(
            offline_revision(request),
            MODEL,
            latency_s=time.perf_counter() - start,
            request={"role": "critic+writer", "kind": request.kind, "round": request.round},
        )

    def estimate_call_cost(self) -> float:
        return 0.0

    async def aclose(self) -> None:
        return None
