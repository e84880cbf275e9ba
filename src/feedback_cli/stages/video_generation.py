"""Stage 5: M video attempts from the start frame (or, per storyboard clip, from its start and end
frames), scored, the best selected (per clip in storyboard mode).

Regenerating after a human review adds M more attempts per clip with the person's feedback in the motion
prompt; each clip keeps one pick, the best of all its attempts of every round."""

from __future__ import annotations

from typing import ClassVar

from feedback_cli.providers.base import VideoRequest
from feedback_cli.stages.assemble import join_final_video
from feedback_cli.stages.base import Stage, StageContext
from feedback_cli.stages.items import ItemSpec, run_items, select, write_scores
from feedback_cli.stages.picks import earlier_rounds, pick_scores
from feedback_cli.stages.registry import register
from feedback_cli.stages.storyboard import start_image
from feedback_cli.workflow.models import ItemRecord, RunOptions


@register
class VideoGenerationStage(Stage):
    name: ClassVar[str] = "video_generation"
    number: ClassVar[int] = 5
    title: ClassVar[str] = "Video generation"
    review = "videos"

    @classmethod
    def roles(cls, options: RunOptions) -> frozenset[str]:
        # the writer/critic run here only to apply a reviewer's feedback
        return frozenset(("media", "agents") if options.interactive else ("media",))

    async def run(self, ctx: StageContext) -> None:
        opts = ctx.options
        state = ctx.state
        duration = float(ctx.services.settings.video_duration_s)
        m = opts.num_video_attempts
        round_no = int(ctx.record.outputs.get("round", 1))
        if ctx.human_feedback:
            round_no += 1
            ctx.record.outputs.update(round=round_no, feedback=ctx.human_feedback.strip().rstrip("."))
            await ctx.checkpoint()
        # the person's words join the motion prompt for this round (kept for a resumed round)
        feedback = f", {ctx.record.outputs['feedback']}" if ctx.record.outputs.get("feedback") else ""
        first = (round_no - 1) * m
        clip_prompts = state.output("clip_prompts")
        specs: list[ItemSpec] = []
        if clip_prompts:
            for clip in clip_prompts:
                c = clip["clip"]
                prompt = clip["motion_prompt"] + feedback
                start, end = ctx.abs(clip["start_frame"]), ctx.abs(clip["end_frame"])
                for i in range(m):
                    seed = opts.seed + 1000 * c + first + i
                    specs.append(
                        ItemSpec(
                            key=f"clip_{c:02d}_video_{first + i + 1:02d}",
                            index=len(specs),
                            seed=seed,
                            kind="video",
                            group=f"clip_{c:02d}",
                            extra={"round": round_no, "prompt": prompt},
                            build=lambda p=prompt, s=seed, a=start, b=end: VideoRequest(
                                prompt=p, seed=s, start_image=a, end_image=b, duration_s=duration
                            ),
                        )
                    )
        else:
            image = start_image(state)
            if image is None:
                raise ValueError("video generation needs a best image or --input-image")
            prompt = (state.output("video_prompt") or state.source_prompt) + feedback
            for i in range(m):
                seed = opts.seed + first + i
                specs.append(
                    ItemSpec(
                        key=f"video_{first + i + 1:02d}",
                        index=first + i,
                        seed=seed,
                        kind="video",
                        group="all",
                        extra={"round": round_no, "prompt": prompt},
                        build=lambda s=seed, p=prompt, a=ctx.abs(image): VideoRequest(
                            prompt=p, seed=s, start_image=a, duration_s=duration
                        ),
                    )
                )
        groups: dict[str, list] = {}
        for spec in specs:
            groups.setdefault(spec.group, []).append(spec)
        all_records = await run_items(ctx, specs, specs[0].extra["prompt"] if specs else "")
        by_key = {r.key: r for r in all_records}
        # one pick per group (clip), across this round and the rounds before it; groups keep clip order
        picks: dict[str, tuple[list[ItemRecord], ItemRecord]] = {}
        for group, group_specs in groups.items():
            records = [by_key[s.key] for s in group_specs]
            earlier = earlier_rounds(ctx.record, group, round_no)
            picks[group] = ([*earlier, *records], select(ctx, "video", records, earlier=earlier))
        write_scores(ctx, "video", picks)
        bests = [best for _, best in picks.values()]
        if clip_prompts:
            ctx.record.outputs["best_videos"] = [b.artifact.path for b in bests if b.artifact]
        else:
            assert bests[0].artifact is not None
            ctx.record.outputs["best_video"] = bests[0].artifact.path
        ctx.record.scores = pick_scores(bests)
        if clip_prompts:  # stage 5's last step: the per-clip picks joined, in order, into final.mp4
            await join_final_video(ctx)
