"""Offline statistics: cheap image and video measurements, no model, no network.

They are what the offline backend scores with (and `--scorers offline` with any backend). They say
nothing about prompt alignment; they are labelled `offline-statistics` wherever they are reported.
Each maps to 0-100 by a fixed, documented curve.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from feedback_cli.scoring.base import DefaultSet, ImageScorer, VideoScorer

MODEL_ID = "offline-statistics"


class _Statistics:
    """What every offline statistic shares: no settings, no model, labelled as statistics."""

    offline: ClassVar[bool] = True
    default_set: ClassVar[DefaultSet] = "offline"

    def __init__(self, settings: object | None = None) -> None:
        pass

    @property
    def model_id(self) -> str:
        return MODEL_ID


def _gray(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("L"), dtype=np.float64)


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float64)


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: the usual focus measure."""
    lap = -4 * gray[1:-1, 1:-1] + gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:]
    return float(lap.var())


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colourfulness M3."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


class SharpnessScorer(_Statistics, ImageScorer):
    """Raw: variance of the Laplacian of the grey image. 0-100: 100 * (1 - exp(-raw / 500))."""

    name: ClassVar[str] = "sharpness"
    raw_range: ClassVar[str] = "0..inf (Laplacian variance)"

    def score(self, images: Sequence[Path], prompt: str) -> list[float]:
        return [laplacian_variance(_gray(p)) for p in images]

    def normalize(self, raw: float) -> float:
        return float(100.0 * (1.0 - np.exp(-max(raw, 0.0) / 500.0)))


class ColorfulnessScorer(_Statistics, ImageScorer):
    """Raw: Hasler-Suesstrunk M3 (0 grey .. ~110 very colourful). 0-100: min(100, raw / 1.1)."""

    name: ClassVar[str] = "colorfulness"
    raw_range: ClassVar[str] = "0..~110 (Hasler-Suesstrunk M3)"

    def score(self, images: Sequence[Path], prompt: str) -> list[float]:
        return [colorfulness(_rgb(p)) for p in images]

    def normalize(self, raw: float) -> float:
        return float(min(100.0, max(0.0, raw / 1.1)))


class ExposureScorer(_Statistics, ImageScorer):
    """Raw: 1 - |mean luminance - 0.5| * 2, minus the fraction of clipped pixels (0..1).
    0-100: 100 * raw."""

    name: ClassVar[str] = "exposure"
    raw_range: ClassVar[str] = "0..1 (1 = mid-grey mean, nothing clipped)"

    def score(self, images: Sequence[Path], prompt: str) -> list[float]:
        out = []
        for path in images:
            gray = _gray(path) / 255.0
            clipped = float(((gray < 0.02) | (gray > 0.98)).mean())
            out.append(max(0.0, 1.0 - abs(float(gray.mean()) - 0.5) * 2.0 - clipped))
        return out

    def normalize(self, raw: float) -> float:
        return float(100.0 * min(1.0, max(0.0, raw)))


def video_frames(path: Path, max_frames: int = 240) -> np.ndarray:
    """Decode up to max_frames grey frames (T, H, W) as float64 with PyAV (cached: both offline video
    scorers read the same file)."""
    stat = path.stat()
    return _decode(str(path), stat.st_mtime_ns, stat.st_size, max_frames)


@functools.lru_cache(maxsize=8)
def _decode(path: str, mtime_ns: int, size: int, max_frames: int) -> np.ndarray:
    import av

    frames = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="gray").astype(np.float64))
            if len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"{Path(path).name} has no video frames")
    return np.stack(frames)


class FlickerScorer(_Statistics, VideoScorer):
    """Raw: mean absolute difference of consecutive frames, 0..255 (lower is steadier).
    0-100: 100 * (255 - raw) / 255, the same shape as VBench's temporal flickering."""

    name: ClassVar[str] = "flicker"
    dimensions: ClassVar[tuple[str, ...]] = ("flicker",)

    def score(self, videos: Sequence[Path], prompt: str) -> dict[str, list[float]]:
        values = []
        for path in videos:
            frames = video_frames(path)
            values.append(float(np.abs(np.diff(frames, axis=0)).mean()) if len(frames) > 1 else 0.0)
        return {"flicker": values}

    def normalize(self, dimension: str, raw: float) -> float:
        return float(100.0 * (255.0 - min(max(raw, 0.0), 255.0)) / 255.0)


class MotionScorer(_Statistics, VideoScorer):
    """Raw: mean absolute difference between the first and last frame, 0..255 (how much changes).
    0-100: a bell around a lively-but-coherent amount, 100 * exp(-((raw - 30) / 25) ** 2): a frozen clip
    and a clip that turns into noise both score low."""

    name: ClassVar[str] = "motion"
    dimensions: ClassVar[tuple[str, ...]] = ("motion",)

    def score(self, videos: Sequence[Path], prompt: str) -> dict[str, list[float]]:
        values = []
        for path in videos:
            frames = video_frames(path)
            values.append(float(np.abs(frames[-1] - frames[0]).mean()))
        return {"motion": values}

    def normalize(self, dimension: str, raw: float) -> float:
        return float(100.0 * np.exp(-(((raw - 30.0) / 25.0) ** 2)))
