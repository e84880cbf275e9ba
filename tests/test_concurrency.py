"""Concurrency, checked structurally (never by timing): items really are in flight together, under the
provider's limit, and each is scored as soon as it arrives while others are still being generated."""

from __future__ import annotations

import asyncio
from pathlib import Path

from feedback_cli.config import Settings
from feedback_cli.providers.base import ImageRequest, JobHook, MediaOutput, VideoRequest
from feedback_cli.providers.offline.media import OfflineMedia
from feedback_cli.runstate.events import EventBus
from feedback_cli.runstate.models import RunOptions, Workflow
from feedback_cli.workflow.api import execute, prepare_run


class StaggeredMedia(OfflineMedia):
    """The offline renderer, but item k takes k ticks, and it counts how many calls are in flight."""

    def __init__(self, settings: Settings, tick: float) -> None:
        super().__init__(settings)
        self.tick = tick
        self.in_flight = 0
        self.max_in_flight = 0

    async def _track(self, index: int, work) -> MediaOutput:  # type: ignore[no-untyped-def]
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.tick * index)
            return await work
        finally:
            self.in_flight -= 1

    async def generate_image(self, request: ImageRequest, job: JobHook) -> MediaOutput:
        return await self._track(request.seed % 100, super().generate_image(request, job))

    async def generate_video(self, request: VideoRequest, job: JobHook) -> MediaOutput:
        return await self._track(request.seed % 100, super().generate_video(request, job))


def run_image_stage(tmp_path: Path, n: int, limit: int) -> tuple[StaggeredMedia, list[str]]:
    settings = Settings(offline_concurrency=limit, offline_image_size=96)
    options = RunOptions(workflow=Workflow.image_only, num_image_variations=n, seed=1, max_iterations_image=1)
    prepared = prepare_run(options, settings, output_dir=tmp_path, source_prompt="a blue kite")
    media = StaggeredMedia(settings, tick=0.03)
    prepared.services._media = media
    order: list[str] = []
    bus = EventBus()
    bus.subscribe(
        lambda e: order.append(f"{e.kind}:{e.data.get('key', '')}") if e.stage == "image_generation" else None
    )
    asyncio.run(execute(prepared, bus))
    return media, order


def test_items_are_in_flight_together_up_to_the_limit(tmp_path: Path) -> None:
    media, _ = run_image_stage(tmp_path / "a", n=8, limit=8)
    assert media.max_in_flight == 8
    media, _ = run_image_stage(tmp_path / "b", n=8, limit=3)
    assert media.max_in_flight == 3


def test_an_item_is_scored_before_the_last_one_is_downloaded(tmp_path: Path) -> None:
    _, order = run_image_stage(tmp_path, n=6, limit=6)
    first_scored = order.index("item_scored:image_01")
    last_finished = order.index("item_finished:image_06")
    assert first_scored < last_finished, order
