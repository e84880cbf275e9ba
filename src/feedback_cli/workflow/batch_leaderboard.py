"""What `fbloop inspect BATCH_DIR` knows about a batch, as a typed, versioned report: a leaderboard of its
prompts (one row each, ranked by any score), the best and worst prompts, counts, cost and time.

The report is the `fbloop inspect BATCH_DIR --json` contract (`format` fbloop-batch-inspection,
`schema_version` bumped when a key is removed, renamed or changes meaning); `ui/batch_inspect.py` renders
it as a table or an HTML grid. Read-only: the rows are brought up to date from their runs' checkpoints in
memory, nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from feedback_cli.errors import CheckpointError, InputError
from feedback_cli.workflow.batch import reconcile, result_row
from feedback_cli.workflow.batch_state import load_batch

BATCH_INSPECT_FORMAT = "fbloop-batch-inspection"
BATCH_INSPECT_SCHEMA_VERSION = 1
#: sort keys that are not scores; lower is better for them
ASCENDING_KEYS = ("cost_usd", "time_s")
#: how many best and worst prompts the view names
EXTREMES = 3
#: the scores a leaderboard is sorted by unless told: a pick's overall score, else a prompt's score (of the
#: latest stage in the workflow that has one)
DEFAULT_SORT_SCORES = ("best_overall", "prompt_score")


class LeaderboardRow(BaseModel):
    id: str
    status: str
    prompt: str
    #: relative to the batch folder
    run_dir: str
    best_image: str | None
    best_video: str | None
    best_videos: list[str]
    #: "{stage}.{score}" -> value
    scores: dict[str, float | None]
    cost_usd: float
    time_s: float
    error: str | None
    #: 1 for the best by the sort key; None when the row has no value for it
    rank: int | None = None
    sort_value: float | None = None


class BatchInspectReport(BaseModel):
    format: Literal["fbloop-batch-inspection"] = BATCH_INSPECT_FORMAT
    schema_version: int = BATCH_INSPECT_SCHEMA_VERSION
    batch_id: str
    batch_dir: str
    status: str
    executor: str
    prompts_file: str
    rows_total: int
    #: status -> rows
    counts: dict[str, int]
    not_finished: int
    total_cost_usd: float
    max_cost: float | None
    wall_time_s: float
    score_columns: list[str]
    sort_key: str | None
    sort_ascending: bool
    leaderboard: list[LeaderboardRow]
    #: ids of the best and of the worst rows by the sort key (never the same row in both)
    best: list[str]
    worst: list[str]
    notices: list[str]

    def json_data(self) -> dict[str, Any]:
        """The `--json` document."""
        return self.model_dump(mode="json")


def _stage_order() -> dict[str, int]:
    from feedback_cli.stages.registry import ordered

    return {cls.name: cls.number for cls in ordered()}


def default_sort_key(columns: list[str]) -> str | None:
    """The latest stage's pick score (`video_generation.best_overall` before `image_generation.best_overall`),
    else the latest prompt score, else the first column."""
    order = _stage_order()
    for score in DEFAULT_SORT_SCORES:
        matching = [c for c in columns if c.partition(".")[2] == score]
        if matching:
            return max(matching, key=lambda c: order.get(c.partition(".")[0], -1))
    return columns[0] if columns else None


def resolve_sort_key(requested: str | None, columns: list[str]) -> str | None:
    """A full column (`image_generation.best_overall`), a unique ending (`best_pickscore`), cost_usd or time_s."""
    if requested is None:
        return default_sort_key(columns)
    if requested in ASCENDING_KEYS or requested in columns:
        return requested
    matches = [c for c in columns if c.endswith("." + requested) or c.split(".", 1)[-1] == requested]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join([*columns, *ASCENDING_KEYS])
    if matches:
        raise InputError(f"--sort {requested} matches several scores: {', '.join(matches)}; name one in full")
    raise InputError(f"--sort {requested} is not a score of this batch; choose one of: {known}")


def _value(row: LeaderboardRow, key: str | None) -> float | None:
    if key is None:
        return None
    value = getattr(row, key) if key in ASCENDING_KEYS else row.scores.get(key)
    return float(value) if isinstance(value, int | float) else None


def inspect_batch(target: Path, sort: str | None = None) -> BatchInspectReport:
    root, state = load_batch(target)
    try:
        reconcile(root, state)  # in memory only: the runs may have moved on since the driver last wrote
    except CheckpointError as exc:
        state.notices.append(f"a run could not be read: {exc.line()}")
    rows = [LeaderboardRow.model_validate(result_row(r)) for r in state.rows]
    columns = sorted({k for r in rows for k in r.scores})
    key = resolve_sort_key(sort, columns)
    ascending = key in ASCENDING_KEYS

    def order(row: LeaderboardRow) -> tuple[bool, float, str]:
        value = _value(row, key)
        if value is None:
            return (True, 0.0, row.id)
        return (False, value if ascending else -value, row.id)

    ranked = sorted(rows, key=order)
    for rank, row in enumerate(ranked, start=1):
        row.rank = rank if _value(row, key) is not None else None
        row.sort_value = _value(row, key)
    valued = [r for r in ranked if r.sort_value is not None]
    extremes = min(EXTREMES, len(valued) // 2)  # best and worst never name the same prompt
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return BatchInspectReport(
        batch_id=state.batch_id,
        batch_dir=str(root),
        status=state.status,
        executor=state.executor,
        prompts_file=state.prompts_file,
        rows_total=len(rows),
        counts=counts,
        not_finished=sum(1 for r in rows if r.status != "completed"),
        total_cost_usd=round(sum(r.cost_usd for r in rows), 6),
        max_cost=state.max_cost,
        wall_time_s=state.wall_time_s,
        score_columns=columns,
        sort_key=key,
        sort_ascending=ascending,
        leaderboard=ranked,
        best=[r.id for r in valued[:extremes]],
        worst=[r.id for r in reversed(valued[len(valued) - extremes :])],
        notices=state.notices,
    )
