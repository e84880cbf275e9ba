"""Rounds of a generation stage (issue 13): generate, check the elements, revise the prompt, generate again.

A round is N candidates from one prompt. After it, every candidate of every round so far competes (the best
so far never leaves the pool); the stage stops when the pick reaches the target, the rounds run out, the pick
has not improved for `patience` rounds, or the next round's estimate would pass `--max-cost`, and the trace
says which. Otherwise the critic and the writer revise the prompt from the round's best candidates and the
questions they failed (with the memory of every earlier round), and the next round starts with new seeds.

The questions are made once per stage from the user's own prompt and frozen (`questions.json`); the element
check answers them with the candidate alone, never with a revised prompt. Every step is checkpointed: a round's
revised prompt before its first item, each item as items are, so a resume continues inside the same round
and pays for nothing twice.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from feedback_cli.agents.questions import QuestionSet, QuestionsRequest
from feedback_cli.agents.revision import (
    CandidateSummary,
    RevisionRequest,
    RoundMemory,
    failed_questions,
)
from feedback_cli.errors import BudgetError, ScorerUnavailable
from feedback_cli.runstate.models import ItemRecord, RevisionRecord, RoundRecord
from feedback_cli.scoring.vqascore import VQA_PROMPT_TOKENS
from feedback_cli.stages.agent_calls import ask
from feedback_cli.stages.base import StageContext
from feedback_cli.stages.generation import ItemSpec, run_items
from feedback_cli.stages.picks import earlier_rounds
from feedback_cli.stages.selection import score_0_100, select

if TYPE_CHECKING:
    from feedback_cli.scoring.elements import ElementCheck

ROUNDS_SCHEMA_VERSION = 1
ELEMENTS = "elements"
#: the video scorer's name (one name per class); its dimension is `elements` as for images
VIDEO_ELEMENTS = "video_elements"
#: best candidates the critic looks at
CRITIC_CANDIDATES = 2

Kind = Literal["image", "video"]


@dataclass
class RoundRules:
    kind: Kind
    max_rounds: int
    target: float
    patience: int
    per_round: int
    #: this round's item specs from (round number, its prompt)
    specs: Callable[[int, str], list[ItemSpec]]
    group: str = ""
    scope: str = ""  # where the rounds live in `outputs` ("" for the stage, or a clip)
    end_frame: bool = False  # video: made from a start and an end frame (its price)


class RoundLog:
    """The stage's (or a clip's) rounds, typed, written back to the stage's outputs on every save."""

    def __init__(self, ctx: StageContext, scope: str) -> None:
        self.ctx, self.scope = ctx, scope
        self.rounds = ctx.record.round_log(scope)

    async def save(self) -> None:
        self.ctx.record.set_round_log(self.rounds, self.scope)
        await self.ctx.checkpoint()


def elements_scorer(ctx: StageContext, kind: Kind) -> Any:
    """The run's `elements` scorer (added to the scorers when the user did not name it), or None."""
    names = ctx.services.image_scorer_names if kind == "image" else ctx.services.video_scorer_names
    name = ELEMENTS if kind == "image" else VIDEO_ELEMENTS
    if name not in names:
        names.append(name)  # rounds learn from the element check: it joins the overall score
    scorers = ctx.services.image_scorers() if kind == "image" else ctx.services.video_scorers()
    scorer = scorers.get(name)
    if isinstance(scorer, ScorerUnavailable) or scorer is None:
        return None
    return scorer


async def ensure_questions(ctx: StageContext, kind: Kind, source: str) -> QuestionSet:
    """The stage's frozen questions: from the checkpoint, or made once now from the user's own prompt."""
    stored = ctx.record.outputs.get("questions")  # typed on read: the frozen QuestionSet
    if stored:
        return QuestionSet.model_validate(stored)
    agents = ctx.services.agents
    ctx.ledger.check(agents.estimate_call_cost(), f"the {kind} element questions")
    # booked as its responses arrive (also when the call then fails), as every agent call of a stage
    reply = await ask(ctx, f"questions {kind}", agents.decompose(QuestionsRequest(kind=kind, source=source)))
    questions = reply.value
    ctx.record.outputs["questions"] = questions.model_dump(mode="json")
    artifact = ctx.folder.write_json(ctx.rel("questions.json"), questions.model_dump(mode="json"))
    ctx.record.artifacts = [a for a in ctx.record.artifacts if a.path != artifact.path] + [artifact]
    notice = f"{len(questions.questions)} element questions from the prompt ({questions.model})"
    if not questions.questions and questions.unparsed:  # say why, or an empty check looks like a broken one
        notice += f": none of its words are in its vocabulary ({', '.join(questions.unparsed[:8])})"
    ctx.emit("notice", notice)
    await ctx.checkpoint()
    return questions


