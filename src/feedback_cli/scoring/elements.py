"""The element check: every frozen DSG question answered on a candidate, with DSG's parent rule.

Each question is answered alone, in a fresh context that holds the question and the candidate and nothing
else (never a rewritten prompt): with the cloud answerer that is one VQAScore call (P("yes") from the first
token's logprobs, `scoring.vqascore`) per question; for a video the candidate is a strip of three frames
sampled at its start, middle and end. DSG's rule: a question whose parent was answered no (P(yes) < 0.5) is
scored 0 and not asked. The element score is the mean over all questions (zeroed ones stay in the
denominator) x 100, and every answer is kept (`ElementCheck`).

Answerers:
- `vqa`: VQAScore through the OpenAI-compatible vision model (`FBLOOP_VQA_MODEL`), the same function as the
  `vqascore` scorer, with the question as the text.
- `offline`: reads the offline renderer's pixels (`providers.offline.scene`): a simulation of the mechanism,
  not evidence of quality. A question the pixels cannot answer (a word outside the vocabulary) gets 0 with a
  note: the offline renderer never draws it.

Without questions bound by the stage (e.g. `fbloop score --scorer elements`), the prompt given is decomposed
with the offline decomposition, and the check says so in `decomposer`.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from feedback_cli.agents.questions import Question, QuestionSet
from feedback_cli.errors import ScorerUnavailable
from feedback_cli.scoring.base import ImageScorer, VideoScorer

if TYPE_CHECKING:
    from feedback_cli.config import Settings

ELEMENTS_SCHEMA_VERSION = 1
#: P(yes) below this is "answered no" for DSG's parent rule
NO_BELOW = 0.5
VQA_SUFFIX = " Please answer yes or no."
STRIP_PREFIX = "These are three frames of one video, at its start, middle and end, from left to right. "
Answerer = Literal["vqa", "offline"]


class ElementAnswer(BaseModel):
    question_id: int
    category: str
    question: str
    #: the answerer's P(yes); None when not asked (a parent was answered no) or unanswerable
    p_yes: float | None = None
    asked: bool = True
    zeroed_by_parent: bool = False
    #: what counts in the mean: p_yes, or 0 when zeroed or unanswerable
    score: float = Field(ge=0, le=1)
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.score < NO_BELOW


class ElementCheck(BaseModel):
    schema_version: int = ELEMENTS_SCHEMA_VERSION
    #: 0-100: mean score over every question
    score: float
    answers: list[ElementAnswer]
    answerer: str
    decomposer: str = ""

    def failed(self) -> list[ElementAnswer]:
        return [a for a in self.answers if a.failed]


def check(questions: Sequence[Question], ask: Callable[[Question], tuple[float | None, str]]) -> ElementCheck:
    """Answer `questions` in id order (parents first) with DSG's parent rule; `ask` gives (P(yes), note)."""
    answers: dict[int, ElementAnswer] = {}
    for q in sorted(questions, key=lambda q: q.id):
        failed_parents = [p for p in q.parent_ids if p in answers and answers[p].failed]
        if failed_parents:
            answers[q.id] = ElementAnswer(
                question_id=q.id,
                category=q.category,
                question=q.question,
                asked=False,
                zeroed_by_parent=True,
                score=0.0,
                note=f"not asked: parent {', '.join(map(str, failed_parents))} answered no",
            )
            continue
        p_yes, note = ask(q)
        score = 0.0 if p_yes is None or math.isnan(p_yes) else min(1.0, max(0.0, p_yes))
        answers[q.id] = ElementAnswer(
            question_id=q.id, category=q.category, question=q.question, p_yes=p_yes, score=score, note=note
        )
    ordered = [answers[q.id] for q in sorted(questions, key=lambda q: q.id)]
    mean = sum(a.score for a in ordered) / len(ordered) if ordered else 0.0
    return ElementCheck(score=round(100.0 * mean, 3), answers=ordered, answerer="")


# --- answerers ---------------------------------------------------------------------------------------------


