"""Scoring one generated item with every scorer of the run, as soon as it arrives: each scorer's value
(raw, 0-100, model), a scorer that pays per file held to the money cap and booked per request, a scorer that
is unavailable or fails left out with a note (never a made-up value), and the element check's answers kept
on the item for the rounds."""

from __future__ import annotations

import asyncio
import contextvars

from feedback_cli.errors import BudgetError, ScorerUnavailable
from feedback_cli.providers.base import SCORER_CALL_METER
from feedback_cli.runstate.ledger import LedgerMeter, ThreadedMeter
from feedback_cli.runstate.models import ItemRecord, ScoreEntry
from feedback_cli.scoring.base import measure
from feedback_cli.stages.base import StageContext


async def score_item(ctx: StageContext, kind: str, item: ItemRecord, prompt: str) -> None:
    assert item.artifact is not None
    path = ctx.abs(item.artifact.path)
    loop = asyncio.get_running_loop()
    executor = ctx.services.scoring_executor
    entries: list[ScoreEntry] = []
    scorers = ctx.services.image_scorers() if kind == "image" else ctx.services.video_scorers()
    for name, scorer in scorers.items():
        if isinstance(scorer, ScorerUnavailable):
            note_once(ctx, f"scorer {name} unavailable: {scorer.line()}")
            continue
        ctx.emit("item_scoring", f"{item.key}: {name}", key=item.key, scorer=name)
        # a scorer that pays per file (the element check) is not started when the whole check would pass the
        # cap; each of its requests is then held to the cap, recorded in flight and booked on its own (meter)
        try:
            if scorer.pays_per_call:
                ctx.ledger.check(scorer.call_estimate(), f"{name} {item.key}")
        except BudgetError as exc:
            note_once(ctx, f"scorer {name} left out of {item.key}: {exc.message}")
            continue
        what = f"{name} {item.key}"
        ledger_meter = LedgerMeter(
            ctx.ledger, stage=ctx.record.name, provider="openai", what=what, save=ctx.checkpoint, emit=ctx.emit
        )
        meter = ThreadedMeter(ledger_meter, loop)
        metered = contextvars.copy_context()  # the worker thread runs the scorer under this meter
        metered.run(SCORER_CALL_METER.set, meter)
        try:
            rows = await loop.run_in_executor(executor, metered.run, measure, scorer, [path], prompt)
        except BudgetError as exc:
            note_once(ctx, f"scorer {name} left out of {item.key}: {exc.message}")
            continue
        except ScorerUnavailable as exc:
            note_once(ctx, f"scorer {name} unavailable: {exc.line()}")
            continue
        except Exception as exc:  # a scorer bug or a model failure: left out, never a made-up value
            note_once(ctx, f"scorer {name} failed on {item.key}: {type(exc).__name__}: {exc}")
            continue
        for dimension, m in rows[0].items():
            entries.append(
                ScoreEntry(
                    scorer=dimension,
                    raw=m.raw,
                    normalized=m.normalized,
                    model_id=scorer.model_id,
                    notes=list(m.notes),
                )
            )
    for scorer in scorers.values():  # the element check keeps every answer, not only its mean (rounds)
        found = getattr(scorer, "check_for", None)
        check = found(path) if found is not None else None
        if check is not None:
            item.extra.elements = check.model_dump(mode="json")
    item.scores = entries
    item.scored = True
    ctx.emit("item_scored", item.key, key=item.key, scores={e.scorer: round(e.normalized, 2) for e in entries})
    await ctx.checkpoint()


def note_once(ctx: StageContext, note: str) -> None:
    if note not in ctx.record.notes:
        ctx.record.notes.append(note)
        ctx.emit("notice", note)
