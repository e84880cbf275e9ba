"""Video frames for the VBench dimensions, decoded with PyAV (docs/scorers.md §V.1).

VBench's `load_video` reads **every** frame of an .mp4 (decord) as uint8 RGB (T, H, W, C), every frame of a .gif
(PIL `ImageSequence`, each converted to RGB) and a .png as a single frame; no dimension used here passes
`num_frames`. `read_video` does the same with PyAV for any container FFmpeg reads (mp4, mov, webm, mkv, ...),
PIL for .gif (as VBench), and PIL for still images. decord, OpenCV and PyAV all decode through FFmpeg; their
YUV->RGB conversions can differ by a least-significant bit or so.

The frame rate is the stream's average rate (what OpenCV's CAP_PROP_FPS reports, used by dynamic_degree's 8 fps
subsampling, §V.6), falling back to the guessed rate.

The last two decoded videos are kept (keyed by path, mtime and size) so the several dimensions scoring one video
decode it once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from feedback_cli.errors import InputError

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v", ".gif"})
STILL_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})

_cache: OrderedDict[tuple[str, int, int], Video] = OrderedDict()
_cache_lock = threading.Lock()
_CACHE_SIZE = 2


@dataclass(frozen=True)
class Video:
    """All frames as uint8 RGB (T, H, W, 3), and the frame rate (0.0 when the container has none)."""

    path: Path
    frames: np.ndarray
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def _decode_av(path: Path) -> tuple[list[np.ndarray], float]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise InputError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return frames, fps


def _decode_gif(path: Path) -> tuple[list[np.ndarray], float]:
    from PIL import Image, ImageSequence

    with Image.open(path) as img:
        frames = [np.asarray(f.convert("RGB"), dtype=np.uint8) for f in ImageSequence.Iterator(img)]
        duration_ms = img.info.get("duration") or 0
    return frames, (1000.0 / duration_ms if duration_ms else 0.0)


def _decode_still(path: Path) -> tuple[list[np.ndarray], float]:
    from PIL import Image

    with Image.open(path) as img:
        return [np.asarray(img.convert("RGB"), dtype=np.uint8)], 0.0


def read_video(path: Path) -> Video:
    """Every frame of `path`, decoded once per process for the last two videos (docs/scorers.md §V.1)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise InputError(f"cannot read video {path}: {exc}") from exc
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    suffix = path.suffix.lower()
    try:
        if suffix == ".gif":
            frames, fps = _decode_gif(path)
        elif suffix in STILL_SUFFIXES:
            frames, fps = _decode_still(path)
        else:
            frames, fps = _decode_av(path)
    except InputError:
        raise
    except Exception as exc:  # av.error.*, PIL errors: an unreadable file is the user's input problem
        raise InputError(f"cannot decode video {path}: {exc}") from exc
    if not frames:
        raise InputError(f"{path} has no frames")
    video = Video(path=path, frames=np.stack(frames), fps=fps)
    with _cache_lock:
        _cache[key] = video
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return video


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
