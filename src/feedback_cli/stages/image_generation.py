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
from feedback_cli.stages.base import Stage, StageContext
from feedback_cli.stages.generation import ItemSpec
from feedback_cli.stages.picks import pick_scores
from feedback_cli.stages.registry import register
from feedback_cli.stages.rounds import RoundRules, rounds_file, run_rounds
from feedback_cli.stages.selection import write_scores
from feedback_cli.workflow.models import RunOptions


def image_key(round_no: int, index: int) -> str:
    """`image_03` in round 1 (as before rounds), `r2_image_03` in round 2: unique across rounds."""
    return f"image_{index + 1:02d}" if round_no == 1 else f"r{round_no}_image_{index + 1:02d}"


@register
class ImageGenerationStage(Stage):
    name: ClassVar[str] = "image_generation"
    number: ClassVar[int] = 2
    title: ClassVar[str] = "Image generation"
    review = "images"

    @classmethod
    def roles(cls, options: RunOptions) -> frozenset[str]:
        # the writer/critic revise the prompt between rounds, and apply a reviewer's feedback
        return frozenset(("media", "agents") if options.interactive or options.max_rounds_image > 1 else ("media",))

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
