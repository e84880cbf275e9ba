"""The two-agent loop: the writer rewrites, the critic scores on the rubric, until the score reaches
the threshold, the iterations run out, or the score stops improving.

Every iteration is recorded on the stage record (with a `scope`, so storyboard clips keep separate
loops) and checkpointed, so a resumed run continues the loop instead of paying for it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from feedback_cli.agents.schemas import Critique, CritiqueRequest, HistoryEntry, PromptKind, WriteRequest
from feedback_cli.runstate.models import IterationRecord
from feedback_cli.stages.agent_calls import ask
from feedback_cli.stages.base import StageContext


@dataclass
class LoopResult:
    prompt: str
    score: float
    iterations: list[IterationRecord]
    stop_reason: str


def _history(iterations: list[IterationRecord]) -> list[HistoryEntry]:
    ranked = sorted(iterations, key=lambda it: (-it.critique.overall, it.iteration))
    return [HistoryEntry(prompt=it.prompt, score=it.critique.overall, feedback=it.critique.feedback) for it in ranked]


def _best(iterations: list[IterationRecord]) -> IterationRecord:
    return max(iterations, key=lambda it: (it.critique.overall, -it.iteration))


async def refine(
    ctx: StageContext,
    *,
    kind: PromptKind,
    source: str,
    max_iterations: int,
    threshold: float,
    context: str = "",
    scope: str = "",
    human_feedback: str | None = None,
    seed: int = 0,
) -> LoopResult:
    agents = ctx.services.agents
    done = [it for it in ctx.record.iterations if it.scope == scope]
    # A human's feedback starts a new round on top of what was done: the round gets the full iteration
    # budget and its result is the best of the round (the person asked for a change).
    marked = [i for i, it in enumerate(done) if it.human_feedback is not None]
    round_start = marked[-1] if marked else 0
    pending_feedback = human_feedback
    if human_feedback is not None and (not marked or done[marked[-1]].human_feedback != human_feedback):
        round_start = len(done)
    else:
        pending_feedback = None  # this feedback already has its iteration (a resumed round)
    budget = round_start + max_iterations
    stop_reason = ""
    while True:
        current = done[round_start:]
        if current and not pending_feedback:
            best = _best(current)
            latest = current[-1]
            if best.critique.overall >= threshold:
                stop_reason = f"score {best.critique.overall:.1f} reached the threshold {threshold:.1f}"
                break
            if len(current) >= 2 and latest.critique.overall <= _best(current[:-1]).critique.overall:
                stop_reason = f"score stopped improving ({latest.critique.overall:.1f})"
                break
        if len(done) >= budget:
            stop_reason = f"{len(current)} iterations done (max {max_iterations})"
            break
        history = _history(done)
        last_critique: Critique | None = done[-1].critique if done else None
        # two calls follow (writer, critic): both must fit under the cap before the first is made
        estimate = agents.estimate_call_cost()
        ctx.ledger.check(None if estimate is None else 2 * estimate, f"the next {kind} prompt iteration")
        start = time.perf_counter()
        ctx.emit("iteration_started", scope=scope, iteration=len(done) + 1, max_iterations=budget)
        # each call's responses are booked as they arrive (also when the call then fails)
        draft = await ask(
            ctx,
            f"writer {scope or kind}",
            agents.write(
                WriteRequest(
                    kind=kind,
                    source=source,
                    history=history,
                    critique=last_critique,
                    human_feedback=pending_feedback,
                    context=context,
                    seed=seed + len(done),
                )
            ),
        )
        verdict = await ask(
            ctx,
            f"critic {scope or kind}",
            agents.critique(CritiqueRequest(kind=kind, source=source, prompt=draft.value.prompt)),
        )
        iteration = IterationRecord(
            iteration=len(done) + 1,
            scope=scope,
            prompt=draft.value.prompt,
            rationale=draft.value.rationale,
            critique=verdict.value,
            writer_model=draft.model,
            critic_model=verdict.model,
            cost_usd=round(draft.cost_usd + verdict.cost_usd, 6),
            latency_s=round(time.perf_counter() - start, 3),
            human_feedback=pending_feedback,
        )
        pending_feedback = None
        ctx.record.iterations.append(iteration)
        done.append(iteration)
        ctx.emit(
            "iteration",
            f"{scope + ' ' if scope else ''}iteration {iteration.iteration}: {verdict.value.overall:.1f}",
            scope=scope,
            iteration=iteration.iteration,
            score=verdict.value.overall,
            threshold=threshold,
            max_iterations=budget,
        )
        await ctx.checkpoint()
    best = _best(done[round_start:] or done)
    return LoopResult(prompt=best.prompt, score=best.critique.overall, iterations=done, stop_reason=stop_reason)


def save_loop_files(ctx: StageContext, *, source: str, threshold: float, result: LoopResult) -> None:
    """iterations.json and final_prompt.txt in the stage folder (replacing an earlier round's record)."""
    written = [
        ctx.folder.write_json(
            ctx.rel("iterations.json"),
            {
                "schema_version": 1,
                "source_prompt": source,
                "threshold": threshold,
                "stop_reason": result.stop_reason,
                "iterations": [it.model_dump(mode="json") for it in result.iterations],
                "final_prompt": result.prompt,
                "final_score": result.score,
            },
        ),
        ctx.folder.write_text(ctx.rel("final_prompt.txt"), result.prompt + "\n"),
    ]
    paths = {a.path for a in written}
    ctx.record.artifacts = [a for a in ctx.record.artifacts if a.path not in paths] + written
