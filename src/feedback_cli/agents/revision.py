"""Revision between rounds: the critic says what to change, the writer revises the prompt keeping what worked.

The critic gets the round's prompt, its best candidates (as images or keyframe strips) with their scores and
the questions they failed; the writer gets the critic's notes and the memory of every earlier round (its
prompt, best score and failed questions), as Idea2Img keeps it. Human feedback from an interactive review
goes through the same request (`human_feedback`), so a person's "make the sky darker" and a failed "Is the
sky dark?" take one path. The element questions stay frozen: the revised prompt is never shown to the
element check (OPT2I scores against the original prompt).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from feedback_cli.agents.questions import Question

REVISION_SCHEMA_VERSION = 1
#: an answer's score at or above this passes (P(yes) >= 0.5, as the element check's parent rule)
PASS = 0.5
MAX_ADDITIONS = 4  # offline: phrases added per revision, so a prompt cannot grow without bound


class FailedQuestion(BaseModel):
    id: int
    category: str
    question: str
    phrase: str = ""
    args: list[str] = Field(default_factory=list)
    p_yes: float | None = None
    zeroed_by_parent: bool = False


class CandidateSummary(BaseModel):
    key: str
    overall: float | None = None
    elements: float | None = None
    failed: list[FailedQuestion] = Field(default_factory=list)
    #: the questions it passed (what worked)
    passed: list[str] = Field(default_factory=list)
    #: absolute path of the image (or the keyframe strip of a video) the critic looks at; not stored
    image: str | None = Field(default=None, exclude=True)


class RoundMemory(BaseModel):
    """One earlier round as the writer remembers it."""

    round: int
    prompt: str
    best_overall: float | None = None
    best_elements: float | None = None
    failed: list[str] = Field(default_factory=list)
    changes: list[str] = Field(default_factory=list)
    human_feedback: str | None = None


class RevisionRequest(BaseModel):
    kind: Literal["image", "video"]
    #: the user's own prompt (what they asked for)
    source: str
    #: the prompt of the round just finished
    prompt: str
    round: int
    #: best first
    candidates: list[CandidateSummary]
    history: list[RoundMemory] = Field(default_factory=list)
    human_feedback: str | None = None
    target: float | None = None
    seed: int = 0


class RevisionNotes(BaseModel):
    """The critic's reply: what to change, what to keep."""

    changes: list[str]
    keep: list[str]


class Revision(BaseModel):
    schema_version: int = REVISION_SCHEMA_VERSION
    prompt: str = Field(min_length=1)
    rationale: str = ""
    changes: list[str] = Field(default_factory=list)
    keep: list[str] = Field(default_factory=list)
    human_feedback: str | None = None


def failed_questions(questions: list[Question], answers: list[dict]) -> list[FailedQuestion]:
    """The questions a candidate failed (P(yes) < 0.5, or zeroed by a failed parent), with their phrases."""
    by_id = {q.id: q for q in questions}
    out = []
    for a in answers:
        if a.get("score", 0.0) >= PASS or a["question_id"] not in by_id:
            continue
        q = by_id[a["question_id"]]
        out.append(
            FailedQuestion(
                id=q.id,
                category=q.category,
                question=q.question,
                phrase=q.phrase,
                args=q.args,
                p_yes=a.get("p_yes"),
                zeroed_by_parent=bool(a.get("zeroed_by_parent")),
            )
        )
    return out


# --- offline: deterministic ---------------------------------------------------------------------------------


def _emphasis(q: FailedQuestion) -> str:
    """The phrase that asks again for a failed element, in words the offline renderer parses."""
    phrase = q.phrase or " ".join(q.args) or q.question.rstrip("?")
    if q.category == "count":
        return f"exactly {phrase}"
    if q.category == "text":
        return f"the text {phrase}"
    if q.category == "style":
        return f"{phrase} style"
    return phrase


