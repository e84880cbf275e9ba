"""Stage 3 (optional, `--storyboard`): keyframes for each clip, built from the best image.

The best image is clip 1's start frame; each further keyframe is generated from the image prompt with
the best image as reference (where the model takes one), and clip k ends where clip k+1 starts, so the
clips join without a cut. N clips cost N new images, not 2N."""

from __future__ import annotations

from typing import ClassVar

from feedback_cli.errors import StageFailed
from feedback_cli.providers.base import ImageRequest
from feedback_cli.runstate.models import RunOptions, RunState, StageRecord
from feedback_cli.stages.base import Stage, StageContext
from feedback_cli.stages.facts import PathQuoter, Pricing, StageEstimate, StageInputs
from feedback_cli.stages.generation import ItemSpec, run_items
from feedback_cli.stages.registry import register

BEATS = (
    "a moment later, the scene has moved on slightly",
    "later, the action has progressed and the light has shifted",
    "the scene reaches its turning point",
    "the action settles toward its conclusion",
    "the closing moment of the scene",
)


def start_image(state: RunState) -> str | None:
    """The frame video work starts from: the best generated image, else `--input-image`."""
    return state.output("best_image") or state.input_image


def image_prompt(state: RunState) -> str:
    return state.output("image_prompt") or state.output("final_prompt") or state.source_prompt


@register
class StoryboardStage(Stage):
    name: ClassVar[str] = "storyboard"
    number: ClassVar[int] = 3
    title: ClassVar[str] = "Storyboard"
    review = "frames"
    # a person's feedback makes a new round of keyframes; the frames are not picked one by one
    accepts_feedback: ClassVar[bool] = True
    count_scores: ClassVar[frozenset[str]] = frozenset({"clips"})
    workflows = ("full", "video-only")
    inputs = StageInputs(needs=("--image",), needs_hint="(the best image)", options={"storyboard": True})

    @classmethod
    def roles(cls, options: RunOptions) -> frozenset[str]:
        return frozenset(("media",))

    @classmethod
    def planned_skip(cls, options: RunOptions) -> str | None:
        if not options.storyboard:
            return "storyboard not requested (run with --storyboard)"
        return None

    @classmethod
    def estimate(cls, options: RunOptions, pricing: Pricing) -> StageEstimate:
        media = pricing.media
        part = StageEstimate(media_calls=options.clips, models=[media.image_model()])
        part.cost_min_usd = part.cost_max_usd = part.media_calls * pricing.price(
            media.estimate_image_cost(), media.image_model()
        )
        return part

    @classmethod
    def follow_on(cls, record: StageRecord, state: RunState, path: PathQuoter) -> str | None:
        if not record.outputs.get("storyboard"):
            return None
        return f"fbloop stage video-prompt --storyboard {path(record.outputs['storyboard'])}"

    async def run(self, ctx: StageContext) -> None:
        opts = ctx.options
        state = ctx.state
        base = start_image(state)
        if base is None:
            raise ValueError("storyboard needs a best image or --input-image")
        if not state.source_prompt:
            from feedback_cli.stages.image_prompt import starting_text

            await starting_text(ctx)
        prompt = image_prompt(state)
        reference = ctx.abs(base)
        ratio = ctx.services.settings.aspect_ratio
        # a person's feedback makes a new round of keyframes; earlier rounds' files stay as they were
        record = ctx.record
        if ctx.human_feedback:
            record.review_round += 1
            record.review_feedback = ctx.human_feedback.strip().rstrip(".")
            await ctx.checkpoint()
        round_no = record.review_round
        feedback = f" ({record.review_feedback})" if record.review_feedback else ""
        suffix = f"_r{round_no}" if round_no > 1 else ""

        def frame_prompt(k: int) -> str:
            beat = BEATS[min(k - 1, len(BEATS) - 1)] if k < opts.clips else BEATS[-1]
            return f"{prompt}. Storyboard keyframe {k + 1} of {opts.clips + 1}: {beat}{feedback}"

        def seed_of(k: int) -> int:
            return opts.seed + 100 * round_no + k

        specs = [
            ItemSpec(
                key=f"keyframe_{k:02d}{suffix}",
                index=k,
                seed=seed_of(k),
                kind="image",
                build=lambda k=k: ImageRequest(
                    prompt=frame_prompt(k), seed=seed_of(k), aspect_ratio=ratio, reference_image=reference
                ),
                round=round_no,
            )
            for k in range(1, opts.clips + 1)
        ]
        records = await run_items(ctx, specs, prompt)
        failed = [r.key for r in records if r.status != "succeeded"]
        if failed:
            failure = StageFailed(f"storyboard keyframes failed: {', '.join(failed)}")
            failure.resume_flags = "--retry-failed"
            raise failure
        frames = [base] + [r.artifact.path for r in records if r.artifact]
        clips = []
        artifacts = []
        for clip in range(1, opts.clips + 1):
            entry = {"clip": clip, "prompt": prompt}
            for end, source in (("start", frames[clip - 1]), ("end", frames[clip])):
                data = ctx.abs(source).read_bytes()
                artifact = ctx.folder.write_bytes(ctx.rel(f"clip_{clip:02d}_{end}{suffix}.png"), data, "image")
                artifacts.append(artifact)
                entry[f"{end}_frame"] = artifact.path
                entry[f"{end}_source"] = source
            entry["end_prompt"] = records[clip - 1].request.get("prompt", "")
            clips.append(entry)
        storyboard = {"schema_version": 1, "round": round_no, "clips": clips, "source_image": base, "prompt": prompt}
        name = f"storyboard{suffix}.json"
        artifacts.append(ctx.folder.write_json(ctx.rel(name), storyboard))
        ctx.record.artifacts = [a for a in ctx.record.artifacts if a.path not in {x.path for x in artifacts}]
        ctx.record.artifacts += artifacts
        ctx.record.outputs.update(clips=clips, storyboard=ctx.rel(name))
        ctx.record.scores = {"clips": float(len(clips))}
