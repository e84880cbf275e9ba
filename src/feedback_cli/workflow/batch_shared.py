"""What the runs of a batch share: one budget, one client per provider, one set of provider limits.

`BatchBudget` is the single cost cap of a batch; each run's ledger (`BatchLedger`) reports its spending to
it and asks it before every paid call. `ServicePool` hands each run a `Services` that reuses the pool's
backends, semaphores, scorers and scoring thread, so 40 runs in flight never open 40 x 8 predictions.
Both have the same shape for the Ray executor, where they live in actors (workflow/executors.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from feedback_cli.errors import BudgetError, ScorerUnavailable
from feedback_cli.providers.registry import concurrency, load_agents, load_media
from feedback_cli.runstate.events import Event
from feedback_cli.runstate.ledger import CostLedger
from feedback_cli.runstate.models import CostEntry, RunState
from feedback_cli.scoring.registry import image_scorer, video_scorer
from feedback_cli.stages.services import Services

if TYPE_CHECKING:
    from feedback_cli.config import Settings
    from feedback_cli.providers.base import Agents, Media
    from feedback_cli.scoring.base import ImageScorer, VideoScorer


class Budget(Protocol):
    def check(self, run_id: str, run_spent: float, estimate_usd: float | None, what: str) -> None: ...
    def claim(self, run_id: str, run_spent: float, estimate_usd: float | None, what: str) -> None: ...
    def hold(self, amount: float) -> None: ...
    def release(self, amount: float) -> None: ...
    def record(self, run_id: str, run_spent: float) -> None: ...


class BatchBudget:
    """One cap for the whole batch: the spending of every run plus the estimates of calls in flight."""

    def __init__(self, max_cost: float | None, spent_by_run: dict[str, float] | None = None) -> None:
        self.max_cost = max_cost
        self.spent_by_run: dict[str, float] = dict(spent_by_run or {})
        self.reserved = 0.0
        #: set once a call was refused: rows not started yet stay not started
        self.exhausted = False

    @property
    def spent(self) -> float:
        return round(sum(self.spent_by_run.values()), 6)

    def record(self, run_id: str, run_spent: float) -> None:
        self.spent_by_run[run_id] = run_spent

    def refusal(self, run_id: str, run_spent: float, estimate_usd: float | None, what: str) -> str | None:
        """Why the call may not go out (one line), or None. Plain data so a Ray actor can return it."""
        self.record(run_id, run_spent)
        if self.max_cost is None:
            return None
        if estimate_usd is None:
            self.exhausted = True
            return f"{what} has no known price and the batch has a cost cap of ${self.max_cost:.4f}"
        if self.spent + self.reserved + estimate_usd > self.max_cost + 1e-9:
            self.exhausted = True
            pending = f" (+${self.reserved:.4f} in flight)" if self.reserved else ""
            return (
                f"batch budget reached: ${self.spent:.4f} spent by the batch{pending}, {what} would cost about"
                f" ${estimate_usd:.4f} and the batch cap is ${self.max_cost:.4f}"
            )
        return None

    def check(self, run_id: str, run_spent: float, estimate_usd: float | None, what: str) -> None:
        reason = self.refusal(run_id, run_spent, estimate_usd, what)
        if reason is not None:
            raise BudgetError(reason, hint="resume the batch with a higher --max-cost")

    def claimed(self, run_id: str, run_spent: float, estimate_usd: float | None, what: str) -> str | None:
        """`refusal`, and when the call may go out its estimate held, in one step: two runs (two processes,
        under Ray) can never both pass the cap on the same total. Plain data for the same reason as `refusal`."""
        reason = self.refusal(run_id, run_spent, estimate_usd, what)
        if reason is None:
            self.hold(estimate_usd or 0.0)
        return reason

    def claim(self, run_id: str, run_spent: float, estimate_usd: float | None, what: str) -> None:
        reason = self.claimed(run_id, run_spent, estimate_usd, what)
        if reason is not None:
            raise BudgetError(reason, hint="resume the batch with a higher --max-cost")

    def hold(self, amount: float) -> None:
        self.reserved += amount

    def release(self, amount: float) -> None:
        self.reserved = max(0.0, self.reserved - amount)


class BatchLedger(CostLedger):
    """A run's ordinary ledger (its own entries, its own optional cap) that also answers to the batch budget."""

    def __init__(self, state: RunState, max_cost: float | None, budget: Budget) -> None:
        super().__init__(state, max_cost)
        self.budget = budget
        budget.record(state.run_id, self.spent)

    def check(self, estimate_usd: float | None, what: str) -> None:
        super().check(estimate_usd, what)
        self.budget.check(self.state.run_id, self.spent, estimate_usd, what)

    def claim(self, estimate_usd: float | None, what: str) -> float:
        super().check(estimate_usd, what)  # the run's own cap
        self.budget.claim(self.state.run_id, self.spent, estimate_usd, what)  # the batch's: checked and held at once
        held = estimate_usd or 0.0
        super().hold(held)  # here only: the budget holds it already
        return held

    def hold(self, amount: float) -> None:  # every other held estimate (re-attached predictions not yet booked)
        super().hold(amount)
        self.budget.hold(amount)

    def release(self, amount: float) -> None:
        super().release(amount)
        self.budget.release(amount)

    def add(self, stage: str, provider: str, model: str, what: str, usd: float, **kwargs: Any) -> CostEntry:
        entry = super().add(stage, provider, model, what, usd, **kwargs)
        self.budget.record(self.state.run_id, self.spent)
        return entry


