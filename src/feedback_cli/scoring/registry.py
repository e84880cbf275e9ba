"""Where scorers come from: one route for the built-ins and for third parties, loaded only when asked for.

A scorer is registered by name as an entry point `"module:Class"` of the group `fbloop.scorers`. A third-party
package declares it in its own pyproject.toml:

    [project.entry-points."fbloop.scorers"]
    my-scorer = "my_package.my_module:MyScorer"

The built-ins are the same kind of entry point, listed in `BUILTIN_SCORERS` below (one line each) so that a
source checkout works without re-installing fbloop's metadata. Nothing is imported until a name is asked for:
`scorer_class(name)` imports that one module; the sets (`image_names()`, `default_names()`, ...) import the
registered modules, which are torch-free at import (`scoring/base.py`), to read each class's declarations.
A third-party name that clashes with a built-in is ignored; the built-in wins.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from feedback_cli.errors import ScorerUnavailable, UsageError
from feedback_cli.installation import extra_install_command
from feedback_cli.plugins import PluginGroup, PluginImportError

if TYPE_CHECKING:
    from feedback_cli.config import Settings
    from feedback_cli.scoring.base import DefaultSet, ImageScorer, Scorer, ScorerKind, VideoScorer

ENTRY_POINT_GROUP = "fbloop.scorers"

#: the built-in scorers, name -> "module:Class", in the order the default sets list them.
BUILTIN_SCORERS: dict[str, str] = {
    "sharpness": "feedback_cli.scoring.offline:SharpnessScorer",
    "colorfulness": "feedback_cli.scoring.offline:ColorfulnessScorer",
    "exposure": "feedback_cli.scoring.offline:ExposureScorer",
    "pickscore": "feedback_cli.scoring.pickscore:PickScoreScorer",
    "clip-score": "feedback_cli.scoring.clip_score:ClipScoreScorer",
    "aesthetic": "feedback_cli.scoring.aesthetic:AestheticScorer",
    "vqascore": "feedback_cli.scoring.vqascore:VQAScoreScorer",
    "hpsv2": "feedback_cli.scoring.hpsv2:HPSv2Scorer",
    "flicker": "feedback_cli.scoring.offline:FlickerScorer",
    "motion": "feedback_cli.scoring.offline:MotionScorer",
    "subject_consistency": "feedback_cli.scoring.vbench:SubjectConsistency",
    "background_consistency": "feedback_cli.scoring.vbench:BackgroundConsistency",
    "temporal_flickering": "feedback_cli.scoring.vbench:TemporalFlickering",
    "motion_smoothness": "feedback_cli.scoring.vbench:MotionSmoothness",
    "dynamic_degree": "feedback_cli.scoring.vbench:DynamicDegree",
    "aesthetic_quality": "feedback_cli.scoring.vbench:AestheticQuality",
    "imaging_quality": "feedback_cli.scoring.vbench:ImagingQuality",
    "elements": "feedback_cli.scoring.elements:ElementsScorer",
    "video_elements": "feedback_cli.scoring.elements:VideoElementsScorer",
}

#: the built-ins and the installed and registered third parties (`register`, e.g. by a test)
PLUGINS = PluginGroup(ENTRY_POINT_GROUP, BUILTIN_SCORERS, on_change=lambda: scorer_class.cache_clear())
targets = PLUGINS.targets
register = PLUGINS.register
unregister = PLUGINS.unregister


def names() -> list[str]:
    return list(targets())


@functools.cache
def scorer_class(name: str) -> type[Scorer]:
    """The class registered as `name`, imported now. UsageError for an unknown name; ScorerUnavailable when
    its module cannot be imported or is not a scorer."""
    from feedback_cli.scoring.base import Scorer

    target = targets().get(name)
    if target is None:
        known = sorted({*targets(), "offline"})
        raise UsageError(f"unknown scorer {name!r}; known: {', '.join(known)}")
    try:
        cls = PLUGINS.load(name)
    except PluginImportError as exc:  # e.g. a missing dependency of a third-party scorer
        hint = extra_install_command("scoring") if exc.missing_module and PLUGINS.is_builtin(name) else ""
        raise ScorerUnavailable(f"scorer {name}: {exc.message}", hint=hint) from exc
    if not (isinstance(cls, type) and issubclass(cls, Scorer)) or getattr(cls, "kind", None) not in ("image", "video"):
        raise ScorerUnavailable(f"scorer {name}: {target} is not an ImageScorer or VideoScorer subclass")
    if cls.name != name:
        raise ScorerUnavailable(f"scorer {name}: {target} declares the name {cls.name!r}")
    return cls


def classes() -> dict[str, type[Scorer]]:
    """Every registered scorer's class, by name; one whose module cannot be imported is left out."""
    out: dict[str, type[Scorer]] = {}
    for name in targets():
        try:
            out[name] = scorer_class(name)
        except ScorerUnavailable:
            continue
    return out


