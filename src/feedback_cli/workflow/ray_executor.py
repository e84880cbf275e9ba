"""`fbloop batch --executor ray`: each row a Ray task, the shared pieces Ray actors.

- A row task runs the ordinary `run_row` (the same checkpoint code, the same run folder on the shared path the
  user gave); it returns a small plain dict. The driver alone writes `batch_checkpoint.json` and the results.
- `LimiterActor`: the provider limits of the whole batch, across every worker (one slot per call in flight).
- `BudgetActor`: the batch's one budget; every paid call of every row asks it first.
- `ScorerActor`s: load each scorer's models once per actor and declare `num_gpus` (setting `ray_scorer_gpus`),
  so scoring spreads over the cluster's GPUs; rows call them with file paths on the shared storage.

A task whose worker dies is re-run by Ray (`ray_task_retries`); it resumes the row from its checkpoint and
re-attaches recorded predictions, so nothing is paid twice. An actor a row needs that is gone (its driver was
killed and Ray is ending the job, or the actor's process died) stops the row as a kill would: `ClusterLost`,
never a failed stage, a left-out score or an unlimited call. This module imports Ray: only the Ray executor
loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray.exceptions import RayError, RayTaskError

from feedback_cli.config import Settings
from feedback_cli.errors import BudgetError, FbloopError, ScorerUnavailable, UsageError
from feedback_cli.scoring.registry import image_scorer, video_scorer
from feedback_cli.workflow.batch import RowOutcome, outcome_from_run, run_row, run_settings
from feedback_cli.workflow.batch_shared import BatchBudget, ServicePool, limit_size
from feedback_cli.workflow.batch_state import BatchRowState

if TYPE_CHECKING:
    from feedback_cli.workflow.batch import BatchRunner

#: how often the driver looks at the budget actor for the live view while waiting for rows
POLL_S = 0.5


class ClusterLost(BaseException):
    """A batch actor this row needs is gone: its driver was killed (Ray ends the job's actors before its
    workers) or the actor's process died. The row stops as if killed: its run stays "running" in its
    checkpoint, which the next `fbloop resume BATCH_DIR` reconciles as interrupted and continues.

    A BaseException on purpose: the engine books any Exception from a stage or a scorer into the run (a
    failed stage, a left-out score), and a plain resume leaves a failed run alone; a lost driver is neither."""

    def line(self) -> str:
        return str(self)


@contextlib.contextmanager
def cluster_call(what: str) -> Iterator[None]:
    """Ray's own failures to reach an actor become ClusterLost; the callee's exceptions (RayTaskError, which
    is also the original exception's class) pass unchanged."""
    try:
        yield
    except RayTaskError:
        raise
    except RayError as exc:
        raise ClusterLost(
            f"lost the batch's {what} on the Ray cluster ({type(exc).__name__}); resume the batch"
        ) from exc


@ray.remote(num_cpus=0)
class BudgetActor:
    def __init__(self, max_cost: float | None, spent_by_run: dict[str, float]) -> None:
        self.budget = BatchBudget(max_cost, spent_by_run)

    def refusal(self, run_id: str, run_spent: float, estimate_usd: float | None, what: str) -> str | None:
        return self.budget.refusal(run_id, run_spent, estimate_usd, what)

    def claimed(self, run_id: str, run_spent: float, estimate_usd: float | None, what: str) -> str | None:
        return self.budget.claimed(run_id, run_spent, estimate_usd, what)

    def hold(self, amount: float) -> None:
        self.budget.hold(amount)

    def release(self, amount: float) -> None:
        self.budget.release(amount)

    def record(self, run_id: str, run_spent: float) -> None:
        self.budget.record(run_id, run_spent)

    def status(self) -> dict[str, Any]:
        return {"spent": self.budget.spent, "exhausted": self.budget.exhausted}


@ray.remote(num_cpus=0, max_concurrency=10_000)
class LimiterActor:
    """Counting semaphores by key ("media:replicate"), each slot tagged with the row and the attempt holding it.

    A row re-run by Ray after its worker died starts a new attempt: the slots of the dead attempt are freed at
    once and its still-waiting acquires are never granted, so a dead worker can never starve the batch."""

    def __init__(self) -> None:
        self.held: dict[str, list[tuple[str, str]]] = {}
        self.current: dict[str, str] = {}  # row -> its live attempt
        self.cooldown: dict[str, float] = {}  # role -> monotonic time (this actor's clock) new calls wait for
        self.peak: dict[str, int] = {}
        self._changed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def _drop(self, keep: Callable[[tuple[str, str]], bool]) -> None:
        for key, holders in self.held.items():
            self.held[key] = [h for h in holders if keep(h)]

    async def begin(self, row: str, attempt: str) -> None:
        changed = self._condition()
        async with changed:
            self.current[row] = attempt
            self._drop(lambda h: h[0] != row or h[1] == attempt)
            changed.notify_all()

    async def acquire(self, key: str, size: int, row: str, attempt: str) -> bool:
        changed = self._condition()
        async with changed:
            self.held.setdefault(key, [])

            def free_or_stale() -> bool:
                return self.current.get(row) != attempt or len(self.held[key]) < size

            await changed.wait_for(free_or_stale)
            if self.current.get(row) != attempt:
                return False  # a dead attempt's call: it gets nothing
            self.held[key].append((row, attempt))
            self.peak[key] = max(self.peak.get(key, 0), len(self.held[key]))
        role = key.split(":", 1)[0]
        while (wait := self.cooldown.get(role, 0.0) - time.monotonic()) > 0:  # the batch's one 429 backoff
            await asyncio.sleep(wait)
        return True

    async def pause(self, role: str, seconds: float) -> None:
        self.cooldown[role] = max(self.cooldown.get(role, 0.0), time.monotonic() + seconds)

    async def release(self, key: str, row: str, attempt: str) -> None:
        changed = self._condition()
        async with changed:
            holders = self.held.get(key, [])
            if (row, attempt) in holders:
                holders.remove((row, attempt))
            changed.notify_all()

    async def end(self, row: str) -> None:
        """The row's task is over (done, failed or lost): free whatever any of its attempts still held."""
        changed = self._condition()
        async with changed:
            self.current.pop(row, None)
            self._drop(lambda h: h[0] != row)
            changed.notify_all()

    async def stats(self) -> dict[str, Any]:
        return {"peak": dict(self.peak), "held": {k: len(v) for k, v in self.held.items()}}


@ray.remote(num_cpus=0)
class ScorerActor:
    """Holds the scorers (and their models, loaded on first use) for every row that asks it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scorers: dict[tuple[str, str], Any] = {}

    def _scorer(self, kind: str, name: str) -> Any:
        key = (kind, name)
        if key not in self.scorers:
            scorer = (image_scorer if kind == "image" else video_scorer)(name, self.settings)
            if not isinstance(scorer, ScorerUnavailable) and not scorer.shareable():
                # no run's meter here: a paid scorer's requests would go out unbooked (RayPool keeps them local)
                raise TypeError(f"scorer {name} runs in its run's process, not on the shared scorer actor")
            self.scorers[key] = scorer
        return self.scorers[key]

    def score(self, kind: str, name: str, files: list[str], prompt: str) -> Any:
        return self._scorer(kind, name).score([Path(f) for f in files], prompt)

    def results(self, kind: str, name: str, files: list[str], prompt: str) -> Any:
        """The one result shape (`measure` reads it): values by dimension, with their notes."""
        return self._scorer(kind, name).results([Path(f) for f in files], prompt)

    def pid(self) -> int:
        return os.getpid()


@dataclass
class Handles:
    """The actor handles a row task needs (they pickle as references)."""

    budget: Any
    limiter: Any
    scorers: list[Any]


class RemoteLimit:
    """`async with limit:` backed by the batch's LimiterActor instead of a local semaphore."""

    def __init__(self, limiter: Any, key: str, size: int, row: str, attempt: str) -> None:
        self.limiter, self.key, self.size, self.row, self.attempt = limiter, key, size, row, attempt

    async def __aenter__(self) -> None:
        with cluster_call("provider limiter actor"):
            granted = await self.limiter.acquire.remote(self.key, self.size, self.row, self.attempt)
        if not granted:  # a newer attempt of this row began (Ray re-ran it): this one must not call anything
            raise ClusterLost(f"row {self.row}: a newer attempt of this row took over; this attempt stops")

    async def __aexit__(self, *exc: object) -> None:
        # a limiter that is gone holds no slot to give back; the call's own outcome must not be masked
        with contextlib.suppress(ClusterLost), cluster_call("provider limiter"):
            await self.limiter.release.remote(self.key, self.row, self.attempt)


class RemoteScorer:
    """The scorer's own declarations (name, model id, normalisation, weights) locally; `score` on an actor."""

    def __init__(self, inner: Any, actor: Any, kind: str, name: str) -> None:
        self._inner, self._actor, self._kind, self._name = inner, actor, kind, name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._inner, attribute)

    def score(self, files: Sequence[Path], prompt: str) -> Any:
        paths = [str(Path(f).resolve()) for f in files]
        with cluster_call("scorer actor"):  # else a lost actor would leave the score out of a finished run
            return ray.get(self._actor.score.remote(self._kind, self._name, paths, prompt))

    def results(self, files: Sequence[Path], prompt: str) -> Any:
        paths = [str(Path(f).resolve()) for f in files]
        with cluster_call("scorer actor"):
            return ray.get(self._actor.results.remote(self._kind, self._name, paths, prompt))