#: the run whose task is running: provider notices from a shared backend go to that run's stage notes
current_run_services: contextvars.ContextVar[Services | None] = contextvars.ContextVar(
    "fbloop_current_run_services", default=None
)


def _notice_to_current_run(message: str) -> None:
    services = current_run_services.get()
    if services is not None:
        services.notice(message)


#: a provider's "slow down" as the clients report it: "... answered HTTP 429 (...); retry 1 of 5 in 2.3s"
RATE_LIMITED = re.compile(r"answered HTTP 429\b.*?\bin (\d+(?:\.\d+)?)s\b")


class SharedLimit:
    """A provider's semaphore plus the batch's one 429 backoff: after any run hears "429, retry in N s", no run
    of the batch starts a new call to that provider before the N seconds are over (the one that heard it waits
    anyway), instead of 40 runs each finding out for themselves."""

    def __init__(self, size: int, pool: ServicePool, role: str) -> None:
        self.semaphore = asyncio.Semaphore(size)
        self.pool = pool
        self.role = role

    async def __aenter__(self) -> None:
        await self.semaphore.acquire()
        try:
            while (wait := self.pool.cooldown.get(self.role, 0.0) - time.monotonic()) > 0:
                await asyncio.sleep(wait)
        except BaseException:
            self.semaphore.release()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self.semaphore.release()


def rate_limited(event: Event) -> tuple[str, float] | None:
    """(role, seconds) when the event is a provider's 429 with the wait the client chose, else None."""
    if event.kind != "notice":
        return None
    found = RATE_LIMITED.search(event.message)
    if found is None:
        return None
    return ("media" if "Replicate answered" in event.message else "agents"), float(found.group(1))


def limit_size(settings: Settings, provider: str) -> int:
    """The concurrency limit of a provider, as `Services` sizes it for a single run."""
    return concurrency(provider, settings)