def kind_of(name: str) -> ScorerKind:
    return scorer_class(name).kind


def names_of(kind: ScorerKind, default_set: DefaultSet | None = None) -> tuple[str, ...]:
    """The registered scorers of `kind` (and, when given, of `default_set`), in registration order."""
    return tuple(
        name
        for name, cls in classes().items()
        if cls.kind == kind and (default_set is None or cls.default_set == default_set)
    )


def model_names(kind: ScorerKind | None = None) -> tuple[str, ...]:
    """The scorers that are not offline statistics (those with requirements to check), of `kind` or both."""
    return tuple(name for name, cls in classes().items() if not cls.offline and (kind is None or cls.kind == kind))


def image_scorer(name: str, settings: Settings) -> ImageScorer:
    if name in targets() and kind_of(name) != "image":
        raise UsageError(f"{name} is a video scorer, not an image scorer")
    if name not in targets():
        raise UsageError(f"unknown image scorer {name!r}; known: {', '.join(sorted(names_of('image')))}")
    return scorer_class(name)(settings)  # type: ignore[return-value]


def video_scorer(name: str, settings: Settings) -> VideoScorer:
    if name in targets() and kind_of(name) != "video":
        raise UsageError(f"{name} is an image scorer, not a video scorer")
    if name not in targets():
        raise UsageError(f"unknown video scorer {name!r}; known: {', '.join(sorted(names_of('video')))}")
    return scorer_class(name)(settings)  # type: ignore[return-value]


def split_names(spec: str) -> tuple[list[str], list[str]]:
    """`offline` or a comma list of names -> (image scorer names, video scorer names)."""
    wanted = [n.strip() for n in spec.split(",") if n.strip()]
    if not wanted:
        raise UsageError("--scorers is empty")
    images: list[str] = []
    videos: list[str] = []
    for name in wanted:
        if name == "offline":
            images += [n for n in names_of("image", "offline") if n not in images]
            videos += [n for n in names_of("video", "offline") if n not in videos]
        elif kind_of(name) == "image":
            images.append(name)
        else:
            videos.append(name)
    return images, videos


#: derived sets, computed when read (reading one imports the registered modules, never torch)
_DERIVED: dict[str, Any] = {
    "IMAGE_SCORERS": lambda: {n: targets()[n] for n in names_of("image")},
    "VIDEO_SCORERS": lambda: {n: targets()[n] for n in names_of("video")},
    "OFFLINE_IMAGE_SET": lambda: names_of("image", "offline"),
    "OFFLINE_VIDEO_SET": lambda: names_of("video", "offline"),
    "REAL_IMAGE_SET": lambda: names_of("image", "standard"),
    "OPTIONAL_IMAGE_SET": lambda: names_of("image", "optional"),
    "REAL_VIDEO_SET": lambda: names_of("video", "standard"),
}


def __getattr__(attr: str) -> Any:
    if attr in _DERIVED:
        return _DERIVED[attr]()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
