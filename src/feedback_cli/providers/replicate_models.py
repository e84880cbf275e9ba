"""The Replicate models fbloop knows: each model's input field names, so switching models is a setting.

Field names follow the models' published schemas (shared reference providers.md §3.1-§3.3). Storyboard mode
needs a model that takes both a start and an end frame; `video_model(with_end_frame=True)` refuses others.
"""

from __future__ import annotations

import base64
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from feedback_cli.errors import UsageError


@dataclass(frozen=True)
class ReplicateModel:
    id: str
    kind: Literal["image", "video"]
    prompt: str = "prompt"
    seed: str | None = "seed"
    aspect_ratio: str | None = "aspect_ratio"
    num_outputs: str | None = None
    reference_image: str | None = None
    start_image: str | None = None
    end_image: str | None = None
    duration: str | None = None
    durations: tuple[int, ...] = ()  # allowed values, the nearest is sent
    fixed: dict[str, Any] = field(default_factory=dict)  # always sent, e.g. output_format
    with_end_frame: dict[str, Any] = field(default_factory=dict)  # sent with an end frame (kling: mode=pro)

    def nearest_duration(self, seconds: float) -> int:
        if not self.durations:
            return round(seconds)
        return min(self.durations, key=lambda d: (abs(d - seconds), d))


MODELS: dict[str, ReplicateModel] = {
    m.id: m
    for m in (
        ReplicateModel(
            "black-forest-labs/flux-schnell",
            "image",
            num_outputs="num_outputs",
            fixed={"output_format": "png", "go_fast": False},
        ),
        ReplicateModel(
            "black-forest-labs/flux-dev", "image", num_outputs="num_outputs", fixed={"output_format": "png"}
        ),
        ReplicateModel(
            "black-forest-labs/flux-1.1-pro", "image", reference_image="image_prompt", fixed={"output_format": "png"}
        ),
        ReplicateModel(
            "kwaivgi/kling-v2.1",
            "video",
            seed=None,
            aspect_ratio=None,
            start_image="start_image",
            end_image="end_image",
            duration="duration",
            durations=(5, 10),
            fixed={"mode": "standard"},
            with_end_frame={"mode": "pro"},
        ),
        ReplicateModel(
            "kwaivgi/kling-v1.6-pro",
            "video",
            seed=None,
            aspect_ratio=None,
            start_image="start_image",
            end_image="end_image",
            duration="duration",
            durations=(5, 10),
        ),
        ReplicateModel("minimax/video-01", "video", seed=None, aspect_ratio=None, start_image="first_frame_image"),
        ReplicateModel(
            "minimax/hailuo-02",
            "video",
            seed=None,
            aspect_ratio=None,
            start_image="first_frame_image",
            end_image="last_frame_image",
            duration="duration",
            durations=(6, 10),
        ),
        ReplicateModel(
            "bytedance/seedance-1-pro",
            "video",
            aspect_ratio=None,
            start_image="image",
            end_image="last_frame_image",
            duration="duration",
            durations=tuple(range(2, 13)),
        ),
        ReplicateModel(
            "bytedance/seedance-1-lite",
            "video",
            aspect_ratio=None,
            start_image="image",
            end_image="last_frame_image",
            duration="duration",
            durations=tuple(range(2, 13)),
        ),
        ReplicateModel(
            "luma/ray-2-540p",
            "video",
            seed=None,
            start_image="start_image",
            end_image="end_image",
            duration="duration",
            durations=(5, 9),
        ),
    )
}


def model(model_id: str, kind: str, *, end_frame: bool = False) -> ReplicateModel:
    spec = MODELS.get(model_id)
    known = ", ".join(sorted(m.id for m in MODELS.values() if m.kind == kind))
    if spec is None or spec.kind != kind:
        raise UsageError(f"{kind} model {model_id!r} is not in fbloop's Replicate model table; supported: {known}")
    if end_frame and spec.end_image is None:
        with_end = ", ".join(sorted(m.id for m in MODELS.values() if m.end_image))
        raise UsageError(
            f"storyboard mode needs a video model that takes start and end frames; {model_id} does not",
            hint=f"set FBLOOP_STORYBOARD_VIDEO_MODEL to one of {with_end}",
        )
    return spec


def data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def image_input(spec: ReplicateModel, prompt: str, seed: int, aspect_ratio: str, reference: Path | None) -> dict:
    data: dict[str, Any] = {spec.prompt: prompt, **spec.fixed}
    if spec.seed:
        data[spec.seed] = seed
    if spec.aspect_ratio:
        data[spec.aspect_ratio] = aspect_ratio
    if spec.num_outputs:
        data[spec.num_outputs] = 1
    if spec.reference_image and reference is not None:
        data[spec.reference_image] = data_uri(reference)
    return data


def video_input(spec: ReplicateModel, prompt: str, seed: int, start: Path, end: Path | None, seconds: float) -> dict:
    data: dict[str, Any] = {spec.prompt: prompt, **spec.fixed}
    if spec.seed:
        data[spec.seed] = seed
    if spec.start_image:
        data[spec.start_image] = data_uri(start)
    if end is not None and spec.end_image:
        data[spec.end_image] = data_uri(end)
        data.update(spec.with_end_frame)
    if spec.duration:
        data[spec.duration] = spec.nearest_duration(seconds)
    return data


def describe_input(data: dict[str, Any]) -> dict[str, Any]:
    """The input as the trace shows it: images as their size, never the base64."""
    return {
        k: (f"<data URI, {len(v)} chars>" if isinstance(v, str) and v.startswith("data:") else v)
        for k, v in data.items()
    }
