"""The one place scorers are registered, by name, as import paths (imported only when chosen).

Adding a scorer: write its module, add one line here. Built-in and third-party scorers use the same
table (`register_image_scorer` / `register_video_scorer`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from feedback_cli.errors import ScorerUnavailable, UsageError
from feedback_cli.installation import extra_install_command

if TYPE_CHECKING:
    from feedback_cli.config import Settings
    from feedback_cli.scoring.base import ImageScorer, VideoScorer

#: name -> "module:Class"; the class is constructed with the Settings.
IMAGE_SCORERS: dict[str, str] = {
    "sharpness": "feedback_cli.scoring.offline:SharpnessScorer",
    "colorfulness": "feedback_cli.scoring.offline:ColorfulnessScorer",
    "exposure": "feedback_cli.scoring.offline:ExposureScorer",
    "pickscore": "feedback_cli.scoring.pickscore:PickScoreScorer",
    "clip-score": "feedback_cli.scoring.clip_score:ClipScoreScorer",
    "aesthetic": "feedback_cli.scoring.aesthetic:AestheticScorer",
    "vqascore": "feedback_cli.scoring.vqascore:VQAScoreScorer",
    "hpsv2": "feedback_cli.scoring.hpsv2:HPSv2Scorer",
}
VIDEO_SCORERS: dict[str, str] = {
    "flicker": "feedback_cli.scoring.offline:FlickerScorer",
    "motion": "feedback_cli.scoring.offline:MotionScorer",
    "subject_consistency": "feedback_cli.scoring.vbench:SubjectConsistency",
    "background_consistency": "feedback_cli.scoring.vbench:BackgroundConsistency",
    "temporal_flickering": "feedback_cli.scoring.vbench:TemporalFlickering",
    "motion_smoothness": "feedback_cli.scoring.vbench:MotionSmoothness",
    "dynamic_degree": "feedback_cli.scoring.vbench:DynamicDegree",
    "aesthetic_quality": "feedback_cli.scoring.vbench:AestheticQuality",
    "imaging_quality": "feedback_cli.scoring.vbench:ImagingQuality",
}

#: `--scorers offline` expands to these.
OFFLINE_IMAGE_SET: tuple[str, ...] = ("sharpness", "colorfulness", "exposure")
OFFLINE_VIDEO_SET: tuple[str, ...] = ("flicker", "motion")

#: the real scorers' default sets (used by the cloud backend when the `scoring` extra is installed).
REAL_IMAGE_SET: tuple[str, ...] = ("pickscore", "clip-score", "aesthetic", "vqascore")
#: real scorers that join the default set only when everything they need is already here (`select.py`)
OPTIONAL_IMAGE_SET: tuple[str, ...] = ("hpsv2",)
REAL_VIDEO_SET: tuple[str, ...] = (
    "subject_consistency",
    "background_consistency",
    "temporal_flickering",
    "dynamic_degree",
    "aesthetic_quality",
    "imaging_quality",
)


def register_image_scorer(name: str, target: str) -> None:
    IMAGE_SCORERS[name] = target


def register_video_scorer(name: str, target: str) -> None:
    VIDEO_SCORERS[name] = target


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # a missing optional dependency, e.g. torch without the extra
        raise ScorerUnavailable(
            f"scorer module {module_name} cannot be imported: {exc}",
            hint=extra_install_command("scoring"),
        ) from exc
    return getattr(module, attr)


def image_scorer(name: str, settings: Settings) -> ImageScorer:
    if name not in IMAGE_SCORERS:
        raise UsageError(f"unknown image scorer {name!r}; known: {', '.join(sorted(IMAGE_SCORERS))}")
    return _import(IMAGE_SCORERS[name])(settings)


def video_scorer(name: str, settings: Settings) -> VideoScorer:
    if name not in VIDEO_SCORERS:
        raise UsageError(f"unknown video scorer {name!r}; known: {', '.join(sorted(VIDEO_SCORERS))}")
    return _import(VIDEO_SCORERS[name])(settings)


def split_names(spec: str) -> tuple[list[str], list[str]]:
    """`offline` or a comma list of names -> (image scorer names, video scorer names)."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise UsageError("--scorers is empty")
    images: list[str] = []
    videos: list[str] = []
    for name in names:
        if name == "offline":
            images += [n for n in OFFLINE_IMAGE_SET if n not in images]
            videos += [n for n in OFFLINE_VIDEO_SET if n not in videos]
        elif name in IMAGE_SCORERS:
            images.append(name)
        elif name in VIDEO_SCORERS:
            videos.append(name)
        else:
            known = sorted({*IMAGE_SCORERS, *VIDEO_SCORERS, "offline"})
            raise UsageError(f"unknown scorer {name!r}; known: {', '.join(known)}")
    return images, videos
