"""Which stages each workflow mode runs, in order."""

from __future__ import annotations

from feedback_cli.workflow.models import Workflow

PLANS: dict[Workflow, tuple[str, ...]] = {
    Workflow.full: ("image_prompt", "image_generation", "storyboard", "video_prompt", "video_generation"),
    Workflow.image_only: ("image_prompt", "image_generation"),
    # video-only starts from --input-image; the storyboard (with --storyboard) builds on that image
    Workflow.video_only: ("storyboard", "video_prompt", "video_generation"),
    Workflow.prompt_only: ("image_prompt",),
}


def stages_for(workflow: Workflow) -> tuple[str, ...]:
    return PLANS[workflow]