class RemoteBudget:
    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def check(self, run_id: str, run_spent: float, estimate_usd: float | None, what: str) -> None:
        with cluster_call("budget actor"):  # no answer is no permission: nothing is sent
            reason = ray.get(self.actor.refusal.remote(run_id, run_spent, estimate_usd, what))
        if reason is not None:
            raise BudgetError(reason, hint="resume the batch with a higher --max-cost")

    def claim(self, run_id: str, run_spent: float, estimate_usd: float | None, what: str) -> None:
        # one message: a check and a hold sent apart would let another worker's check pass in between
        with cluster_call("budget actor"):
            reason = ray.get(self.actor.claimed.remote(run_id, run_spent, estimate_usd, what))
        if reason is not None:
            raise BudgetError(reason, hint="resume the batch with a higher --max-cost")

    # calls from one caller to an actor run in order, so these need not wait for an answer
    def hold(self, amount: float) -> None:
        self.actor.hold.remote(amount)

    def release(self, amount: float) -> None:
        self.actor.release.remote(amount)

    def record(self, run_id: str, run_spent: float) -> None:
        self.actor.record.remote(run_id, run_spent)


class RayPool(ServicePool):
    """A row task's pool: its own clients (one per worker task), the batch's limits and scorers on actors."""

    def __init__(self, settings: Settings, handles: Handles, holder: str) -> None:
        super().__init__(settings)
        self.handles = handles
        self.holder = holder
        self.attempt = uuid.uuid4().hex
        # a retry of this row after its worker died: the dead attempt's slots are freed before anything starts
        with cluster_call("provider limiter actor"):
            ray.get(handles.limiter.begin.remote(holder, self.attempt))
        self.scorer_actor = handles.scorers[zlib.crc32(holder.encode()) % len(handles.scorers)]

    def pause(self, role: str, seconds: float) -> None:
        self.handles.limiter.pause.remote(role, seconds)  # every worker's rows wait, not only this one's

    def limit(self, role: str, provider: str) -> Any:
        key = f"{role}:{provider}"
        return RemoteLimit(self.handles.limiter, key, limit_size(self.settings, provider), self.holder, self.attempt)

    def image_scorer(self, name: str) -> Any:
        inner = super().image_scorer(name)
        if isinstance(inner, ScorerUnavailable) or not inner.shareable():
            return inner
        return RemoteScorer(inner, self.scorer_actor, "image", name)

    def video_scorer(self, name: str) -> Any:
        inner = super().video_scorer(name)
        if isinstance(inner, ScorerUnavailable) or not inner.shareable():
            return inner
        return RemoteScorer(inner, self.scorer_actor, "video", name)


