"""Making an agent call from a stage: under the run's LLM concurrency limit, with every request it sends
booked in the ledger as it is answered (see runstate/ledger.py, LedgerMeter)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from feedback_cli.errors import ProviderError
from feedback_cli.providers.base import CALL_METER, AgentReply
from feedback_cli.runstate.ledger import LedgerMeter
from feedback_cli.stages.base import StageContext

T = TypeVar("T")


async def ask(ctx: StageContext, what: str, call: Awaitable[AgentReply[T]]) -> AgentReply[T]:
    """Await `call` (e.g. `agents.write(request)`) as the ledger line `what` of the running stage.

    A backend that meters its requests (the OpenAI agents) books each response through the meter, also
    when the call then fails; for one that does not (offline, third-party), the reply is booked here."""
    agents = ctx.services.agents
    meter = LedgerMeter(
        ctx.ledger, stage=ctx.record.name, provider=agents.name, what=what, save=ctx.checkpoint, emit=ctx.emit
    )
    token = CALL_METER.set(meter)
    try:
        async with ctx.services.agents_limit():
            reply = await call
    except ProviderError as exc:
        if exc.detail and exc.detail != exc.message:  # the line is shortened; the trace keeps it whole
            ctx.emit("agent_call_error", exc.message, what=what, error=exc.detail)
        raise
    finally:
        CALL_METER.reset(token)
    if not meter.used:
        ctx.ledger.add(
            ctx.record.name,
            agents.name,
            reply.model,
            what,
            reply.cost_usd,
            prompt_tokens=reply.usage.prompt_tokens,
            completion_tokens=reply.usage.completion_tokens,
            request=reply.request,
        )
    return reply
