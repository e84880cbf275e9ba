"""Generating a stage's media items: concurrent jobs under the provider's limit, each checked against the
money cap before it is paid for, stored and checked as soon as it arrives and scored at once (scoring overlaps
the other items' generation, item_scoring.py), and the checkpoint saved after every item so a crash never
loses or re-pays a finished one.

An item whose job may still be running at the provider (fbloop gave up waiting and could not cancel it, or
kept it on purpose) is in flight, never failed: the stage stops without finishing, so nothing billed later is
left out of the ledger, and a resume re-attaches to the job. A job is booked once, however often it is
re-attached.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from feedback_cli.errors import BudgetError, FbloopError, StageFailed, StorageError
from feedback_cli.media_checks import MediaInvalid, check_image, check_video
from feedback_cli.providers.base import ImageRequest, JobHook, JobInFlight, VideoRequest
from feedback_cli.runstate.models import ItemExtra, ItemRecord, utcnow
from feedback_cli.stages.base import StageContext
from feedback_cli.stages.item_scoring import score_item
from feedback_cli.tasks import gather_or_cancel

#: how a job can end without delivering anything: an item that asked for a retry gets a new job then
ENDED_UNDELIVERED = ("failed", "canceled", "gone")


class JobsInFlight(StageFailed):
    """Items of the stage have jobs whose end fbloop has not seen; a plain resume re-attaches to them."""


@dataclass
class ItemSpec:
    key: str
    index: int
    seed: int
    kind: Literal["image", "video"]
    build: Callable[[], ImageRequest | VideoRequest]
    group: str = ""  # e.g. "clip_01": selection happens per group
    round: int | None = None  # the round the item is made in (None: outside rounds)
    prompt: str | None = None  # the prompt it is made from and scored against, when it differs per round


def _record_for(ctx: StageContext, spec: ItemSpec) -> ItemRecord:
    for item in ctx.record.items:
        if item.key == spec.key:
            return item
    item = ItemRecord(
        key=spec.key,
        index=spec.index,
        seed=spec.seed,
        extra=ItemExtra(group=spec.group, round=spec.round, prompt=spec.prompt),
    )
    ctx.record.items.append(item)
    return item


async def run_items(ctx: StageContext, specs: Sequence[ItemSpec], score_prompt: str) -> list[ItemRecord]:
    """Generate, store, check and score every spec; return their records (input order)."""
    limit = ctx.services.media_limit()
    records = [_record_for(ctx, spec) for spec in specs]

    refused: list[BudgetError] = []
    # A job re-attached from an earlier process is not checked against the cap again (it is paid for), but until
    # its cost lands in the ledger the items that start meanwhile must count it, or together they pass the cap.
    unbooked = {
        spec.key: _estimate(ctx, spec) or 0.0
        for spec, item in zip(specs, records, strict=True)
        if item.job_id and item.status not in ("succeeded", "failed") and not _booked(ctx, item)
    }
    ctx.ledger.hold(sum(unbooked.values()))

    def release(key: str) -> None:
        ctx.ledger.release(unbooked.pop(key, 0.0))

    async def one(spec: ItemSpec, item: ItemRecord) -> None:
        # failed items stay failed until `fbloop resume --retry-failed`: re-running them pays again
        if item.status not in ("succeeded", "failed"):
            async with limit:
                if refused and not item.job_id:  # the cap was reached: start nothing more; collect what is paid for
                    return
                try:
                    try:
                        await _generate(ctx, spec, item)
                    finally:
                        release(spec.key)
                    # taken once the re-attached job is seen to fail; a job still in flight keeps asking
                    recreate = item.status == "failed" and item.recreate_if_ended
                    if item.status == "failed":
                        item.recreate_if_ended = False
                    if recreate and item.job_state in ENDED_UNDELIVERED:
                        # --retry-failed re-attached first: the job is over without an output, so a new one
                        _fresh_attempt(ctx, item)
                        await _generate(ctx, spec, item)
                except BudgetError as exc:
                    refused.append(exc)
                    return
                if item.status in ("succeeded", "failed"):
                    item.recreate_if_ended = False
        if item.status == "succeeded" and not item.scored:
            await score_item(ctx, spec.kind, item, spec.prompt or score_prompt)

    try:
        await gather_or_cancel(one(spec, item) for spec, item in zip(specs, records, strict=True))
    finally:
        for key in list(unbooked):  # items that never got to run (the cap was reached, or a cancel)
            release(key)
    in_flight = [r for r in records if r.status != "succeeded" and r.job_state == "in_flight"]
    if in_flight:  # their jobs may still be billed: the stage cannot finish without seeing them end
        await ctx.checkpoint()
        keys = ", ".join(r.key for r in in_flight)
        raise JobsInFlight(
            f"{ctx.record.name}: {len(in_flight)} of {len(records)} items still in flight, their jobs not seen to end"
            f" ({keys}; {in_flight[0].key}: {(in_flight[0].error or 'no reason recorded').rstrip('.')})"
        )
    if refused:  # items already paid for are finished and checkpointed; the rest waits for a higher cap
        await ctx.checkpoint()
        raise refused[0]
    return records


def _estimate(ctx: StageContext, spec: ItemSpec, request: ImageRequest | VideoRequest | None = None) -> float | None:
    media = ctx.services.media
    request = request or spec.build()
    if spec.kind == "video":
        end_frame = getattr(request, "end_image", None) is not None
        return media.estimate_video_cost(end_frame, ctx.services.settings.video_duration_s)
    return media.estimate_image_cost()


def _booked(ctx: StageContext, item: ItemRecord) -> bool:
    """The item's job is in the ledger (its provider bills it once, so it is booked once)."""
    return item.job_id is not None and any(
        e.provider == item.provider and e.detail.get("job_id") == item.job_id and e.usd > 0 for e in ctx.state.ledger
    )


