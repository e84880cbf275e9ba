"""Selection: each scored candidate's overall value under the run's weights and selection rule, the best one
of a round (or across rounds), and `scores.json`, every candidate of every group with every scorer and the
group's pick."""

from __future__ import annotations

from collections.abc import Sequence

from feedback_cli.errors import ScorerUnavailable, StageFailed
from feedback_cli.runstate.models import ItemRecord
from feedback_cli.scoring.combine import pick_best, weighted_mean
from feedback_cli.stages.base import StageContext
from feedback_cli.stages.item_scoring import note_once

SCORES_SCHEMA_VERSION = 1


def weights_for(ctx: StageContext, kind: str) -> dict[str, float]:
    settings = ctx.services.settings
    weights: dict[str, float] = {}
    if kind == "image":
        for name, scorer in ctx.services.image_scorers().items():
            if not isinstance(scorer, ScorerUnavailable):
                weights[name] = settings.image_weights.get(name, scorer.default_weight)
    else:
        for scorer in ctx.services.video_scorers().values():
            if not isinstance(scorer, ScorerUnavailable):
                for dim in scorer.dimensions:
                    weights[dim] = settings.video_weights.get(dim, scorer.default_weights.get(dim, 1.0))
    return weights


def score_0_100(ctx: StageContext, kind: str, record: ItemRecord) -> float | None:
    """The candidate's 0-100 overall score: its `overall` under the weighted rule; under the rank rule (where
    `overall` is a mean rank over the pool, lower is better, and shifts as the pool grows) the weighted mean
    of its 0-100 values, so a round's target and patience always compare one 0-100 figure."""
    if ctx.services.settings.selection != "rank":
        return record.overall
    weights = weights_for(ctx, kind)
    value = weighted_mean({e.scorer: e.normalized for e in record.scores if e.scorer in weights}, weights)
    return None if value is None else round(value, 3)


def select(
    ctx: StageContext, kind: str, records: Sequence[ItemRecord], earlier: Sequence[ItemRecord] = ()
) -> ItemRecord:
    """Give each succeeded candidate its overall score and return the best one.

    `records` are this round's candidates: too few of them succeeded fails the stage (the round is what
    `--retry-failed` redoes). `earlier` are the same group's candidates from earlier rounds (regenerate
    with feedback): the pick is made across all rounds, because a new round is more candidates for the
    same slot, and the overall values (a mean rank depends on the whole set) are recomputed over them.
    """
    ok = [r for r in records if r.status == "succeeded"]
    minimum = min(ctx.services.settings.min_successful_items, len(records))
    if len(ok) < max(1, minimum):
        errors = "; ".join(sorted({r.error or "unknown error" for r in records if r.status == "failed"}))
        failure = StageFailed(f"{ctx.record.name}: {len(ok)} of {len(records)} items succeeded ({errors})")
        failure.resume_flags = "--retry-failed"  # a plain resume keeps failed items failed
        raise failure
    # oldest first: ties go to the earlier candidate, as within a round
    pool = [r for r in earlier if r.status == "succeeded"] + ok
    rule = ctx.services.settings.selection
    weights = weights_for(ctx, kind)
    candidates = [{e.scorer: e.normalized for e in r.scores if e.scorer in weights} for r in pool]
    best_index, overall = pick_best(candidates, weights, rule)
    for record, value in zip(pool, overall, strict=True):
        record.overall = value
    if best_index is None:
        note_once(ctx, "no scorer produced a value; the first successful candidate is kept unranked")
        return ok[0]  # nothing to compare by: the newest round, made from the latest feedback
    return pool[best_index]


def write_scores(ctx: StageContext, kind: str, groups: dict[str, tuple[list[ItemRecord], ItemRecord]]) -> None:
    """scores.json: per group (a clip, or all), every candidate of every round with every scorer (raw,
    0-100, model), overall, and the group's one pick."""
    scorers = ctx.services.image_scorers() if kind == "image" else ctx.services.video_scorers()
    described = {
        name: (
            {"status": "unavailable", "reason": s.line()}
            if isinstance(s, ScorerUnavailable)
            else {"status": "ok", "model_id": s.model_id, "offline_statistics": s.offline}
        )
        for name, s in scorers.items()
    }
    body = {
        "schema_version": SCORES_SCHEMA_VERSION,
        "kind": kind,
        "backend": ctx.state.options.backend.value,
        "selection": ctx.services.settings.selection,
        "weights": weights_for(ctx, kind),
        "scorers": described,
        "groups": {
            group: {
                "best": best.key,
                "best_path": best.artifact.path if best.artifact else None,
                "candidates": [
                    {
                        "key": r.key,
                        "round": r.extra.round_no,
                        "path": r.artifact.path if r.artifact else None,
                        "status": r.status,
                        "seed": r.seed,
                        "model": r.model,
                        "job_id": r.job_id,
                        "scores": {
                            e.scorer: {
                                "raw": e.raw,
                                "normalized": round(e.normalized, 3),
                                "model_id": e.model_id,
                                **({"notes": e.notes} if e.notes else {}),
                            }
                            for e in r.scores
                        },
                        "overall": r.overall,
                        "cost_usd": r.cost_usd,
                        "latency_s": r.latency_s,
                        "error": r.error,
                    }
                    for r in records
                ],
            }
            for group, (records, best) in groups.items()
        },
    }
    ctx.record.artifacts = [a for a in ctx.record.artifacts if a.path != ctx.rel("scores.json")]
    ctx.record.artifacts.append(ctx.folder.write_json(ctx.rel("scores.json"), body))