def round_cost_estimate(ctx: StageContext, rules: RoundRules, questions: int) -> float | None:
    """What one more round would cost: its candidates, their element questions and the revision's two calls."""
    services = ctx.services
    media = services.media
    if rules.kind == "image":
        per_item = media.estimate_image_cost()
    else:
        per_item = media.estimate_video_cost(rules.end_frame, float(services.settings.video_duration_s))
    agent_call = services.agents.estimate_call_cost()
    if per_item is None or agent_call is None:
        return None
    vqa = 0.0
    if services.backend != "offline" and questions:
        from feedback_cli.providers.prices import load_prices

        price = load_prices(services.settings.price_file).llm_cost(services.settings.vqa_model, VQA_PROMPT_TOKENS, 1)
        if price is None:
            return None
        vqa = price * questions * rules.per_round
    return rules.per_round * per_item + vqa + 2 * agent_call


def _elements(item: ItemRecord | None) -> ElementCheck | None:
    """The element check kept on the item (typed), or None when it did not run."""
    if item is None or item.extra.elements is None:
        return None
    from feedback_cli.scoring.elements import ElementCheck  # numpy and PIL: not at import

    return ElementCheck.model_validate(item.extra.elements)


def _summary(item: ItemRecord) -> CandidateSummary:
    check = _elements(item)
    return CandidateSummary(
        key=item.key,
        overall=item.overall,
        elements=check.score if check else None,
        failed=[],
        passed=[a.question for a in check.answers if not a.failed] if check else [],
    )


def _failed_texts(item: ItemRecord | None) -> list[str]:
    check = _elements(item)
    return [a.question for a in check.failed()] if check else []


def _item(ctx: StageContext, key: str | None) -> ItemRecord | None:
    return next((i for i in ctx.record.items if i.key == key), None) if key else None


def stop_reason(
    rounds: Sequence[RoundRecord] | Sequence[Mapping[str, Any]], rules: RoundRules, has_questions: bool
) -> str | None:
    """Why no further round runs, or None. `rounds` are finished rounds, each with `best_so_far_overall`."""
    rounds = [r if isinstance(r, RoundRecord) else RoundRecord.model_validate(r) for r in rounds]
    last = rounds[-1]
    best = last.best_so_far_overall
    if last.error:
        return f"failed: {last.error}; the best so far is kept (--retry-failed tries them again)"
    if last.feedback_round:
        return "feedback: the round asked for at the review is done"
    if best is not None and best >= rules.target:
        return f"target: the best score {best:.1f} reached the target {rules.target:.1f}"
    if len(rounds) >= rules.max_rounds:
        return f"rounds: {len(rounds)} of {rules.max_rounds} rounds done"
    if not has_questions:
        return "no element questions: nothing to revise from, so one round (best of N)"
    scores = [r.best_so_far_overall or 0.0 for r in rounds]
    improved_at = max((i for i in range(len(scores)) if i == 0 or scores[i] > scores[i - 1]), default=0)
    if len(rounds) - 1 - improved_at >= rules.patience:
        return f"patience: the best score has not improved for {len(rounds) - 1 - improved_at} round(s)"
    return None


