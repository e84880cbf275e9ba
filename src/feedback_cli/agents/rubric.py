"""The critic's rubric: what a strong image or video prompt covers.

The cloud critic is asked to score each criterion 0-100; the offline critic measures coverage with the
keyword lists below. The offline writer adds phrases from the same bank for what the critic found missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Criterion:
    name: str
    question: str  # what the critic checks, used in the cloud critic's instructions too
    keywords: tuple[str, ...]
    phrases: tuple[str, ...]  # offline writer's additions, picked deterministically


IMAGE_RUBRIC: tuple[Criterion, ...] = (
    Criterion("subject", "Is the main subject of the original idea present and specific?", (), ()),
    Criterion(
        "style",
        "Is a visual style or medium named?",
        (
            "photograph",
            "photo",
            "painting",
            "illustration",
            "watercolor",
            "watercolour",
            "render",
            "cinematic",
            "anime",
            "oil",
            "digital art",
            "pencil",
            "concept art",
            "film still",
        ),
        (
            "cinematic photograph",
            "detailed digital painting",
            "soft watercolor illustration",
            "35mm film still",
            "studio photograph",
        ),
    ),
    Criterion(
        "composition",
        "Is the framing or composition described?",
        (
            "close-up",
            "wide shot",
            "composition",
            "rule of thirds",
            "centered",
            "foreground",
            "symmetr",
            "framing",
            "portrait orientation",
            "aerial view",
            "low angle",
        ),
        (
            "rule-of-thirds composition with a clear foreground",
            "wide shot, subject centered",
            "low-angle framing",
            "balanced symmetrical composition",
        ),
    ),
    Criterion(
        "lighting",
        "Is the lighting described?",
        (
            "light",
            "golden hour",
            "backlit",
            "sunset glow",
            "shadows",
            "volumetric",
            "rim light",
            "studio lighting",
            "neon",
        ),
        ("soft golden-hour light", "dramatic rim lighting", "diffuse overcast light", "volumetric light through haze"),
    ),
    Criterion(
        "colour",
        "Is a colour palette given?",
        (
            "red",
            "orange",
            "yellow",
            "green",
            "blue",
            "purple",
            "pink",
            "teal",
            "gold",
            "silver",
            "palette",
            "pastel",
            "monochrome",
            "black",
            "white",
            "amber",
            "crimson",
            "turquoise",
        ),
        ("warm amber and teal palette", "muted pastel palette", "deep blue and gold tones", "vivid crimson accents"),
    ),
    Criterion(
        "camera",
        "Are lens or camera settings given?",
        (
            "lens",
            "mm",
            "f/",
            "aperture",
            "depth of field",
            "bokeh",
            "telephoto",
            "macro",
            "long exposure",
            "shallow focus",
        ),
        ("85mm lens, shallow depth of field", "24mm wide-angle lens", "f/1.8 with creamy bokeh", "macro lens detail"),
    ),
    Criterion(
        "mood",
        "Is a mood or atmosphere set?",
        (
            "mood",
            "serene",
            "dramatic",
            "moody",
            "whimsical",
            "melancholic",
            "joyful",
            "peaceful",
            "mysterious",
            "tense",
            "calm",
            "dreamy",
            "atmospher",
        ),
        (
            "serene, dreamy atmosphere",
            "mysterious, moody atmosphere",
            "joyful and lively mood",
            "calm, contemplative mood",
        ),
    ),
    Criterion(
        "detail",
        "Are textures and fine detail asked for?",
        ("detailed", "detail", "intricate", "texture", "8k", "4k", "sharp", "high resolution", "fine grain"),
        ("highly detailed textures", "intricate fine detail, sharp focus", "rich surface texture"),
    ),
)

VIDEO_RUBRIC: tuple[Criterion, ...] = (
    Criterion("subject", "Is the subject from the image prompt kept and specific?", (), ()),
    Criterion(
        "action",
        "Is there a clear action or motion of the subject?",
        (
            "moves",
            "moving",
            "walks",
            "walking",
            "flows",
            "flowing",
            "drifts",
            "turns",
            "rises",
            "falls",
            "sways",
            "runs",
            "flies",
            "spins",
            "ripples",
            "blows",
            "swirl",
            "gently",
        ),
        (
            "the subject slowly turns toward the light",
            "leaves drift gently across the frame",
            "water ripples and flows softly",
            "hair and fabric sway in a light breeze",
        ),
    ),
    Criterion(
        "camera",
        "Is the camera motion specified?",
        (
            "pan",
            "dolly",
            "zoom",
            "tracking",
            "orbit",
            "tilt",
            "crane",
            "handheld",
            "static shot",
            "push in",
            "pull back",
        ),
        (
            "slow dolly-in",
            "smooth lateral tracking shot",
            "gentle orbit around the subject",
            "slow push in",
            "steady pan from left to right",
        ),
    ),
    Criterion(
        "pacing",
        "Are speed and timing described?",
        (
            "slow motion",
            "slowly",
            "timelapse",
            "time-lapse",
            "gradual",
            "seconds",
            "steady",
            "smooth",
            "real-time",
            "pace",
        ),
        ("unhurried, steady pacing", "slow motion", "smooth, gradual movement over five seconds"),
    ),
    Criterion(
        "continuity",
        "Is visual consistency with the start frame asked for?",
        ("consistent", "continuity", "same", "seamless", "coherent", "stable", "identity"),
        (
            "keep the subject's appearance consistent",
            "seamless continuity with the first frame",
            "stable, coherent scene",
        ),
    ),
    Criterion(
        "lighting",
        "Does the lighting stay described or evolve deliberately?",
        ("light", "glow", "shadows", "sunlight", "flicker", "backlit"),
        ("light shifts softly across the scene", "warm glow that stays constant"),
    ),
    Criterion(
        "mood",
        "Is the mood of the motion set?",
        ("serene", "dramatic", "calm", "tense", "dreamy", "energetic", "peaceful", "mood", "atmospher"),
        ("calm, dreamy atmosphere", "gently energetic mood", "quiet, contemplative mood"),
    ),
)

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "in",
        "on",
        "at",
        "to",
        "with",
        "for",
        "from",
        "by",
        "over",
        "under",
        "into",
        "onto",
        "is",
        "are",
        "was",
        "be",
        "this",
        "that",
        "it",
        "its",
        "as",
        "near",
        "beside",
        "while",
        "very",
        "some",
    ]
)


def rubric(kind: str) -> tuple[Criterion, ...]:
    return IMAGE_RUBRIC if kind == "image" else VIDEO_RUBRIC


def content_words(text: str) -> list[str]:
    words = re.findall(r"[a-zA-Z][a-zA-Z'-]+", text.lower())
    seen: list[str] = []
    for word in words:
        if word not in STOPWORDS and len(word) > 2 and word not in seen:
            seen.append(word)
    return seen


def covers(criterion: Criterion, prompt: str) -> int:
    """How many of the criterion's keywords the prompt uses."""
    lowered = prompt.lower()
    return sum(1 for keyword in criterion.keywords if keyword in lowered)
