"""Offline images and videos: procedurally drawn, deterministic from prompt and seed.

Images: a palette from the prompt's colour words, a layout from the seed (so N variations really
differ, in content and in sharpness). Videos: H.264 MP4 at 24 fps made from the start frame (and the
end frame when given) with a camera move read from the prompt (pan, zoom in/out) and a crossfade.
Every frame carries a visible `fbloop offline` stamp.
"""

from __future__ import annotations

import asyncio
import io
import random
import time
import zlib
from collections.abc import Awaitable
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, PngImagePlugin

from feedback_cli.config import Settings
from feedback_cli.providers.base import ImageRequest, JobHook, MediaOutput, VideoRequest

IMAGE_MODEL = "offline-procedural-image"
VIDEO_MODEL = "offline-procedural-video"
FPS = 24
STAMP = "OFFLINE  fbloop"

COLOUR_WORDS: dict[str, tuple[int, int, int]] = {
    "red": (205, 40, 45),
    "crimson": (170, 20, 50),
    "orange": (245, 140, 40),
    "amber": (255, 175, 40),
    "yellow": (245, 215, 60),
    "gold": (215, 175, 60),
    "golden": (225, 180, 70),
    "green": (50, 160, 80),
    "emerald": (20, 140, 90),
    "teal": (30, 140, 140),
    "turquoise": (60, 200, 190),
    "blue": (40, 90, 210),
    "navy": (20, 30, 90),
    "purple": (125, 60, 175),
    "violet": (140, 90, 210),
    "pink": (240, 135, 185),
    "magenta": (210, 40, 160),
    "brown": (125, 80, 45),
    "black": (15, 15, 20),
    "white": (240, 240, 235),
    "silver": (190, 195, 200),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "snow": (235, 240, 250),
    "snowy": (225, 232, 245),
    "sunset": (250, 120, 70),
    "dawn": (250, 190, 150),
    "night": (20, 25, 60),
    "forest": (35, 90, 50),
    "ocean": (20, 90, 150),
    "sea": (30, 110, 160),
    "desert": (220, 180, 120),
    "fire": (240, 90, 20),
    "neon": (255, 40, 200),
    "pastel": (230, 200, 230),
    "sky": (120, 180, 235),
}


def _seed_for(prompt: str, seed: int) -> int:
    return zlib.crc32(prompt.encode()) ^ (seed * 2654435761 & 0xFFFFFFFF)


def palette(prompt: str) -> list[tuple[int, int, int]]:
    lowered = prompt.lower()
    found = [rgb for word, rgb in COLOUR_WORDS.items() if word in lowered]
    if len(found) < 3:
        rng = random.Random(zlib.crc32(lowered.encode()))
        found += [tuple(rng.randrange(30, 230) for _ in range(3)) for _ in range(3 - len(found))]  # type: ignore[misc]
    return found[:6]


def frame_size(settings_size: int, aspect_ratio: str) -> tuple[int, int]:
    try:
        w_ratio, h_ratio = (float(x) for x in aspect_ratio.split(":"))
    except ValueError:
        w_ratio, h_ratio = 1.0, 1.0
    width = settings_size
    height = round(settings_size * h_ratio / w_ratio)
    return width - width % 2, max(16, height - height % 2)  # H.264 needs even sides


def stamp(image: Image.Image) -> None:
    draw = ImageDraw.Draw(image)
    h = image.size[1]
    box = (4, h - 16, 4 + 6 * len(STAMP) + 6, h - 3)
    draw.rectangle(box, fill=(0, 0, 0))
    draw.text((7, h - 16), STAMP, fill=(255, 255, 255))