async def run_rounds(ctx: StageContext, rules: RoundRules, base_prompt: str, source: str) -> ItemRecord:
    """Run (or resume) the stage's rounds and return the pick across all of them."""
    questions = await ensure_questions(ctx, rules.kind, source)
    # no question, no element check: the stage is best of N (the trace says so), scored as before rounds
    scorer = elements_scorer(ctx, rules.kind) if questions.questions else None
    real_agents = ctx.services.provider("agents") != "offline"
    if scorer is not None and not real_agents and ctx.services.provider("media") != "offline":
        # the offline answerer reads the offline renderer's own drawings; on a real model's images it would
        # answer nonsense, so without a vision model the check is left out rather than made up
        ctx.emit("notice", "the element check needs an OpenAI-compatible vision model for real images: left out")
        scorer = None
    if scorer is not None:
        scorer.bind(questions, answerer="vqa" if real_agents else "offline")
    elif questions.questions:
        ctx.emit("notice", "the element check cannot run: rounds revise without failed questions")
    log = RoundLog(ctx, rules.scope)
    rounds = log.rounds
    if not rounds:
        rounds.append(RoundRecord(round=1, prompt=base_prompt))
        await log.save()
    if ctx.human_feedback is not None:
        # one revised round per "regenerate" at the review, counted so a resume never asks for it twice
        asked = sum(1 for r in ctx.state.reviews if r.stage == ctx.record.name and r.action == "regenerate")
        made = sum(1 for r in rounds if r.feedback_round)
        if made < max(asked, 1):
            await _revise(ctx, rules, log, questions, source, human_feedback=ctx.human_feedback)
    for earlier in rounds[:-1]:  # `--retry-failed` made some of an earlier round's items pending again
        if _unfinished(ctx, rules, earlier):
            await _run_round(ctx, rules, log, earlier)
    while True:
        current = rounds[-1]
        if current.status != "done" or _unfinished(ctx, rules, current):
            await _run_round(ctx, rules, log, current)
        reason = stop_reason(rounds, rules, bool(questions.questions))
        if reason is None:
            estimate = round_cost_estimate(ctx, rules, len(questions.questions))
            try:  # the ledger's own rule: the run's cap, and in a batch the batch's shared budget
                ctx.ledger.check(estimate, f"{rules.kind} round {len(rounds) + 1}")
            except BudgetError as exc:
                shown = "an unknown amount" if estimate is None else f"about ${estimate:.4f}"
                reason = f"budget: round {len(rounds) + 1} would cost {shown} ({exc.message})"
        if reason is not None:
            ctx.record.set_stop_reason(reason, rules.scope)
            ctx.emit("notice", f"{rules.kind} rounds stopped: {reason}")
            break
        await _revise(ctx, rules, log, questions, source)
    # the pick across every round, oldest first (a tie goes to the earlier candidate)
    pool = [i for i in ctx.record.items if i.extra.group == rules.group and i.extra.round is not None]
    return select(ctx, rules.kind, pool)


def _unfinished(ctx: StageContext, rules: RoundRules, current: RoundRecord) -> bool:
    keys = {spec.key for spec in rules.specs(current.round, current.prompt)}
    return any(i.key in keys and i.status in ("pending", "submitted") for i in ctx.record.items)


async def _run_round(ctx: StageContext, rules: RoundRules, log: RoundLog, current: RoundRecord) -> None:
    number = current.round
    ctx.emit("notice", f"{rules.kind} round {number}: {current.prompt}")
    started = time.perf_counter()
    records = await run_items(ctx, rules.specs(number, current.prompt), current.prompt)
    earlier = earlier_rounds(ctx.record, rules.group, number)
    if number > 1 and not any(r.status == "succeeded" for r in records):
        # a later round that made nothing does not fail the stage: the best so far stays the pick
        previous = next(r for r in log.rounds if r.round == number - 1)
        current.status = "done"
        current.best_key = current.best_overall = current.best_elements = None
        current.failed = []
        current.best_so_far_key = previous.best_so_far_key
        current.best_so_far_overall = previous.best_so_far_overall
        current.error = f"no candidate of round {number} succeeded"
        current.wall_s = round(time.perf_counter() - started, 3)
        await log.save()
        return
    best = select(ctx, rules.kind, records, earlier=earlier)
    current.error = None  # a round `--retry-failed` made succeed
    # this round's own best by the same rule and values as the pick (a mean rank is better when lower);
    # ties go to the earlier candidate, as in `select`
    scored = [r for r in records if r.status == "succeeded" and r.overall is not None]
    better = min if ctx.services.settings.selection == "rank" else max
    round_best = better(scored, key=lambda r: r.overall or 0.0, default=None)
    check = _elements(round_best)
    current.status = "done"
    current.best_key = round_best.key if round_best else None
    current.best_overall = score_0_100(ctx, rules.kind, round_best) if round_best else None
    current.best_elements = check.score if check else None
    current.failed = _failed_texts(round_best)
    current.best_so_far_key = best.key
    current.best_so_far_overall = score_0_100(ctx, rules.kind, best)
    # this session's time on the round's items (a resumed round counts the part after the resume)
    current.wall_s = round(time.perf_counter() - started, 3)
    ctx.emit(
        "notice",
        f"{rules.kind} round {number}: best {current.best_overall}, "
        f"best so far {current.best_so_far_overall} ({best.key})",
        round=number,
        best=current.best_overall,
        best_so_far=current.best_so_far_overall,
    )
    await log.save()