async def _generate(ctx: StageContext, spec: ItemSpec, item: ItemRecord) -> None:
    media = ctx.services.media
    request = spec.build()
    is_video = spec.kind == "video"
    model = (
        media.video_model(with_end_frame=getattr(request, "end_image", None) is not None)
        if is_video
        else media.image_model()
    )
    estimate = _estimate(ctx, spec, request)
    what = f"{spec.key} ({model})"
    # a recorded job is re-attached and already paid for: it is not held against the cap again
    # (run_items holds its estimate until its cost lands), and never refused: collecting it costs nothing more
    paid_for = item.job_id is not None
    if not paid_for:
        ctx.ledger.check(estimate, what)
    # an earlier attempt that started but recorded no job may have been created just before a crash
    orphan_since = item.started_at if item.job_id is None and item.status == "pending" else None
    item.provider, item.model = media.name, model
    item.request = _describe(request)
    item.started_at = item.started_at or utcnow()
    item.error = None
    ctx.emit("item_started", spec.key, key=spec.key, index=spec.index, seed=spec.seed, media=spec.kind)
    if orphan_since is None and item.job_id is None:
        # on disk before the paid request goes out, so a crash in between leaves a trail to find the job by
        await ctx.checkpoint()
    start = time.perf_counter()

    async def submitted(job_id: str) -> None:
        item.job_id = job_id
        item.status = "submitted"
        item.job_state = "in_flight"
        ctx.emit("item_submitted", spec.key, key=spec.key, job_id=job_id)
        await ctx.checkpoint()

    claimed = frozenset(i.job_id for r in ctx.state.stages for i in r.items if i.job_id and i is not item)
    paid_usd: list[float] = []

    def paid(usd: float) -> None:
        paid_usd.append(usd)
        if _booked(ctx, item):
            return  # re-attached to a job already booked (its output failed before): the provider bills it once
        item.cost_usd = round(usd, 6)
        ctx.ledger.add(ctx.record.name, media.name, model, spec.key, usd, job_id=item.job_id)

    def retrying(message: str) -> None:
        note = f"{spec.key}: {message}"
        ctx.record.notes.append(note)
        ctx.emit("notice", note, key=spec.key)

    def unanswered(since: str) -> None:
        item.unanswered_since = since

    def settled(state: str) -> None:
        item.job_state = state  # type: ignore[assignment]

    def canceled(message: str) -> None:
        item.canceled_by_fbloop = utcnow()
        note = f"{spec.key}: {message}"
        ctx.record.notes.append(note)
        ctx.emit("job_canceled", note, key=spec.key, job_id=item.job_id)
        ctx.emit("notice", note, key=spec.key)

    hook = JobHook(
        item.job_id,
        submitted,
        orphan_since=orphan_since,
        claimed=claimed,
        retrying=retrying,
        paid=paid,
        unanswered=unanswered,
        settled=settled,
        canceled=canceled,
    )
    try:
        with contextlib.nullcontext() if paid_for else ctx.ledger.reserve(estimate, what):
            output = await (
                media.generate_video(request, hook)  # type: ignore[arg-type]
                if is_video
                else media.generate_image(request, hook)  # type: ignore[arg-type]
            )
            # paid once the provider delivered, whatever the file turns out to be: into the ledger now
            item.job_id = output.job_id or item.job_id
            item.job_state = "succeeded"
            item.model = output.model
            if not paid_usd:  # backends that do not report payment early (offline) are booked here
                paid(output.cost_usd)
        if output.request:
            item.request = {**item.request, **output.request}
        item.extra.metrics = output.metrics
        relative = ctx.rel(f"{spec.key}{output.extension}")
        artifact = ctx.folder.write_bytes(relative, output.data, spec.kind)
        await asyncio.to_thread(check_video if is_video else check_image, ctx.abs(relative))
    except (BudgetError, StorageError):
        raise  # a full or read-only disk stops the run; the job stays recorded so a resume fetches it again
    except JobInFlight as exc:
        _in_flight(ctx, item, exc.message)
        await ctx.checkpoint()
        return
    except MediaInvalid as exc:
        _fail(ctx, item, f"provider output is not a valid {spec.kind}: {exc}")
        await ctx.checkpoint()
        return
    except (FbloopError, OSError, ValueError) as exc:
        _fail(ctx, item, getattr(exc, "message", None) or str(exc) or type(exc).__name__)
        await ctx.checkpoint()
        return
    item.artifact = artifact
    item.latency_s = round(time.perf_counter() - start, 3)
    item.finished_at = utcnow()
    item.status = "succeeded"
    ctx.emit(
        "item_finished", spec.key, key=spec.key, path=artifact.path, cost_usd=item.cost_usd, latency_s=item.latency_s
    )
    await ctx.checkpoint()


