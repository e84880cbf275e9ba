"""What a run will do before it does it: stages, calls per stage, models, and a cost range (`--dry-run`).

The low end assumes every writer/critic loop stops after its first iteration; the high end that every loop
uses all its iterations. Media counts are exact. Prices come from the backends' own estimates, the same
numbers the budget cap uses.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from feedback_cli.config import Settings
from feedback_cli.providers.prices import load_prices
from feedback_cli.providers.registry import load_agents, load_media, providers_for
from feedback_cli.stages.registry import get as get_stage
from feedback_cli.stages.rounds import VQA_PROMPT_TOKENS
from feedback_cli.workflow.models import RunOptions
from feedback_cli.workflow.plan import stages_for

#: element questions per prompt assumed by the estimate (DSG prompts have 5-15; they are made at run time)
TYPICAL_QUESTIONS = 8


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
    agents = load_agents(providers["agents"], settings, pricing=True)
    media = load_media(providers["media"], settings, pricing=True)
    unknown: list[str] = []

    def price(value: float | None, what: str) -> float:
        if value is None:
            unknown.append(what)
            return 0.0
        return value

    per_call = price(agents.estimate_call_cost(), "agent calls")
    agent_models = (
        ["offline-rubric"]
        if providers["agents"] == "offline"
        else sorted({settings.writer_model, settings.critic_model})
    )
    notes: list[str] = []
    clips = options.clips if options.storyboard else 0
    plans: list[StagePlan] = []
    for name in stages_for(options.workflow):
        cls = get_stage(name)
        plan = StagePlan(number=cls.number, name=name, runs=True)
        if name == "storyboard" and not options.storyboard:
            plan.runs, plan.skip_reason = False, "storyboard not requested (run with --storyboard)"
        elif name == "image_prompt":
            describe = 1 if starts_from_image else 0
            plan.agent_calls_min = describe + 2
            plan.agent_calls_max = describe + 2 * options.max_iterations_image
            plan.models = agent_models
        elif name == "image_generation":
            # rounds (issue 13): one round at the least, every round at the most; the element questions are
            # made once (one agent call) and each revision is a critic and a writer call
            rounds = options.max_rounds_image
            plan.media_calls = options.num_image_variations * rounds
            plan.media_calls_min = options.num_image_variations
            plan.models = [media.image_model()]
            per_image = price(media.estimate_image_cost(), media.image_model())
            plan.cost_min_usd = options.num_image_variations * per_image
            plan.cost_max_usd = plan.media_calls * per_image
            plan.agent_calls_min = 1
            plan.agent_calls_max = 1 + 2 * (rounds - 1)
            if options.backend.value != "offline":
                vqa = price(
                    load_prices(settings.price_file).llm_cost(settings.vqa_model, VQA_PROMPT_TOKENS, 1),
                    settings.vqa_model,
                )
                plan.cost_min_usd += options.num_image_variations * TYPICAL_QUESTIONS * vqa
                plan.cost_max_usd += plan.media_calls * TYPICAL_QUESTIONS * vqa
            notes.append(
                f"image generation: 1 to {rounds} round(s) of {options.num_image_variations} images "
                f"(stops at --target-image {options.target_image:g}, --patience {options.patience}); the element "
                f"check is counted at {TYPICAL_QUESTIONS} questions per image"
            )
        elif name == "storyboard":
            plan.media_calls = options.clips
            plan.models = [media.image_model()]
            plan.cost_min_usd = plan.cost_max_usd = plan.media_calls * price(
                media.estimate_image_cost(), media.image_model()
            )
        elif name == "video_prompt":
            loops = max(clips, 1)
            describe = 1 if options.workflow.value == "video-only" and not starts_from_image else 0
            plan.agent_calls_min = 1 + describe + 2 * loops
            plan.agent_calls_max = 1 + describe + 2 * loops * options.max_iterations_video
            plan.models = (
                agent_models
                if providers["agents"] == "offline"  # the agents role, whatever the media do
                else sorted({*agent_models, settings.planner_model})
            )
        elif name == "video_generation":
            with_end = clips > 0
            plan.media_calls = options.num_video_attempts * max(clips, 1)
            plan.models = [media.video_model(with_end_frame=with_end)]
            per_video = price(media.estimate_video_cost(with_end, float(settings.video_duration_s)), plan.models[0])
            plan.cost_min_usd = plan.cost_max_usd = plan.media_calls * per_video
        plan.cost_min_usd += plan.agent_calls_min * per_call
        plan.cost_max_usd += plan.agent_calls_max * per_call
        plans.append(plan)
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
