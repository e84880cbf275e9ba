"""A caption for the best image: one agent call, written to caption.txt."""

from typing import ClassVar

from feedback_cli.runstate.models import RunOptions
from feedback_cli.stages.agent_calls import ask
from feedback_cli.stages.base import Stage, StageContext
from feedback_cli.stages.facts import Pricing, StageEstimate, StageInputs
from feedback_cli.stages.registry import register


@register
class CaptionStage(Stage):
    name: ClassVar[str] = "caption"
    number: ClassVar[int] = 3
    title: ClassVar[str] = "Caption"
    position: ClassVar[float | None] = 2.5  # after image generation, before the storyboard
    workflows: ClassVar[tuple[str, ...]] = ("full", "image-only")
    inputs: ClassVar[StageInputs] = StageInputs(needs=("--image",))
    count_scores: ClassVar[frozenset[str]] = frozenset({"caption_words"})  # a count, not a 0-100 score

    @classmethod
    def roles(cls, options: RunOptions) -> frozenset[str]:
        return frozenset(("agents",))

    @classmethod
    def estimate(cls, options: RunOptions, pricing: Pricing) -> StageEstimate:
        return StageEstimate(agent_calls_min=1, agent_calls_max=1, models=pricing.agent_models)

    async def run(self, ctx: StageContext) -> None:
        image = ctx.state.output("best_image") or ctx.state.input_image
        reply = await ask(ctx, "caption", ctx.services.agents.describe_image(ctx.abs(image)))
        ctx.record.artifacts.append(ctx.folder.write_text(ctx.rel("caption.txt"), reply.value + "\n"))
        ctx.record.outputs["caption"] = reply.value
        ctx.record.scores = {"caption_words": float(len(reply.value.split()))}
