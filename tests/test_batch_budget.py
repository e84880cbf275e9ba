"""One batch budget shared by runs in other processes (the Ray executor's BudgetActor): each message a run sends
the budget is handled alone, but another run's messages can land between any two of them. No interleaving may
let the batch spend past its cap.

`Interleaved` hands the budget to a second run after every message the first run sends; that run tries one whole
paid call (claim, book, release). A check and a hold sent as two messages, or an estimate released before the
cost that replaces it is booked, lets it through: CI caught `test_one_budget_across_ray_workers` spending
$0.0165 under a $0.015 cap that way.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from feedback_cli.errors import BudgetError
from feedback_cli.providers.base import BilledResponse
from feedback_cli.runstate.ledger import LedgerMeter
from feedback_cli.runstate.models import RunOptions, RunState
from feedback_cli.workflow.batch_shared import BatchBudget, BatchLedger


class Interleaved:
    """The budget as a run in another process sees it: after each message, another run may act."""

    def __init__(self, budget: BatchBudget) -> None:
        self.budget = budget
        self.intruder: Any = None
        self.messages: list[str] = []
        self._inside = False

    def _then_intrude(self) -> None:
        if self.intruder is not None and not self._inside:
            self._inside = True
            try:
                self.intruder()
            finally:
                self._inside = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.budget, name)

        def message(*args: Any) -> Any:
            self.messages.append(name)
            try:
                return method(*args)
            finally:
                self._then_intrude()

        return message


def run_state(run_id: str) -> RunState:
    return RunState(fbloop_version="0", run_id=run_id, options=RunOptions())


def other_run(shared: BatchBudget, price: float) -> tuple[BatchLedger, Any]:
    """A run that, each time it gets the chance, makes one paid call of `price` if the batch budget lets it."""
    ledger = BatchLedger(run_state("run-b"), None, shared)

    def one_call() -> None:
        try:
            with ledger.reserve(price, "image_01 (flux)"):
                ledger.add("image_generation", "replicate", "flux", "image_01", price)
        except BudgetError:
            pass

    return ledger, one_call


def spent(*ledgers: BatchLedger) -> float:
    return round(sum(ledger.spent for ledger in ledgers), 6)


@pytest.mark.parametrize("price", [0.003, 0.01])
def test_a_prediction_claimed_by_one_run_cannot_be_claimed_by_another_in_between(price: float) -> None:
    cap = 0.015
    shared = BatchBudget(max_cost=cap)
    seen = Interleaved(shared)
    first = BatchLedger(run_state("run-a"), None, seen)
    second, seen.intruder = other_run(shared, price)
    for _ in range(10):  # until the batch's cap refuses the first run too
        try:
            with first.reserve(price, "image_02 (flux)"):
                first.add("image_generation", "replicate", "flux", "image_02", price)
        except BudgetError:
            break
    assert spent(first, second) <= cap + 1e-9
    assert "check" not in seen.messages  # each claim was one message
    assert shared.reserved == pytest.approx(0.0)


@pytest.mark.parametrize(("estimate", "billed"), [(0.01, 0.01), (0.01, 0.004), (0.006, 0.006)])
def test_a_finished_chat_call_is_booked_before_its_estimate_is_released(estimate: float, billed: float) -> None:
    cap = 0.015
    shared = BatchBudget(max_cost=cap)
    seen = Interleaved(shared)
    first = BatchLedger(run_state("run-a"), None, seen)
    second, intrude = other_run(shared, 0.01)

    async def saved() -> None:
        return None

    meter = LedgerMeter(
        first, stage="image_prompt", provider="openai", what="writer", save=saved, emit=lambda *a, **k: None
    )

    async def one_chat_call() -> None:
        call_id = await meter.started("gpt", estimate)
        seen.intruder = intrude  # from here on the other run tries its call after each message
        meter.finished(call_id, BilledResponse(model="gpt", usd=billed))

    asyncio.run(one_chat_call())
    assert spent(first, second) <= cap + 1e-9
    assert first.state.calls_in_flight == [] and shared.reserved == pytest.approx(0.0)


def test_the_run_cap_and_the_batch_cap_both_refuse_before_anything_is_held() -> None:
    shared = BatchBudget(max_cost=1.0)
    own_cap = BatchLedger(run_state("run-a"), 0.005, shared)
    with pytest.raises(BudgetError, match=r"^budget reached"):
        own_cap.claim(0.01, "image_01 (flux)")
    assert shared.reserved == 0.0 and own_cap.reserved == 0.0
    tight = BatchLedger(run_state("run-b"), None, BatchBudget(max_cost=0.005))
    with pytest.raises(BudgetError, match="batch budget reached"):
        tight.claim(0.01, "image_01 (flux)")
    assert tight.reserved == 0.0 and tight.budget.reserved == 0.0  # type: ignore[attr-defined]
    assert tight.claim(0.004, "image_02 (flux)") == 0.004
    assert tight.budget.reserved == pytest.approx(0.004)  # type: ignore[attr-defined]


def test_every_scorer_that_prices_its_calls_says_it_pays_and_stays_in_its_run() -> None:
    """A scorer that prices its calls pays per call: the engine holds it to the cap and meters it only when it
    says so, and the Ray executor keeps it off the shared scorer actor (where no run's meter is) for that reason.
    The Ray side, end to end: test_batch_ray.py::test_a_scorer_that_pays_per_request_is_booked_and_capped_under_ray."""
    from feedback_cli.scoring.base import Scorer
    from feedback_cli.scoring.registry import classes

    priced = {name for name, cls in classes().items() if cls.call_estimate is not Scorer.call_estimate}
    assert {"vqascore", "elements"} <= priced
    for name in priced:
        assert classes()[name].pays_per_call, name
    for name, cls in classes().items():
        assert cls.shareable() is not (cls.pays_per_call or cls.local_only), name
    assert classes()["pickscore"].shareable()  # a local model: one copy on the actor serves every row
