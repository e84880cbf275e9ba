"""The cost ledger: every priced call lands here, and the budget cap is checked here before a call."""

from __future__ import annotations

from typing import Any

from feedback_cli.errors import BudgetError
from feedback_cli.workflow.models import CostEntry, RunState


class CostLedger:
    def __init__(self, state: RunState, max_cost: float | None = None) -> None:
        self.state = state
        self.max_cost = max_cost

    @property
    def spent(self) -> float:
        return self.state.total_cost

    def check(self, estimate_usd: float, what: str) -> None:
        """Refuse a call whose estimated price would take the run past the cap."""
        if self.max_cost is None:
            return
        if self.spent + estimate_usd > self.max_cost + 1e-9:
            raise BudgetError(
                f"budget reached: ${self.spent:.4f} spent, {what} would cost about ${estimate_usd:.4f}"
                f" and the cap is ${self.max_cost:.4f}",
                hint="resume with a higher --max-cost",
            )

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
