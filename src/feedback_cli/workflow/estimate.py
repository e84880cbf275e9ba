"""What a run will do before it does it: stages, calls per stage, models, and a cost range (`--dry-run`).

The low end assumes every writer/critic loop stops after its first iteration; the high end that every loop
uses all its iterations. Media counts are exact. Prices come from the backends' own estimates, the same
numbers the budget cap uses.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import BaseModel, Field

from feedback_cli.config import Settings
from feedback_cli.providers.registry import load_agents, load_media, providers_for
from feedback_cli.runstate.models import RunOptions
from feedback_cli.stages.facts import Pricing
from feedback_cli.stages.registry import get as get_stage
from feedback_cli.workflow.plan import stages_for


class StagePlan(BaseModel):
    number: int
    name: str
    runs: bool
    skip_reason: str | None = None
    agent_calls_min: int = 0
    agent_calls_max: int = 0
    media_calls: int = 0
    #: the fewest media calls when the stage may stop early (rounds); None: `media_calls` is exact
    media_calls_min: int | None = None
    models: list[str] = Field(default_factory=list)
    cost_min_usd: float = 0.0
    cost_max_usd: float = 0.0


class DryRunPlan(BaseModel):
    schema_version: int = 1
    workflow: str
    backend: str
    #: role -> provider, each chosen on its own
    providers: dict[str, str] = Field(default_factory=dict)
    stages: list[StagePlan]
    cost_min_usd: float
    cost_max_usd: float
    #: `--max-cost`, and whether the estimate fits under it: "yes" (even the high end), "maybe" (the low end
    #: does, the high end does not), "no" (not even the low end); None without a cap
    max_cost_usd: float | None = None
    fits_max_cost: Literal["yes", "maybe", "no"] | None = None
    notes: list[str] = Field(default_factory=list)


def dry_run(
    options: RunOptions,
    settings: Settings,
    *,
    starts_from_image: bool,
    providers: dict[str, str] | None = None,
) -> DryRunPlan:
    providers = {**providers_for(options.backend.value, settings), **(providers or {})}
    # pricing: a provider whose key is not set yet is built with a placeholder (each provider declares its
    # keys); a dry run calls nothing, so the price before signing up needs none
    prices = Pricing(
        options=options,
        settings=settings,
        agents=load_agents(providers["agents"], settings, pricing=True),
        media=load_media(providers["media"], settings, pricing=True),
        providers=providers,
        starts_from_image=starts_from_image,
    )
    per_call = prices.price(prices.agents.estimate_call_cost(), "agent calls")
    plans: list[StagePlan] = []
    for name in stages_for(options.workflow):
        cls = get_stage(name)
        plan = StagePlan(number=cls.number, name=name, runs=True)
        reason = cls.planned_skip(options)
        if reason is not None:
            plan.runs, plan.skip_reason = False, reason
        else:
            # every registered stage declares its estimate (`register` refuses one that does not), so a stage
            # is never priced at $0 by being forgotten here
            part = cls.estimate(options, prices)
            plan = plan.model_copy(update=dataclasses.asdict(part))
        plan.cost_min_usd += plan.agent_calls_min * per_call
        plan.cost_max_usd += plan.agent_calls_max * per_call
        plans.append(plan)
    notes, unknown = prices.notes, prices.unknown
    if options.backend.value == "offline":
        notes.append("offline backend: nothing is paid")
    cost_min = round(sum(p.cost_min_usd for p in plans), 4)
    cost_max = round(sum(p.cost_max_usd for p in plans), 4)
    fits: Literal["yes", "maybe", "no"] | None = None
    if options.max_cost is not None:
        fits = "yes" if cost_max <= options.max_cost else "maybe" if cost_min <= options.max_cost else "no"
    if unknown:
        notes.append(f"no known price for {', '.join(sorted(set(unknown)))}: not in the range")
    return DryRunPlan(
        workflow=options.workflow.value,
        backend=options.backend.value,
        providers=providers,
        stages=plans,
        cost_min_usd=cost_min,
        cost_max_usd=cost_max,
        max_cost_usd=options.max_cost,
        fits_max_cost=fits,
        notes=notes,
    )
