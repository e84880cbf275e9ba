"""What a picking stage (images, videos) reports about its picks: one pick per group (one image, one
video, or one video per storyboard clip), chosen across every round of that group, and the stage's
summary scores taken from those picks only. The stages and a human pick at the review share this."""

from __future__ import annotations

from collections.abc import Sequence

from feedback_cli.runstate.models import ItemRecord, StageRecord


def earlier_rounds(record: StageRecord, group: str, round_no: int) -> list[ItemRecord]:
    """The group's candidates from rounds before `round_no` (kept when the stage was regenerated)."""
    return [item for item in record.items if item.extra.round_no < round_no and item.extra.group == group]


def pick_scores(picked: Sequence[ItemRecord], prefix: str | None = None) -> dict[str, float | None]:
    """`best_overall` (the mean over the picks, one per group) and each pick's scores, keyed
    `{prefix}_{scorer}`; the prefix is the pick's group unless given (images use "best")."""
    overall = [item.overall for item in picked if item.overall is not None]
    scores: dict[str, float | None] = {"best_overall": round(sum(overall) / len(overall), 3) if overall else None}
    for item in picked:
        label = prefix if prefix is not None else item.extra.group
        for entry in item.scores:
            scores[f"{label}_{entry.scorer}".lstrip("_")] = round(entry.normalized, 3)
    return scores
