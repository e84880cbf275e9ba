"""The cost ledger: every priced call lands here, and the budget cap is checked here before a call.

Agent (LLM) requests are booked one by one as their responses arrive, through a `LedgerMeter`: a reply
that then fails validation, its repair request, a refusal and a cut-off reply are all paid for and all
booked. A request is recorded in the state before it goes out; one still open when the process died is
booked at its estimate, marked `estimated`, when the run is resumed (`settle_calls_in_flight`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import secrets
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from feedback_cli.errors import BudgetError
from feedback_cli.providers.base import BilledResponse
from feedback_cli.runstate.models import CallInFlight, CostEntry, RunState
from feedback_cli.text import shorten


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

    def hold(self, amount: float) -> None:
        """Count an estimate against the cap until `release`: a call in flight, a re-attached prediction not yet
        booked. The one way an estimate is held, so a ledger that answers to a wider budget (a batch) holds it
        there too."""
        self.reserved += amount

    def release(self, amount: float) -> None:
        self.reserved -= amount

    def claim(self, estimate_usd: float | None, what: str) -> float:
        """Check the cap and hold the estimate as one step, so no other call can pass the cap on the same
        total in between (a batch's budget may live in another process: there it is one message, not two).
        Returns the amount held, to `release` once the call's real cost is booked."""
        self.check(estimate_usd, what)
        held = estimate_usd or 0.0
        self.hold(held)
        return held

    @contextlib.contextmanager
    def reserve(self, estimate_usd: float | None, what: str) -> Iterator[None]:
        """Claim the estimate while the call is in flight; the real cost lands via add() before it is released."""
        held = self.claim(estimate_usd, what)
        try:
            yield
        finally:
            self.release(held)

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

    # --- agent requests in flight ---
    def open_call(self, call: CallInFlight) -> None:
        """Claim the call's estimate (refused past the cap) and record it as in flight."""
        self.claim(call.estimate_usd, f"{call.what} ({call.model})")
        self.state.calls_in_flight.append(call)

    def close_call(self, call_id: str) -> CallInFlight | None:
        """Forget a call in flight and release its estimate. Book its cost first: released before booked, the
        cost would for a moment be counted nowhere, and another process sharing the budget could spend it."""
        for call in self.state.calls_in_flight:
            if call.id == call_id:
                self.state.calls_in_flight.remove(call)
                self.release(call.estimate_usd or 0.0)
                return call
        return None

    def settle_calls_in_flight(self) -> list[str]:
        """Book every request an earlier process sent and never saw answered, at its estimate: the provider
        may well have billed it. Returns a line per booking for the person."""
        lines = []
        for call in list(self.state.calls_in_flight):
            self.state.calls_in_flight.remove(call)
            usd = call.estimate_usd or 0.0
            self.add(
                call.stage,
                call.provider,
                call.model,
                call.what,
                usd,
                estimated=True,
                call_id=call.id,
                note="sent before the process stopped and never answered; booked at its estimate",
            )
            lines.append(
                f"{call.what} ({call.model}) was in flight when the run stopped: booked at its estimate ${usd:.4f}"
            )
        return lines


class LedgerMeter:
    """The engine's CallMeter for one agent call of a stage (writer, critic, planner, describer): each HTTP
    request the backend sends is checked against the cap, recorded while in flight, and booked."""

    def __init__(
        self,
        ledger: CostLedger,
        *,
        stage: str,
        provider: str,
        what: str,
        save: Callable[[], Awaitable[None]],
        emit: Callable[..., None],
    ) -> None:
        self.ledger = ledger
        self.stage = stage
        self.provider = provider
        self.what = what
        self.save = save
        self.emit = emit
        #: the backend booked through this meter (else the engine books the reply it returns)
        self.used = False

    async def started(self, model: str, estimate_usd: float | None) -> str:
        self.used = True
        call = CallInFlight(
            id=secrets.token_hex(6),
            stage=self.stage,
            provider=self.provider,
            model=model,
            what=self.what,
            estimate_usd=estimate_usd,
        )
        self.ledger.open_call(call)
        try:
            await self.save()  # on disk before the request goes out
        except BaseException:  # stopped before sending: nothing to book
            self.ledger.close_call(call.id)
            raise
        return call.id

    def finished(self, call_id: str, billed: BilledResponse | None, error: str | None = None) -> None:
        # booked before its estimate is released (close_call), never the other way round
        call = next((c for c in self.ledger.state.calls_in_flight if c.id == call_id), None)
        if billed is not None:
            detail: dict[str, Any] = {
                "prompt_tokens": billed.prompt_tokens,
                "completion_tokens": billed.completion_tokens,
                "cached_tokens": billed.cached_tokens,
                "request": billed.request,
            }
            usd = billed.usd
            if usd is None:
                usd = 0.0
                detail["cost_note"] = f"no price known for {billed.model}"
            if billed.note:
                detail["note"] = billed.note
            if call is not None:
                detail["call_id"] = call.id
            self.ledger.add(
                self.stage, self.provider, billed.model, self.what, usd, estimated=billed.estimated, **detail
            )
        self.ledger.close_call(call_id)
        if error:  # the whole provider message stays in the trace; the person's line has it shortened
            self.emit("agent_call_error", shorten(error), what=self.what, error=error, booked=billed is not None)


class ThreadedMeter:
    """A LedgerMeter for a scorer that runs in a worker thread: `started` runs on the engine's event loop
    and the thread waits until the call is recorded in the checkpoint (or refused by the cap) before it
    sends the request; `finished` is handed to the loop, which books it before it sees the scorer return."""

    def __init__(self, meter: LedgerMeter, loop: asyncio.AbstractEventLoop) -> None:
        self.meter = meter
        self.loop = loop

    def started(self, model: str, estimate_usd: float | None) -> str:
        future = asyncio.run_coroutine_threadsafe(self.meter.started(model, estimate_usd), self.loop)
        while True:
            try:
                return future.result(timeout=1.0)
            except concurrent.futures.TimeoutError:
                if self.loop.is_closed() or not self.loop.is_running():  # the engine stopped: never send
                    future.cancel()
                    raise RuntimeError("the run stopped before the request could be recorded") from None

    def finished(self, call_id: str, billed: BilledResponse | None, error: str | None = None) -> None:
        # a loop already gone leaves the call in flight in the checkpoint: booked at its estimate on resume
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.meter.finished, call_id, billed, error)