@ray.remote
def run_row_task(root: str, row: dict[str, Any], settings: Settings, handles: Handles, retry_failed: bool) -> dict:
    state = BatchRowState.model_validate(row)

    async def main() -> RowOutcome:
        pool = RayPool(settings, handles, holder=state.id)
        try:
            return await run_row(
                Path(root), state, settings, pool, RemoteBudget(handles.budget), retry_failed=retry_failed
            )
        except Exception as exc:  # reported as the row's failure, never lost in a worker log
            line = getattr(exc, "line", None)
            return RowOutcome(
                id=state.id, status="failed", error=line() if callable(line) else f"{type(exc).__name__}: {exc}"
            )
        finally:
            await asyncio.shield(pool.aclose())

    try:
        outcome = asyncio.run(main())
    except ClusterLost as exc:  # the run is where a kill would have left it: resumable, not failed
        outcome = outcome_from_run(Path(root), state, "interrupted", exc.line())
    return outcome.model_dump(mode="json")


def connect(address: str | None) -> bool:
    """Join the cluster (--ray-address, else RAY_ADDRESS, else a new local instance); True if we started it."""
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
    elif os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:
        ray.init(include_dashboard=False)
    return True


class RayExecutor:
    def __init__(self, runner: BatchRunner, address: str | None = None) -> None:
        self.runner = runner
        self.address = address
        self.handles: Handles | None = None

    def run(self, rows: list[BatchRowState]) -> None:
        runner = self.runner
        settings = run_settings(runner.settings)
        started_here = connect(self.address)
        try:
            gpus = ray.cluster_resources().get("GPU", 0.0)
            if settings.ray_scorer_gpus > gpus:
                # an actor asking for GPUs the cluster lacks would wait forever, and every row's scoring with it
                raise UsageError(
                    f"FBLOOP_RAY_SCORER_GPUS is {settings.ray_scorer_gpus:g} but the Ray cluster has {gpus:g} GPU(s)",
                    hint="set FBLOOP_RAY_SCORER_GPUS=0 to score on CPU, or add GPU workers",
                )
            handles = Handles(
                budget=BudgetActor.remote(runner.state.max_cost, dict(runner.budget.spent_by_run)),  # type: ignore[attr-defined]
                limiter=LimiterActor.remote(),  # type: ignore[attr-defined]
                scorers=[
                    ScorerActor.options(  # type: ignore[attr-defined]
                        num_gpus=settings.ray_scorer_gpus, max_restarts=1, max_task_retries=1
                    ).remote(settings)
                    for _ in range(settings.ray_scorer_actors)
                ],
            )
            self.handles = handles
            self._drive(rows, handles, settings)
        finally:
            if started_here:
                ray.shutdown()

    def _drive(self, rows: list[BatchRowState], handles: Handles, settings: Settings) -> None:
        runner = self.runner
        task = run_row_task.options(max_retries=settings.ray_task_retries, num_cpus=settings.ray_row_cpus)
        waiting = list(rows)
        in_flight: dict[Any, BatchRowState] = {}
        lost: str | None = None  # the budget actor is gone: no row may start without its permission
        spent = runner.budget.spent
        try:
            while waiting or in_flight:
                if lost is None:
                    try:
                        with cluster_call("budget actor"):
                            status = ray.get(handles.budget.status.remote())
                        spent = status["spent"]
                        runner.budget.exhausted = runner.budget.exhausted or status["exhausted"]
                    except ClusterLost as exc:
                        lost = exc.line()
                while (
                    waiting
                    and len(in_flight) < runner.state.concurrency
                    and not runner.budget.exhausted
                    and lost is None
                ):
                    row = waiting.pop(0)
                    runner.row_started(row)
                    ref = task.remote(
                        str(runner.root), row.model_dump(mode="json"), settings, handles, runner.retry_failed
                    )
                    in_flight[ref] = row
                if not in_flight:
                    break  # the budget is gone: rows not begun stay not begun
                done, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_S)
                for ref in done:
                    row = in_flight.pop(ref)
                    try:
                        outcome = RowOutcome.model_validate(ray.get(ref))
                    except RayError as exc:  # the worker died past its retries: the run resumes later
                        first = (str(exc).strip().splitlines() or [""])[0]
                        error = f"Ray task lost ({type(exc).__name__}: {first})"
                        outcome = outcome_from_run(runner.root, row, "interrupted", error)
                    handles.limiter.end.remote(row.id)  # slots a dead worker still held
                    runner.row_finished(row, outcome)
                if not done and rows:  # keep the live view's spend current while rows run
                    runner.observer("cost", rows[0], {"spent": spent})
        except BaseException:
            for ref in in_flight:
                ray.cancel(ref)
            raise
        if lost is not None:  # the rows in flight have stopped where they were; every row is resumable
            raise FbloopError(lost, hint=f"fbloop resume {runner.root}")
