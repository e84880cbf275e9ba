"""Stage 5: rounds of M video attempts from the start frame (or, per storyboard clip, from its start and end
frames), scored, the best selected (per clip in storyboard mode; the clips' loops run side by side).

Rounds (issue 13) work as in image generation, with `--max-rounds-video` (default 1: videos are expensive,
a user opts in), `--target-video` and `--patience`; the element check reads frames at the start, middle and
end. Regenerating after a human review is one more round per clip through the same revision, with the
person's feedback; each clip keeps one pick, the best of all its attempts of every round."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from feedback_cli.errors import BudgetError
from feedback_cli.providers.base import VideoRequest
from feedback_cli.runstate.models import ItemRecord, RunOptions, RunState, StageRecord
from feedback_cli.stages.assemble import join_final_video
from feedback_cli.stages.base import Stage, StageContext
from feedback_cli.stages.facts import PathQuoter, Pricing, StageEstimate, StageInputs
from feedback_cli.stages.generation import ItemSpec
from feedback_cli.stages.picks import pick_scores
from feedback_cli.stages.registry import register
from feedback_cli.stages.rounds import RoundRules, ensure_questions, rounds_file, run_rounds
from feedback_cli.stages.selection import write_scores
from feedback_cli.stages.storyboard import start_image


@register
class VideoGenerationStage(Stage):
    name: ClassVar[str] = "video_generation"
    number: ClassVar[int] = 5
    title: ClassVar[str] = "Video generation"
    review = "videos"
    can_pick = True
    accepts_feedback = True
    workflows = ("full", "video-only")
    short_label = "video"
    inputs = StageInputs(
        needs=("--image", "--motion-prompts"), count_option="num_video_attempts", prompt_given_as="video_prompt"
    )
    summary_outputs: ClassVar[dict[str, str]] = {
        "final_video_prompt": "video_prompt",
        "motion_prompts": "clip_prompts",
        "best_video": "best_video",
        "best_videos": "best_videos",
        "final_video": "final_video",
    }

    @classmethod
    def estimate(cls, options: RunOptions, pricing: Pricing) -> StageEstimate:
        media = pricing.media
        clips = options.clips if options.storyboard else 0
        with_end = clips > 0
        part = StageEstimate(
            media_calls=options.num_video_attempts * max(clips, 1), models=[media.video_model(with_end_frame=with_end)]
        )
        per_video = pricing.price(
            media.estimate_video_cost(with_end, float(pricing.settings.video_duration_s)), part.models[0]
        )
        part.cost_min_usd = part.cost_max_usd = part.media_calls * per_video
        return part

    @classmethod
    def picked_keys(cls, record: StageRecord) -> list[str]:
        chosen: list[str] = []
        for key in ("best_video", "best_videos"):
            value = record.outputs.get(key)
            for path in [value] if isinstance(value, str) else value or []:
                chosen.extend(i.key for i in record.items if i.artifact and i.artifact.path == path)
        return chosen

    @classmethod
    def apply_pick(cls, record: StageRecord, item: ItemRecord) -> None:
        assert item.artifact is not None
        path = item.artifact.path
        if "best_videos" in record.outputs:
            # one pick per clip: replace the pick of this item's clip only, by the group the old pick
            # belongs to (not by file name, which every round of the clip shares)
            group = item.extra.group
            group_of = {i.artifact.path: i.extra.group for i in record.items if i.artifact}
            record.outputs["best_videos"] = [
                path if group_of.get(p) == group else p for p in record.outputs["best_videos"]
            ]
        else:
            record.outputs["best_video"] = path
        # the summary scores stay those of the current picks, in clip order
        by_path = {i.artifact.path: i for i in record.items if i.artifact is not None}
        paths = record.outputs.get("best_videos") or [record.outputs.get("best_video")]
        picked = [by_path[p] for p in paths if p in by_path]
        if picked:
            record.scores = pick_scores(picked)

    @classmethod
    def follow_on(cls, record: StageRecord, state: RunState, path: PathQuoter) -> str | None:
        if not record.outputs.get("best_videos"):
            return None
        # the clips are already joined; this re-joins them, with any clip file swapped for another take
        return "fbloop stage assemble " + " ".join(path(p) for p in record.outputs["best_videos"])

    @classmethod
    def roles(cls, options: RunOptions) -> frozenset[str]:
        # the writer/critic revise the prompt between rounds, and apply a reviewer's feedback
        return frozenset(("media", "agents") if options.interactive or options.max_rounds_video > 1 else ("media",))

    async def run(self, ctx: StageContext) -> None:
        opts = ctx.options
        state = ctx.state
        duration = float(ctx.services.settings.video_duration_s)
        m = opts.num_video_attempts
        clip_prompts = state.output("clip_prompts")
        # (group, its first prompt, its specs for a round): one loop of rounds per clip, or one for the video
        loops: list[tuple[str, str, Callable[[int, str], list[ItemSpec]]]] = []
        if clip_prompts:
            for clip in clip_prompts:
                c = clip["clip"]
                start, end = ctx.abs(clip["start_frame"]), ctx.abs(clip["end_frame"])

                def clip_specs(
                    round_no: int, prompt: str, c: int = c, a: Path = start, b: Path = end
                ) -> list[ItemSpec]:
                    first = (round_no - 1) * m
                    return [
                        ItemSpec(
                            key=f"clip_{c:02d}_video_{first + i + 1:02d}",
                            index=1000 * (c - 1) + first + i,
                            seed=opts.seed + 1000 * c + first + i,
                            kind="video",
                            group=f"clip_{c:02d}",
                            round=round_no,
                            prompt=prompt,
                            build=lambda p=prompt, s=opts.seed + 1000 * c + first + i: VideoRequest(
                                prompt=p, seed=s, start_image=a, end_image=b, duration_s=duration
                            ),
                        )
                        for i in range(m)
                    ]

                loops.append((f"clip_{c:02d}", clip["motion_prompt"], clip_specs))
        else:
            image = start_image(state)
            if image is None:
                raise ValueError("video generation needs a best image or --input-image")
            start_frame = ctx.abs(image)

            def video_specs(round_no: int, prompt: str) -> list[ItemSpec]:
                first = (round_no - 1) * m
                return [
                    ItemSpec(
                        key=f"video_{first + i + 1:02d}",
                        index=first + i,
                        seed=opts.seed + first + i,
                        kind="video",
                        group="all",
                        round=round_no,
                        prompt=prompt,
                        build=lambda s=opts.seed + first + i, p=prompt: VideoRequest(
                            prompt=p, seed=s, start_image=start_frame, duration_s=duration
                        ),
                    )
                    for i in range(m)
                ]

            loops.append(("all", state.output("video_prompt") or state.source_prompt, video_specs))
        source = state.source_prompt or loops[0][1]  # the user's own words: what the questions check
        await ensure_questions(ctx, "video", source)  # once, before the clips' loops run side by side

        def rules(group: str, specs: Callable[[int, str], list[ItemSpec]]) -> RoundRules:
            return RoundRules(
                kind="video",
                max_rounds=opts.max_rounds_video,
                target=opts.target_video,
                patience=opts.patience,
                per_round=m,
                specs=specs,
                group=group,
                scope=group if clip_prompts else "",
                end_frame=bool(clip_prompts),
            )

        # each clip's loop lets its paid items in flight finish before it raises (a budget refusal, a failure);
        # the other clips go on, and the stage raises afterwards, a budget refusal first
        outcomes = await asyncio.gather(
            *(run_rounds(ctx, rules(group, specs), base, source) for group, base, specs in loops),
            return_exceptions=True,
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            raise next((e for e in errors if isinstance(e, BudgetError)), errors[0])
        bests = [o for o in outcomes if isinstance(o, ItemRecord)]
        picks: dict[str, tuple[list[ItemRecord], ItemRecord]] = {}
        for (group, _, _), best in zip(loops, bests, strict=True):
            members = [i for i in ctx.record.items if i.extra.group == group and i.extra.round is not None]
            picks[group] = (members, best)
            rounds_file(ctx, group if clip_prompts else "")
        write_scores(ctx, "video", picks)
        if clip_prompts:
            ctx.record.outputs["best_videos"] = [b.artifact.path for b in bests if b.artifact]
        else:
            assert bests[0].artifact is not None
            ctx.record.outputs["best_video"] = bests[0].artifact.path
        ctx.record.scores = pick_scores(list(bests))
        if clip_prompts:  # stage 5's last step: the per-clip picks joined, in order, into final.mp4
            await join_final_video(ctx)
