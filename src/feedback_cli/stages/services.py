"""What stages call out to: the chosen agents and media backends, the scorers, and the limits.

Backends and scorers are created once per process and reused (one HTTP client per provider per run);
scoring runs on one worker thread so model compute overlaps provider waits without fighting for cores.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from feedback_cli.errors import ScorerUnavailable
from feedback_cli.providers.registry import concurrency, load_agents, load_media, providers_for
from feedback_cli.scoring.registry import image_scorer, video_scorer

if TYPE_CHECKING:
    from feedback_cli.config import Settings
    from feedback_cli.providers.base import Agents, Media
    from feedback_cli.scoring.base import ImageScorer, VideoScorer


@dataclass
class Services:
    settings: Settings
    backend: str
    image_scorer_names: list[str]
    video_scorer_names: list[str]
    #: role -> provider name, as the run recorded it (each role is chosen on its own); else the backend's pair
    providers: dict[str, str] = field(default_factory=dict)
    _agents: Agents | None = None
    _media: Media | None = None
    _image_scorers: dict[str, ImageScorer | ScorerUnavailable] = field(default_factory=dict)
    _video_scorers: dict[str, VideoScorer | ScorerUnavailable] = field(default_factory=dict)
    _limits: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _executor: ThreadPoolExecutor | None = None
    #: where provider notices (retries and their waits) go; the orchestrator points it at the running stage
    notice_sink: Callable[[str], None] | None = None

    @property
    def agents(self) -> Agents:
        if self._agents is None:
            self._agents = load_agents(self.provider("agents"), self.settings)
            if hasattr(self._agents, "notify"):
                self._agents.notify = self.notice  # type: ignore[union-attr]
        return self._agents

    def provider(self, role: str) -> str:
        if role in self.providers:
            return self.providers[role]
        return providers_for(self.backend, self.settings)[role]

    def notice(self, message: str) -> None:
        if self.notice_sink is not None:
            self.notice_sink(message)

    @property
    def media(self) -> Media:
        if self._media is None:
            self._media = load_media(self.provider("media"), self.settings)
        return self._media

    def agents_limit(self) -> asyncio.Semaphore:
        """The concurrency limit shared by every agent (LLM) call of this run."""
        return self._limit("agents", self.agents.name)

    def media_limit(self) -> asyncio.Semaphore:
        """The concurrency limit shared by every media (image/video) job of this run."""
        return self._limit("media", self.media.name)

    def _limit(self, role: str, provider: str) -> asyncio.Semaphore:
        key = f"{role}:{provider}"
        if key not in self._limits:
            self._limits[key] = asyncio.Semaphore(concurrency(provider, self.settings))
        return self._limits[key]

    @property
    def scoring_executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fbloop-scoring")
        return self._executor

    def image_scorers(self) -> dict[str, ImageScorer | ScorerUnavailable]:
        """Each named scorer, or the reason it cannot run (kept so the trace can say why)."""
        for name in self.image_scorer_names:
            if name not in self._image_scorers:
                try:
                    self._image_scorers[name] = image_scorer(name, self.settings)
                except ScorerUnavailable as exc:
                    self._image_scorers[name] = exc
        return self._image_scorers

    def video_scorers(self) -> dict[str, VideoScorer | ScorerUnavailable]:
        for name in self.video_scorer_names:
            if name not in self._video_scorers:
                try:
                    self._video_scorers[name] = video_scorer(name, self.settings)
                except ScorerUnavailable as exc:
                    self._video_scorers[name] = exc
        return self._video_scorers

    async def aclose(self) -> None:
        for backend in (self._agents, self._media):
            if backend is not None:
                await backend.aclose()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