def offline_revision(request: RevisionRequest) -> Revision:
    """Keep the prompt, add the failed elements' phrases (root causes first: a question zeroed by its parent
    is fixed by fixing the parent), then the person's feedback."""
    best = request.candidates[0] if request.candidates else None
    failed = [q for q in (best.failed if best else []) if not q.zeroed_by_parent]
    earlier = {c for memory in request.history for c in memory.changes}
    additions: list[str] = []
    changes: list[str] = []
    for q in failed:
        phrase = _emphasis(q)
        if phrase in additions or len(additions) >= MAX_ADDITIONS:
            continue
        additions.append(phrase)
        again = " again (asked for in an earlier round)" if any(phrase in c for c in earlier) else ""
        changes.append(f"{q.question} was answered no: add '{phrase}'{again}")
    if request.human_feedback and request.human_feedback.strip():
        feedback = request.human_feedback.strip().rstrip(".")
        additions.append(feedback)
        changes.append(f"the person asked: {feedback}")
    passed = list(best.passed) if best else []
    prompt = ", ".join([request.prompt.rstrip(" ,."), *additions]) if additions else request.prompt
    rationale = ("added " + "; ".join(additions)) if additions else "nothing failed; the prompt is kept"
    return Revision(
        prompt=prompt, rationale=rationale, changes=changes, keep=passed, human_feedback=request.human_feedback
    )


# --- cloud: the critic's and the writer's messages ----------------------------------------------------------

WHAT = {"image": "text-to-image", "video": "image-to-video"}


def _history_lines(request: RevisionRequest) -> str:
    lines = []
    for m in request.history:
        score = "unscored" if m.best_overall is None else f"best score {m.best_overall:.0f}"
        failed = "; ".join(m.failed) or "none"
        line = f"Round {m.round} ({score}): {m.prompt}\n  failed: {failed}"
        if m.human_feedback:
            line += f"\n  the person asked: {m.human_feedback}"
        lines.append(line)
    return "\n".join(lines)


def critic_text(request: RevisionRequest) -> str:
    parts = [
        f"What the user asked for: {request.source}",
        f"Round {request.round} prompt: {request.prompt}",
    ]
    for i, c in enumerate(request.candidates):
        score = "unscored" if c.overall is None else f"overall {c.overall:.0f}/100"
        elements = "" if c.elements is None else f", elements {c.elements:.0f}/100"
        failed = (
            "; ".join(
                f"{q.question}{' (not asked: its parent failed)' if q.zeroed_by_parent else ''}" for q in c.failed
            )
            or "none"
        )
        parts.append(f"Candidate {i + 1} ({'shown' if c.image else 'not shown'}, {score}{elements}); failed: {failed}")
    if request.history:
        parts.append("Earlier rounds:\n" + _history_lines(request))
    if request.human_feedback:
        parts.append(f"The person reviewing the results asks: {request.human_feedback}")
    return "\n\n".join(parts)


CRITIC_SYSTEM = (
    "You are the critic in a {what} refinement loop. You see the best candidates of a round, their scores and "
    "the yes/no questions about the user's request that they failed. Say what to change in the prompt so the "
    "next round fixes the failures (one concrete change per failure, most important first; nothing the user "
    "did not ask for; do not repeat a change that already failed in an earlier round, try another wording), "
    "and what to keep because it worked."
)
WRITER_SYSTEM = (
    "You revise a {what} prompt between rounds of generation. Apply the critic's changes and keep what worked; "
    "keep every element of the user's request; prefer rewording and reordering over piling on words; keep it "
    "under 120 words. Earlier rounds and their scores are your memory: do not return a prompt that already "
    "scored badly. Return the revised prompt and one sentence on what you changed."
)


def writer_text(request: RevisionRequest, notes: RevisionNotes) -> str:
    parts = [
        f"What the user asked for: {request.source}",
        f"Round {request.round} prompt: {request.prompt}",
        "Critic - change:\n" + "\n".join(f"- {c}" for c in notes.changes),
        "Critic - keep:\n" + "\n".join(f"- {k}" for k in notes.keep),
    ]
    memory = [
        *request.history,
        RoundMemory(
            round=request.round,
            prompt=request.prompt,
            best_overall=request.candidates[0].overall if request.candidates else None,
            failed=[q.question for q in (request.candidates[0].failed if request.candidates else [])],
        ),
    ]
    parts.append("Every round so far:\n" + _history_lines(request.model_copy(update={"history": memory})))
    if request.human_feedback:
        parts.append(f"The person reviewing the results asks: {request.human_feedback}")
    return "\n\n".join(parts)
