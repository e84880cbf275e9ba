"""Stage 1: the writer and the critic turn the starting idea into a strong image prompt.

A starting image is first described (vision model; offline: from its file name and colours)."""

from __future__ import annotations

from typing import ClassVar

from feedback_cli.runstate.models import RunOptions, RunState, StageRecord
from feedback_cli.stages.agent_calls import ask
from feedback_cli.stages.base import Stage, StageContext
from feedback_cli.stages.facts import PathQuoter, Pricing, StageEstimate, StageInputs
from feedback_cli.stages.registry import register
from feedback_cli.stages.writer_critic_loop import refine, save_loop_files


@register
class ImagePromptStage(Stage):
    name: ClassVar[str] = "image_prompt"
    number: ClassVar[int] = 1
    title: ClassVar[str] = "Image prompt"
    workflows = ("full", "image-only", "prompt-only")
    short_label = "img prompt"
    # the prompt file (text, or an image that is described first) is the run's own starting idea
    inputs = StageInputs(needs=("--prompt-file",), prompt_given_as=None)
    summary_outputs: ClassVar[dict[str, str]] = {"final_image_prompt": "final_prompt"}

    @classmethod
    def roles(cls, options: RunOptions) -> frozenset[str]:
        return frozenset(("agents",))

    @classmethod
    def estimate(cls, options: RunOptions, pricing: Pricing) -> StageEstimate:
        describe = 1 if pricing.starts_from_image else 0
        return StageEstimate(
            agent_calls_min=describe + 2,
            agent_calls_max=describe + 2 * options.max_iterations_image,
            models=pricing.agent_models,
        )

    @classmethod
    def follow_on(cls, record: StageRecord, state: RunState, path: PathQuoter) -> str | None:
        return f"fbloop stage image-generation --prompt-file {path(record.folder + '/final_prompt.txt')}"

    async def run(self, ctx: StageContext) -> None:
        source = await starting_text(ctx)
        opts = ctx.options
        result = await refine(
            ctx,
            kind="image",
            source=source,
            max_iterations=opts.max_iterations_image,
            threshold=opts.threshold_image,
            human_feedback=ctx.human_feedback,
            seed=opts.seed,
        )
        save_loop_files(ctx, source=source, threshold=opts.threshold_image, result=result)
        ctx.record.outputs.update(final_prompt=result.prompt, final_score=result.score, stop_reason=result.stop_reason)
        ctx.record.scores = {"prompt_score": result.score}


async def starting_text(ctx: StageContext) -> str:
    """The user's idea as text: the prompt file, or the description of a starting image."""
    state = ctx.state
    if state.source_prompt:
        return state.source_prompt
    image = state.prompt_image or state.input_image
    if image is None:
        raise ValueError("run has neither a prompt nor an image to start from")
    reply = await ask(ctx, "describe starting image", ctx.services.agents.describe_image(ctx.abs(image)))
    state.source_prompt = reply.value
    ctx.record.outputs["derived_prompt"] = reply.value
    ctx.record.notes.append(f"starting prompt derived from {image} by {reply.model}: {reply.value}")
    ctx.emit("notice", f"starting prompt derived from the image: {reply.value}")
    await ctx.checkpoint()
    return reply.value
