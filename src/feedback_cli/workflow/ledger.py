"""The cost ledger: every priced call lands here, and the budget cap is checked here before a call."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from feedback_cli.errors import BudgetError
from feedback_cli.workflow.models import CostEntry, RunState


class CostLedger:
    def __init__(self, state: RunState, max_cost: float | None = None) -> None:
        self.state = state
        self.max_cost = max_cost
        #: estimates of calls in flight: concurrent items must not all pass the cap on the same spent total
        self.reserved = 0.0

    @property
    def spent(self) -> float:
        return self.state.total_cost

    def check(self, estimate_usd: float | None, what: str) -> None:
        """Refuse a call whose estimated price would take the run past the cap (or is unknown under one)."""
        if self.max_cost is None:
            return
        if estimate_usd is None:
            raise BudgetError(
                f"{what} has no known price and the run has a cost cap of ${self.max_cost:.4f}",
                hint="add the model's price to a FBLOOP_PRICE_FILE, or run without --max-cost",
            )
        if self.spent + self.reserved + estimate_usd > self.max_cost + 1e-9:
            pending = f" (+${self.reserved:.4f} in flight)" if self.reserved else ""
            raise BudgetError(
                f"budget reached: ${self.spent:.4f} spent{pending}, {what} would cost about ${estimate_usd:.4f}"
                f" and the cap is ${self.max_cost:.4f}",
                hint="resume with a higher --max-cost",
            )

    @contextlib.contextmanager
    def reserve(self, estimate_usd: float | None, what: str) -> Iterator[None]:
        """Check the cap and hold the estimate while the call is in flight; the real cost lands via add()."""
        self.check(estimate_usd, what)
        held = estimate_usd or 0.0
        self.reserved += held
        try:
            yield
        finally:
            self.reserved -= held

    def add(
        self,
        stage: str,
        provider: str,
        model: str,
        what: str,
        usd: float,
        *,
        estimated: bool = False,
        **detail: Any,
    ) -> CostEntry:
        entry = CostEntry(
            stage=stage,
            provider=provider,
            model=model,
            what=what,
            usd=round(usd, 6),
            estimated=estimated,
            detail=detail,
        )
        self.state.ledger.append(entry)
        if self.state.has_stage(stage):
            record = self.state.stage(stage)
            record.cost_usd = round(record.cost_usd + entry.usd, 6)
        return entry