class ServicePool:
    """One agents/media client per backend, one semaphore per provider, one scorer of each name, one scoring
    thread: created on first use (inside the batch's event loop) and closed once, when the batch ends."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limits: dict[str, Any] = {}
        self.image_scorers: dict[str, ImageScorer | ScorerUnavailable] = {}
        self.video_scorers: dict[str, VideoScorer | ScorerUnavailable] = {}
        self._agents: dict[str, Agents] = {}
        self._media: dict[str, Media] = {}
        self._executor: ThreadPoolExecutor | None = None
        #: role ("media", "agents") -> monotonic time before which no new call to it starts
        self.cooldown: dict[str, float] = {}

    def observe(self, event: Event) -> None:
        """Every run's events pass here: a 429 heard by one run pauses new calls of the whole batch."""
        heard = rate_limited(event)
        if heard is not None:
            self.pause(*heard)

    def pause(self, role: str, seconds: float) -> None:
        until = time.monotonic() + seconds
        self.cooldown[role] = max(self.cooldown.get(role, 0.0), until)

    def agents(self, provider: str) -> Agents:
        """The one agents client of `provider` (e.g. "openai", "offline"): each role is chosen on its own."""
        if provider not in self._agents:
            agents = load_agents(provider, self.settings)
            if hasattr(agents, "notify"):
                agents.notify = _notice_to_current_run  # type: ignore[union-attr]
            self._agents[provider] = agents
        return self._agents[provider]

    def media(self, provider: str) -> Media:
        if provider not in self._media:
            self._media[provider] = load_media(provider, self.settings)
        return self._media[provider]

    def limit(self, role: str, provider: str) -> Any:
        """The async context manager every run's calls to this provider share."""
        key = f"{role}:{provider}"
        if key not in self.limits:
            self.limits[key] = SharedLimit(limit_size(self.settings, provider), self, role)
        return self.limits[key]

    def image_scorer(self, name: str) -> ImageScorer | ScorerUnavailable:
        if name not in self.image_scorers:
            try:
                self.image_scorers[name] = image_scorer(name, self.settings)
            except ScorerUnavailable as exc:
                self.image_scorers[name] = exc
        return self.image_scorers[name]

    def video_scorer(self, name: str) -> VideoScorer | ScorerUnavailable:
        if name not in self.video_scorers:
            try:
                self.video_scorers[name] = video_scorer(name, self.settings)
            except ScorerUnavailable as exc:
                self.video_scorers[name] = exc
        return self.video_scorers[name]

    @property
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fbloop-batch-scoring")
        return self._executor

    def services_for(self, state: RunState) -> PooledServices:
        return PooledServices(
            settings=self.settings,
            backend=state.options.backend.value,
            image_scorer_names=state.scorers.get("image", []),
            video_scorer_names=state.scorers.get("video", []),
            providers={role: name.partition(":")[0] for role, name in state.providers.items()},
            pool=self,
        )

    async def aclose(self) -> None:
        for backend in (*self._agents.values(), *self._media.values()):
            with contextlib.suppress(Exception):
                await backend.aclose()
        self._agents.clear()
        self._media.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


@dataclass
class PooledServices(Services):
    """A run's Services whose clients, limits and scorers belong to the batch's pool."""

    pool: ServicePool | None = field(default=None, repr=False)

    @property
    def agents(self) -> Agents:
        assert self.pool is not None
        return self.pool.agents(self.provider("agents"))

    @property
    def media(self) -> Media:
        assert self.pool is not None
        return self.pool.media(self.provider("media"))

    @property
    def scoring_executor(self) -> ThreadPoolExecutor:
        assert self.pool is not None
        return self.pool.executor

    def _limit(self, role: str, provider: str) -> Any:
        assert self.pool is not None
        return self.pool.limit(role, provider)

    def image_scorers(self) -> dict[str, ImageScorer | ScorerUnavailable]:
        assert self.pool is not None
        return {name: self.pool.image_scorer(name) for name in self.image_scorer_names}

    def video_scorers(self) -> dict[str, VideoScorer | ScorerUnavailable]:
        assert self.pool is not None
        return {name: self.pool.video_scorer(name) for name in self.video_scorer_names}

    async def aclose(self) -> None:
        """The orchestrator closes a run's services when the run ends; the pool outlives the run."""
