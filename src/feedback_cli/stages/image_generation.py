"""Stage 2: N image variations of the enhanced prompt, scored, the best selected.

Regenerating after a human review first rewrites the prompt with the person's feedback (one more
writer/critic round), then makes a new set of N variations; the pick is the best of every round's
variations (a new round is more candidates for the same image)."""

from __future__ import annotations

from typing import ClassVar

from feedback_cli.agents.loop import refine
from feedback_cli.providers.base import ImageRequest
from feedback_cli.stages.base import Stage, StageContext
from feedback_cli.stages.items import ItemSpec, run_items, select, write_scores
from feedback_cli.stages.picks import earlier_rounds, pick_scores
from feedback_cli.stages.registry import register
from feedback_cli.workflow.models import RunOptions


@register
class ImageGenerationStage(Stage):
    name: ClassVar[str] = "image_generation"
    number: ClassVar[int] = 2
    title: ClassVar[str] = "Image generation"
    review = "images"

    @classmethod
    def roles(cls, options: RunOptions) -> frozenset[str]:
        # the writer/critic run here only to apply a reviewer's feedback
        return frozenset(("media", "agents") if options.interactive else ("media",))

    async def run(self, ctx: StageContext) -> None:
        opts = ctx.options
        prompt = ctx.record.outputs.get("image_prompt") or ctx.state.output("final_prompt") or ctx.state.source_prompt
        round_no = int(ctx.record.outputs.get("round", 1))
        if ctx.human_feedback:
            result = await refine(
                ctx,
                kind="image",
                source=prompt,
                max_iterations=1,
                threshold=opts.threshold_image,
                human_feedback=ctx.human_feedback,
                scope=f"round_{round_no + 1}",
                seed=opts.seed,
            )
            prompt = result.prompt
            round_no += 1
            ctx.record.outputs.update(round=round_no, image_prompt=prompt)
            await ctx.checkpoint()
        ctx.record.outputs.setdefault("image_prompt", prompt)
        ctx.record.outputs.setdefault("round", round_no)
        n = opts.num_image_variations
        first = (round_no - 1) * n
        size_hint = ctx.services.settings.aspect_ratio
        specs = [
            ItemSpec(
                key=f"image_{first + i + 1:02d}",
                index=first + i,
                seed=opts.seed + first + i,
                kind="image",
                build=lambda s=opts.seed + first + i: ImageRequest(prompt=prompt, seed=s, aspect_ratio=size_hint),
                extra={"round": round_no},
            )
            for i in range(n)
        ]
        records = await run_items(ctx, specs, prompt)
        # one pick, the best of this round's variations and every earlier round's
        earlier = earlier_rounds(ctx.record, "", round_no)
        best = select(ctx, "image", records, earlier=earlier)
        write_scores(ctx, "image", {"all": ([*earlier, *records], best)})
        assert best.artifact is not None
        ctx.record.outputs.update(best_image=best.artifact.path, best_key=best.key)
        ctx.record.scores = pick_scores([best], prefix="best")