def draw_image(prompt: str, seed: int, size: tuple[int, int]) -> Image.Image:
    rng = random.Random(_seed_for(prompt, seed))
    colours = palette(prompt)
    rng.shuffle(colours)
    w, h = size
    top, bottom = np.array(colours[0], float), np.array(colours[1], float)
    t = np.linspace(0, 1, h)[:, None, None]
    gradient = (top * (1 - t) + bottom * t) * np.ones((1, w, 1))
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(2, 14), (h, w, 1))
    image = Image.fromarray(np.clip(gradient + noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    horizon = int(h * rng.uniform(0.45, 0.75))
    ground = tuple(int(c * 0.6) for c in colours[2 % len(colours)])
    draw.polygon(
        [(0, h), *[(x, horizon + rng.randint(-h // 8, h // 8)) for x in range(0, w + 64, 64)], (w, h)],
        fill=ground,
    )
    r = rng.randint(h // 10, h // 4)
    cx, cy = rng.randint(r, w - r), rng.randint(r, max(r + 1, horizon - r))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colours[-1])
    for _ in range(rng.randint(4, 10)):
        colour = colours[rng.randrange(len(colours))]
        x, y = rng.randrange(w), rng.randrange(h)
        s = rng.randint(h // 20, h // 6)
        if rng.random() < 0.5:
            draw.ellipse((x - s, y - s, x + s, y + s), fill=colour, outline=(20, 20, 20))
        else:
            draw.polygon([(x, y - s), (x - s, y + s), (x + s, y + s)], fill=colour, outline=(20, 20, 20))
    # some variations come out soft, as real generations do; scorers have something to tell apart
    image = image.filter(ImageFilter.GaussianBlur(rng.choice([0, 0, 0.6, 1.2, 2.5])))
    stamp(image)
    return image


def png_bytes(image: Image.Image, prompt: str, seed: int) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("fbloop-backend", "offline")
    info.add_text("fbloop-prompt", prompt[:2000])
    info.add_text("fbloop-seed", str(seed))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def camera_move(prompt: str) -> str:
    lowered = prompt.lower()
    if "pull back" in lowered or "zoom out" in lowered:
        return "zoom_out"
    if any(k in lowered for k in ("zoom", "dolly", "push in")):
        return "zoom_in"
    if any(k in lowered for k in ("pan", "tracking", "orbit")):
        return "pan"
    return "zoom_in"


def _transform(image: Image.Image, move: str, t: float, size: tuple[int, int]) -> Image.Image:
    w, h = size
    if move == "pan":
        scale = 1.15
        cw, ch = w / scale, h / scale
        left = (w - cw) * t
        box = (left, (h - ch) / 2, left + cw, (h + ch) / 2)
    else:
        zoom = 1.0 + 0.25 * (t if move == "zoom_in" else 1 - t)
        cw, ch = w / zoom, h / zoom
        box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
    return image.resize(size, Image.Resampling.BILINEAR, box=box)


def render_video(start: Path, end: Path | None, prompt: str, seed: int, seconds: float, size: tuple[int, int]) -> bytes:
    import av  # imported here: only video work needs it

    with Image.open(start) as img:
        first = img.convert("RGB").resize(size)
    last = None
    if end is not None:
        with Image.open(end) as img:
            last = img.convert("RGB").resize(size)
    move = camera_move(prompt)
    frames = max(2, round(seconds * FPS))
    rng = random.Random(_seed_for(prompt, seed))
    speed = rng.uniform(0.7, 1.0)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, FPS)
        stream.options = {"crf": "23", "preset": "veryfast"}
        stream.codec_context.options = {"threads": "1"}
        for i in range(frames):
            t = i / (frames - 1)
            frame = _transform(first, move, t * speed, size)
            if last is not None:
                frame = Image.blend(frame, _transform(last, move, t * speed, size), t)
            stamp(frame)
            video_frame = av.VideoFrame.from_image(frame)
            video_frame.pts = i
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


async def _settled(job: JobHook, work: Awaitable[bytes]) -> bytes:
    """An offline job runs here, so its end is known: tell the engine (a remote job's end may not be)."""
    try:
        data = await work
    except Exception:
        if job.settled is not None:
            job.settled("failed")
        raise
    if job.settled is not None:
        job.settled("succeeded")
    return data


async def _during(work: Awaitable[bytes], latency: float) -> bytes:
    """Render while the simulated provider latency runs: like a provider, the work happens inside the wait."""
    data, _ = await asyncio.gather(work, asyncio.sleep(latency))
    return data


class OfflineMedia:
    name = "offline"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        base = settings.offline_latency
        self.image_latency = settings.offline_latency_image if settings.offline_latency_image is not None else base
        self.video_latency = settings.offline_latency_video if settings.offline_latency_video is not None else base
        self.size = frame_size(settings.offline_image_size, settings.aspect_ratio)

    def image_model(self) -> str:
        return IMAGE_MODEL

    def video_model(self, with_end_frame: bool) -> str:
        return VIDEO_MODEL

    def estimate_image_cost(self) -> float:
        return 0.0

    def estimate_video_cost(self, with_end_frame: bool, duration_s: float) -> float:
        return 0.0

    async def generate_image(self, request: ImageRequest, job: JobHook) -> MediaOutput:
        job_id = job.existing_job_id or f"offline-img-{_seed_for(request.prompt, request.seed):08x}"
        if job.existing_job_id is None:
            await job.submitted(job_id)
        start = time.perf_counter()

        def work() -> bytes:
            return png_bytes(draw_image(request.prompt, request.seed, self.size), request.prompt, request.seed)

        data = await _settled(job, _during(asyncio.to_thread(work), self.image_latency))
        return MediaOutput(
            data=data,
            extension=".png",
            model=IMAGE_MODEL,
            job_id=job_id,
            metrics={"predict_time": round(time.perf_counter() - start, 3)},
            request={"prompt": request.prompt, "seed": request.seed, "size": list(self.size)},
        )

    async def generate_video(self, request: VideoRequest, job: JobHook) -> MediaOutput:
        job_id = job.existing_job_id or f"offline-vid-{_seed_for(request.prompt, request.seed):08x}"
        if job.existing_job_id is None:
            await job.submitted(job_id)
        start = time.perf_counter()
        data = await _settled(
            job,
            _during(
                asyncio.to_thread(
                    render_video,
                    request.start_image,
                    request.end_image,
                    request.prompt,
                    request.seed,
                    self.settings.offline_video_seconds,
                    self.size,
                ),
                self.video_latency,
            ),
        )
        return MediaOutput(
            data=data,
            extension=".mp4",
            model=VIDEO_MODEL,
            job_id=job_id,
            metrics={"predict_time": round(time.perf_counter() - start, 3)},
            request={
                "prompt": request.prompt,
                "seed": request.seed,
                "start_image": request.start_image.name,
                "end_image": request.end_image.name if request.end_image else None,
                "camera": camera_move(request.prompt),
            },
        )

    async def aclose(self) -> None:
        return None
