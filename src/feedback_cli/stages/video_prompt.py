"""Stage 4: a VideoDirectorGPT-style plan, then the writer/critic loop on the motion prompt; one loop
per clip in storyboard mode (run concurrently), saved as storyboard_enhanced_motion_prompts.json."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from feedback_cli.agents.schemas import PlanRequest, VideoPlan
from feedback_cli.runstate.models import RunOptions, RunState, StageRecord
from feedback_cli.stages.agent_calls import ask
from feedback_cli.stages.base import Stage, StageContext
from feedback_cli.stages.facts import PathQuoter, Pricing, StageEstimate, StageInputs
from feedback_cli.stages.image_prompt import starting_text
from feedback_cli.stages.registry import register
from feedback_cli.stages.storyboard import image_prompt
from feedback_cli.stages.writer_critic_loop import refine, save_loop_files


def plan_context(plan: VideoPlan, scene_index: int) -> str:
    scene = plan.scenes[min(scene_index, len(plan.scenes) - 1)]
    return f"{scene.action}; camera: {scene.camera_motion}; mood: {scene.mood}"


@register
class VideoPromptStage(Stage):
    name: ClassVar[str] = "video_prompt"
    number: ClassVar[int] = 4
    title: ClassVar[str] = "Video prompt"
    workflows = ("full", "video-only")
    short_label = "vid prompt"
    inputs = StageInputs(needs=("--prompt-file", "--storyboard"))
    summary_outputs: ClassVar[dict[str, str]] = {"final_video_prompt": "video_prompt", "motion_prompts": "clip_prompts"}

    @classmethod
    def estimate(cls, options: RunOptions, pricing: Pricing) -> StageEstimate:
        clips = options.clips if options.storyboard else 0
        loops = max(clips, 1)
        describe = 1 if options.workflow.value == "video-only" and not pricing.starts_from_image else 0
        agent_models = pricing.agent_models
        return StageEstimate(
            agent_calls_min=1 + describe + 2 * loops,
            agent_calls_max=1 + describe + 2 * loops * options.max_iterations_video,
            models=(
                agent_models
                if pricing.agents_offline  # the agents role, whatever the media do
                else sorted({*agent_models, pricing.settings.planner_model})
            ),
        )

    @classmethod
    def follow_on(cls, record: StageRecord, state: RunState, path: PathQuoter) -> str | None:
        if record.outputs.get("clip_prompts"):
            motion = record.folder + "/storyboard_enhanced_motion_prompts.json"
            return f"fbloop stage video-generation --motion-prompts {path(motion)}"
        image = f"--image {path(state.input_image)}" if state.input_image else "--image START_FRAME.png"
        return f"fbloop stage video-generation {image} --prompt-file {path(record.folder + '/final_prompt.txt')}"

    @classmethod
    def roles(cls, options: RunOptions) -> frozenset[str]:
        return frozenset(("agents",))

    async def run(self, ctx: StageContext) -> None:
        opts = ctx.options
        state = ctx.state
        if not state.source_prompt and not image_prompt(state):
            await starting_text(ctx)
        source = image_prompt(state)
        clips = state.output("clips")
        plan = await self._plan(ctx, source, len(clips) if clips else 1)
        if clips:
            results = await asyncio.gather(
                *[
                    refine(
                        ctx,
                        kind="video",
                        source=source,
                        max_iterations=opts.max_iterations_video,
                        threshold=opts.threshold_video,
                        context=plan_context(plan, i),
                        scope=f"clip_{c['clip']:02d}",
                        human_feedback=ctx.human_feedback,
                        seed=opts.seed + 10 * c["clip"],
                    )
                    for i, c in enumerate(clips)
                ]
            )
            clip_prompts = [
                {
                    "clip": c["clip"],
                    "motion_prompt": r.prompt,
                    "score": r.score,
                    "stop_reason": r.stop_reason,
                    "start_frame": c["start_frame"],
                    "end_frame": c["end_frame"],
                    "iterations": [it.model_dump(mode="json") for it in r.iterations],
                }
                for c, r in zip(clips, results, strict=True)
            ]
            ctx.record.artifacts.append(
                ctx.folder.write_json(
                    ctx.rel("storyboard_enhanced_motion_prompts.json"),
                    {"schema_version": 1, "plan": ctx.rel("video_plan.json"), "clips": clip_prompts},
                )
            )
            ctx.record.outputs["clip_prompts"] = [
                {k: v for k, v in cp.items() if k != "iterations"} for cp in clip_prompts
            ]
            ctx.record.scores = {
                "prompt_score": round(sum(r.score for r in results) / len(results), 2),
                **{f"clip_{c['clip']:02d}_prompt_score": r.score for c, r in zip(clips, results, strict=True)},
            }
        else:
            result = await refine(
                ctx,
                kind="video",
                source=source,
                max_iterations=opts.max_iterations_video,
                threshold=opts.threshold_video,
                context=plan_context(plan, 0),
                human_feedback=ctx.human_feedback,
                seed=opts.seed,
            )
            save_loop_files(ctx, source=source, threshold=opts.threshold_video, result=result)
            ctx.record.outputs.update(video_prompt=result.prompt, stop_reason=result.stop_reason)
            ctx.record.scores = {"prompt_score": result.score}

    async def _plan(self, ctx: StageContext, source: str, scenes: int) -> VideoPlan:
        saved = ctx.record.outputs.get("plan")
        if saved:
            return VideoPlan.model_validate(saved)
        request = PlanRequest(source=source, scenes=scenes, seed=ctx.options.seed)
        reply = await ask(ctx, "video plan", ctx.services.agents.plan_video(request))
        ctx.record.artifacts = [a for a in ctx.record.artifacts if not a.path.endswith("video_plan.json")]
        ctx.record.artifacts.append(
            ctx.folder.write_json(ctx.rel("video_plan.json"), reply.value.model_dump(mode="json"))
        )
        ctx.record.outputs["plan"] = reply.value.model_dump(mode="json")
        await ctx.checkpoint()
        return reply.value