def _fail(ctx: StageContext, item: ItemRecord, message: str) -> None:
    item.status = "failed"
    item.error = message
    item.finished_at = utcnow()
    ctx.emit("item_failed", f"{item.key}: {message}", key=item.key, error=message)


def _in_flight(ctx: StageContext, item: ItemRecord, message: str) -> None:
    """The job may still finish and be billed: not failed; a resume re-attaches (or, with no id, looks)."""
    item.status = "submitted" if item.job_id else "pending"
    item.job_state = "in_flight"
    item.error = message
    if item.job_id is None and item.unanswered_since:
        # the lookup on resume must reach back to the request that went unanswered
        item.started_at = min(item.started_at or item.unanswered_since, item.unanswered_since)
    ctx.emit("item_in_flight", f"{item.key}: {message}", key=item.key, job_id=item.job_id, error=message)


def _fresh_attempt(ctx: StageContext, item: ItemRecord) -> None:
    note = f"{item.key}: prediction {item.job_id} had ended {item.job_state} at the provider; trying again"
    ctx.record.notes.append(note)
    ctx.emit("notice", note, key=item.key)
    item.status, item.job_state, item.job_id, item.error = "pending", None, None, None
    item.started_at = item.finished_at = None
    item.unanswered_since = None
    item.scored = False


def _describe(request: ImageRequest | VideoRequest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in vars(request).items():
        out[key] = value.name if isinstance(value, Path) else value
    return out