def _frames(path: Path) -> list[np.ndarray]:
    """The start, middle and end frames of a video (a still gives itself three times)."""
    from feedback_cli.scoring.video_io import read_video

    frames = read_video(path).frames
    n = len(frames)
    return [frames[0], frames[n // 2], frames[n - 1]]


def offline_answers(path: Path, kind: str) -> Callable[[Question], tuple[float | None, str]]:
    """An `ask` that reads the offline render's pixels (never the prompt or the file's metadata)."""
    from feedback_cli.providers.offline import scene

    if kind == "video":
        frames = _frames(path)
    else:
        with Image.open(path) as img:
            frames = [np.asarray(img.convert("RGB"))]
    readings = [scene.read(Image.fromarray(f)) for f in frames]
    height = frames[0].shape[0]

    def ask(q: Question) -> tuple[float | None, str]:
        if q.category in ("motion", "camera"):
            if kind != "video":
                return None, "a still has no motion"
            return _offline_motion(q, frames), ""
        values = [scene.answer(q, r, height) for r in readings]
        if any(v is None for v in values):
            return None, "outside the offline vocabulary: the offline renderer never draws it"
        return float(np.mean([v for v in values if v is not None])), ""

    return ask


def _offline_motion(q: Question, frames: list[np.ndarray]) -> float:
    """Motion: the end frame differs from the start. Camera: which move (zoom in/out, pan) maps start to end."""
    first, last = (f[: max(8, f.shape[0] - 20)].astype(np.float64) for f in (frames[0], frames[-1]))
    still = float(np.mean((first - last) ** 2))
    if q.category == "motion":
        return float(still > 4.0)
    wanted = " ".join(q.args).lower() or q.question.lower()
    errors = {"none": still}
    h, w = first.shape[:2]

    def zoomed(img: np.ndarray, z: float) -> np.ndarray:
        cw, ch = w / z, h / z
        box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
        pil = Image.fromarray(img.astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR, box=box)
        return np.asarray(pil, dtype=np.float64)

    zooms = [1.05 + 0.05 * i for i in range(6)]
    errors["zoom in"] = min(float(np.mean((zoomed(first, z) - last) ** 2)) for z in zooms)
    errors["zoom out"] = min(float(np.mean((zoomed(last, z) - first) ** 2)) for z in zooms)
    shifts = range(1, max(2, w // 6))
    errors["pan"] = min(float(np.mean((first[:, s:] - last[:, : w - s]) ** 2)) for s in shifts)
    best = min(errors, key=lambda k: errors[k])
    target = next((k for k in ("zoom in", "zoom out", "pan") if k in wanted), None)
    return float(best == target)


class _VQAAsker:
    """VQAScore per question through the `vqascore` scorer's own call (one fresh request per question)."""

    def __init__(self, settings: Settings) -> None:
        from feedback_cli.scoring.vqascore import VQAScoreScorer

        if settings.vqa_backend != "openai":
            raise ScorerUnavailable("elements: the element check asks questions through FBLOOP_VQA_BACKEND=openai")
        self.vqa = VQAScoreScorer(settings)  # raises ScorerUnavailable when it cannot run

    def answers(self, path: Path, kind: str, work: Path) -> Callable[[Question], tuple[float | None, str]]:
        image = path
        prefix = ""
        if kind == "video":
            frames = _frames(path)
            strip = np.concatenate(frames, axis=1)
            image = work / f"{path.stem}_start_middle_end.png"
            Image.fromarray(strip).save(image)
            prefix = STRIP_PREFIX

        def ask(q: Question) -> tuple[float | None, str]:
            value = self.vqa._score_one(image, q.question, text=prefix + q.question + VQA_SUFFIX)
            return float(value.raw), "; ".join(value.notes)

        return ask


def default_answerer(settings: Settings) -> Answerer:
    """`vqa` when the agents (an OpenAI-compatible server, which also answers VQAScore) are real, else
    `offline`; a run binds its own choice (`bind`), this is for `fbloop score` and direct use."""
    from feedback_cli.providers.registry import resolve_backend

    try:
        choice = resolve_backend(settings.backend, settings, roles=("agents",))
    except Exception:  # a cloud backend without its keys: the VQA check cannot run either
        return "offline"
    return "vqa" if choice.providers.get("agents", "offline") != "offline" else "offline"


class _ElementsBase:
    """What the image and video scorers share: the bound questions, the answerer, the kept checks."""

    kind: ClassVar[str] = "image"
    #: scored where the stage runs, never on a shared scorer actor (`fbloop batch --executor ray`): it holds
    #: the stage's bound questions, and it has no model to share (pixels offline, an API call otherwise)
    local_only: ClassVar[bool] = True
    pays_per_call: ClassVar[bool] = True  # through VQA; offline its `call_estimate` is 0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.questions: QuestionSet | None = None
        self.answerer: Answerer = default_answerer(settings)
        self._asker: _VQAAsker | None = _VQAAsker(settings) if self.answerer == "vqa" else None
        #: the last check of each scored file (resolved path -> check), for the stage to keep
        self.checks: dict[str, ElementCheck] = {}

    def bind(self, questions: QuestionSet, answerer: Answerer | None = None) -> None:
        """Freeze the stage's questions (made once from the user's own prompt) for every round."""
        self.questions = questions
        if answerer is not None and answerer != self.answerer:
            self.answerer = answerer
            self._asker = _VQAAsker(self.settings) if answerer == "vqa" else None

    @property
    def model_id(self) -> str:
        if self.answerer == "vqa":
            return f"elements:vqascore:{self.settings.vqa_model}"
        return "elements:offline-pixels"

    def call_estimate(self) -> float | None:
        """USD the check of one file may cost (every question asked), for the budget check before it runs."""
        if self._asker is None:
            return 0.0
        price = self._asker.vqa.call_estimate()
        questions = len(self.questions.questions) if self.questions is not None else 0
        return None if price is None else price * questions

    def questions_for(self, prompt: str) -> QuestionSet:
        if self.questions is not None:
            return self.questions
        from feedback_cli.providers.offline.scene import decompose

        return decompose(prompt, self.kind)

    def check_file(self, path: Path, prompt: str) -> ElementCheck:
        questions = self.questions_for(prompt)
        if not questions.questions:  # nothing to check is not a score of 0: the scorer is left out
            raise ScorerUnavailable(f"elements: no element questions for this prompt ({questions.model})")
        with tempfile.TemporaryDirectory(prefix="fbloop-elements-") as work:
            if self._asker is not None:
                ask = self._asker.answers(Path(path), self.kind, Path(work))
            else:
                ask = offline_answers(Path(path), self.kind)
            result = check(questions.questions, ask)
        result = result.model_copy(update={"answerer": self.model_id, "decomposer": questions.model})
        self.checks[str(Path(path).resolve())] = result
        return result

    def check_for(self, path: Path) -> ElementCheck | None:
        return self.checks.get(str(Path(path).resolve()))


class ElementsScorer(_ElementsBase, ImageScorer):
    """Raw: mean over the frozen questions of P(yes) (DSG parent rule), 0..1. 0-100: 100 x raw."""

    name: ClassVar[str] = "elements"
    raw_range: ClassVar[str] = "0..1 (mean P(yes) over the DSG questions, parent rule applied)"
    default_weight: ClassVar[float] = 1.0

    def score(self, images: Sequence[Path], prompt: str) -> list[float]:
        return [self.check_file(Path(p), prompt).score / 100.0 for p in images]

    def normalize(self, raw: float) -> float:
        return 100.0 * min(1.0, max(0.0, raw))


class VideoElementsScorer(_ElementsBase, VideoScorer):
    """The element check of a video on its start, middle and end frames; one dimension, `elements`."""

    name: ClassVar[str] = "video_elements"
    kind: ClassVar[str] = "video"
    dimensions: ClassVar[tuple[str, ...]] = ("elements",)
    default_weights: ClassVar[dict[str, float]] = {"elements": 1.0}

    def score(self, videos: Sequence[Path], prompt: str) -> dict[str, list[float]]:
        return {"elements": [self.check_file(Path(p), prompt).score / 100.0 for p in videos]}

    def normalize(self, dimension: str, raw: float) -> float:
        return 100.0 * min(1.0, max(0.0, raw))
