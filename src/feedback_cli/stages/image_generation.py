"""Stage 2: rounds of N image variations (issue 13), scored, revised, the best across every round selected.

Round 1 makes N variations of the enhanced prompt; each is scored, including the element check against
questions made once from the user's own prompt. Until the pick reaches `--target-image`, the rounds
(`--max-rounds-image`) run out, the pick stops improving (`--patience`) or the next round would pass
`--max-cost`, the critic and the writer revise the prompt from the best candidates and their failed questions,
and the next round makes N more with new seeds. Regenerating after a human review is one more round through
the same revision, with the person's feedback. The pick is the best of every round's variations."""

from __future__ import annotations

from typing import ClassVar

from feedback_cli.providers.base import ImageRequest
from feedback_cli.runstate.models import ItemRecord, RunOptions, RunState, StageRecord
from feedback_cli.stages.base import Stage, StageContext
from feedback_cli.stages.facts import PathQuoter, Pricing, StageEstimate, StageInputs
from feedback_cli.stages.generation import ItemSpec
from feedback_cli.stages.picks import pick_scores
from feedback_cli.stages.registry import register
from feedback_cli.stages.rounds import VQA_PROMPT_TOKENS, RoundRules, rounds_file, run_rounds
from feedback_cli.stages.selection import write_scores

#: element questions per prompt assumed by the estimate (DSG prompts have 5-15; they are made at run time)
TYPICAL_QUESTIONS = 8


def image_key(round_no: int, index: int) -> str:
    """`image_03` in round 1 (as before rounds), `r2_image_03` in round 2: unique across rounds."""
    return f"image_{index + 1:02d}" if round_no == 1 else f"r{round_no}_image_{index + 1:02d}"


@register
class ImageGenerationStage(Stage):
    name: ClassVar[str] = "image_generation"
    number: ClassVar[int] = 2
    title: ClassVar[str] = "Image generation"
    review = "images"
    can_pick = True
    accepts_feedback = True
    workflows = ("full", "image-only")
    short_label = "image"
    inputs = StageInputs(needs=("--prompt-file",), text_prompt_only=True, count_option="num_image_variations")
    summary_outputs: ClassVar[dict[str, str]] = {"final_image_prompt": "image_prompt", "best_image": "best_image"}

    @classmethod
    def roles(cls, options: RunOptions) -> frozenset[str]:
        # the writer/critic revise the prompt between rounds, and apply a reviewer's feedback
        return frozenset(("media", "agents") if options.interactive or options.max_rounds_image > 1 else ("media",))

    @classmethod
    def estimate(cls, options: RunOptions, pricing: Pricing) -> StageEstimate:
        # rounds (issue 13): one round at the least, every round at the most; the element questions are
        # made once (one agent call) and each revision is a critic and a writer call
        media, settings = pricing.media, pricing.settings
        rounds = options.max_rounds_image
        part = StageEstimate(
            media_calls=options.num_image_variations * rounds,
            media_calls_min=options.num_image_variations,
            models=[media.image_model()],
            agent_calls_min=1,
            agent_calls_max=1 + 2 * (rounds - 1),
        )
        per_image = pricing.price(media.estimate_image_cost(), media.image_model())
        part.cost_min_usd = options.num_image_variations * per_image
        part.cost_max_usd = part.media_calls * per_image
        if options.backend.value != "offline":
            from feedback_cli.providers.prices import load_prices

            vqa = pricing.price(
                load_prices(settings.price_file).llm_cost(settings.vqa_model, VQA_PROMPT_TOKENS, 1),
                settings.vqa_model,
            )
            part.cost_min_usd += options.num_image_variations * TYPICAL_QUESTIONS * vqa
            part.cost_max_usd += part.media_calls * TYPICAL_QUESTIONS * vqa
        pricing.note(
            f"image generation: 1 to {rounds} round(s) of {options.num_image_variations} images "
            f"(stops at --target-image {options.target_image:g}, --patience {options.patience}); the element "
            f"check is counted at {TYPICAL_QUESTIONS} questions per image"
        )
        return part

    @classmethod
    def review_prompt(cls, record: StageRecord, latest: list[ItemRecord]) -> str:
        return str(record.outputs.get("image_prompt") or super().review_prompt(record, latest))

    @classmethod
    def picked_keys(cls, record: StageRecord) -> list[str]:
        best_key = record.best_key
        return [best_key] if best_key else []

    @classmethod
    def apply_pick(cls, record: StageRecord, item: ItemRecord) -> None:
        assert item.artifact is not None
        record.outputs.update(best_image=item.artifact.path, best_key=item.key)
        record.scores = pick_scores([item], prefix="best")

    @classmethod
    def follow_on(cls, record: StageRecord, state: RunState, path: PathQuoter) -> str | None:
        if not record.outputs.get("best_image"):
            return None
        prompt_file = "input/prompt.txt" if any(a.path == "input/prompt.txt" for a in state.inputs) else None
        with_prompt = f" --prompt-file {path(prompt_file)}" if prompt_file else ""
        return f"fbloop stage storyboard --image {path(record.outputs['best_image'])}{with_prompt}"

    async def run(self, ctx: StageContext) -> None:
        opts = ctx.options
        rounds = ctx.record.round_log()
        base = (
            (rounds[0].prompt if rounds else None)
            or ctx.record.outputs.get("image_prompt")
            or ctx.state.output("final_prompt")
            or ctx.state.source_prompt
        )
        source = ctx.state.source_prompt or base  # the user's own words: what the questions check
        n = opts.num_image_variations
        size_hint = ctx.services.settings.aspect_ratio

        def specs(round_no: int, prompt: str) -> list[ItemSpec]:
            first = (round_no - 1) * n
            return [
                ItemSpec(
                    key=image_key(round_no, i),
                    index=first + i,
                    seed=opts.seed + first + i,
                    kind="image",
                    build=lambda s=opts.seed + first + i, p=prompt: ImageRequest(
                        prompt=p, seed=s, aspect_ratio=size_hint
                    ),
                    round=round_no,
                    prompt=prompt,
                )
                for i in range(n)
            ]

        rules = RoundRules(
            kind="image",
            max_rounds=opts.max_rounds_image,
            target=opts.target_image,
            patience=opts.patience,
            per_round=n,
            specs=specs,
        )
        best = await run_rounds(ctx, rules, base, source)
        every = [i for i in ctx.record.items if i.extra.round is not None]
        write_scores(ctx, "image", {"all": (every, best)})
        rounds_file(ctx)
        assert best.artifact is not None
        ctx.record.outputs.update(
            best_image=best.artifact.path,
            best_key=best.key,
            image_prompt=str(best.extra.prompt or base),
            round=ctx.record.round_log()[-1].round,
        )
        ctx.record.scores = pick_scores([best], prefix="best")
