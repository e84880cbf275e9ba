"""Stage 5's last step, the storyboard's final video: the picked clips joined in order into `final.mp4`.

`join_final_video` runs at the end of the storyboard video stage (and the orchestrator re-runs the join
when a review changes the picks). `AssembleStage` is the same join as a stage of its own, for
`fbloop stage assemble`: it joins clip files given by the person into a new stage run folder, so an
earlier run's `final.mp4` is never overwritten."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from feedback_cli.runstate.models import RunOptions
from feedback_cli.stages.base import Stage, StageContext
from feedback_cli.stages.facts import Pricing, StageEstimate, StageInputs
from feedback_cli.stages.registry import register
from feedback_cli.stages.video_join import assemble_picks, describe, forget_final_video

#: `state.given` key of the clip files `fbloop stage assemble` copied into the run's input/ (in order)
GIVEN_CLIPS = "clip_videos"


async def join_final_video(ctx: StageContext) -> None:
    """Join the stage's current per-clip picks (`best_videos`) into its final.mp4 and announce it."""
    if forget_final_video(ctx.record):  # an earlier round's film: unrecorded before it is replaced
        await ctx.checkpoint()
    assembly = await asyncio.to_thread(assemble_picks, ctx.folder, ctx.record)
    await ctx.checkpoint()
    ctx.emit(
        "final_video",
        describe(assembly),
        path=assembly.path,
        mode=assembly.mode,
        frames=assembly.frames,
        duration_s=assembly.duration_s,
    )


@register
class AssembleStage(Stage):
    name: ClassVar[str] = "assemble"
    number: ClassVar[int] = 5
    title: ClassVar[str] = "Final video (join the clips)"
    position: ClassVar[float | None] = 5.5  # stage 5's last step, listed after it
    # its own command: the clip files (or a storyboard run folder) as arguments; in no workflow, where stage 5
    # joins its clips itself
    inputs = StageInputs(command="feedback_cli.commands.assemble:assemble", files="the clip videos or a run folder")
    summary_outputs: ClassVar[dict[str, str]] = {"best_videos": "best_videos", "final_video": "final_video"}

    @classmethod
    def estimate(cls, options: RunOptions, pricing: Pricing) -> StageEstimate:
        return StageEstimate()  # joining files calls no provider

    @classmethod
    def roles(cls, options: RunOptions) -> frozenset[str]:
        return frozenset()  # joining files calls no provider

    async def run(self, ctx: StageContext) -> None:
        clips = ctx.state.given.get(GIVEN_CLIPS) or []
        if not clips:
            raise ValueError("assemble needs the clip videos to join")
        ctx.record.outputs["best_videos"] = list(clips)
        await join_final_video(ctx)