async def _revise(
    ctx: StageContext,
    rules: RoundRules,
    log: RoundLog,
    questions: QuestionSet,
    source: str,
    human_feedback: str | None = None,
) -> None:
    """The critic and the writer turn the last round into the next round's prompt (checkpointed at once)."""
    rounds = log.rounds
    last = rounds[-1]
    number = last.round
    items = [
        i
        for i in ctx.record.items
        if i.extra.round == number and i.extra.group == rules.group and i.status == "succeeded"
    ]
    # the best first, by the selection rule (a mean rank is better when lower); unscored last
    rank = ctx.services.settings.selection == "rank"
    items.sort(key=lambda i: (i.overall is None, (i.overall or 0.0) if rank else -(i.overall or 0.0)))
    work = tempfile.TemporaryDirectory(prefix="fbloop-critic-")  # a video's keyframe strips, for this call only
    candidates = []
    for item in items[:CRITIC_CANDIDATES]:
        summary = _summary(item)
        summary.failed = failed_questions(questions.questions, (item.extra.elements or {}).get("answers", []))
        if item.artifact is not None:
            summary.image = str(_critic_image(ctx, rules.kind, item, Path(work.name)))
        candidates.append(summary)
    history = [
        RoundMemory(
            round=r.round,
            prompt=r.prompt,
            best_overall=r.best_overall,
            best_elements=r.best_elements,
            failed=list(r.failed),
            changes=list(r.revision.changes) if r.revision else [],
            human_feedback=r.human_feedback,
        )
        for r in rounds[:-1]
    ]
    request = RevisionRequest(
        kind=rules.kind,
        source=source,
        prompt=last.prompt,
        round=number,
        candidates=candidates,
        history=history,
        human_feedback=human_feedback,
        target=rules.target,
        seed=ctx.options.seed + number,
    )
    agents = ctx.services.agents
    estimate = agents.estimate_call_cost()
    ctx.ledger.check(None if estimate is None else 2 * estimate, f"the revision after {rules.kind} round {number}")
    start = time.perf_counter()
    with work:
        reply = await ask(ctx, f"revision {rules.scope or rules.kind} round {number}", agents.revise(request))
    revision = reply.value
    rounds.append(
        RoundRecord(
            round=number + 1,
            prompt=revision.prompt,
            human_feedback=human_feedback,
            feedback_round=human_feedback is not None,
            revision=RevisionRecord.model_validate(
                {
                    **revision.model_dump(mode="json"),
                    "model": reply.model,
                    "cost_usd": round(reply.cost_usd, 6),
                    "latency_s": round(time.perf_counter() - start, 3),
                    "critic_saw": [c.key for c in candidates],
                }
            ),
        )
    )
    ctx.emit("notice", f"{rules.kind} round {number + 1} prompt: {revision.prompt}")
    await log.save()


def _critic_image(ctx: StageContext, kind: Kind, item: ItemRecord, work: Path) -> Path:
    """What the critic looks at: the image, or a strip of a video's start, middle and end frames."""
    assert item.artifact is not None
    path = ctx.abs(item.artifact.path)
    if kind == "image":
        return path
    import numpy as np
    from PIL import Image

    from feedback_cli.scoring.elements import _frames

    strip = work / f"{item.key}_start_middle_end.png"
    Image.fromarray(np.concatenate(_frames(path), axis=1)).save(strip)
    return strip


def rounds_file(ctx: StageContext, scope: str = "") -> None:
    """rounds.json: each round's prompt, revision, best candidate, failed questions, and the stop reason."""
    body = {
        "schema_version": ROUNDS_SCHEMA_VERSION,
        "rounds": [r.model_dump(mode="json") for r in ctx.record.round_log(scope)],
        "stop_reason": ctx.record.stop_reason(scope),
    }
    name = f"rounds_{scope}.json" if scope else "rounds.json"
    artifact = ctx.folder.write_json(ctx.rel(name), body)
    ctx.record.artifacts = [a for a in ctx.record.artifacts if a.path != artifact.path] + [artifact]
