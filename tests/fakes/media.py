"""Small, deterministic media files for the fake provider server.

Images are drawn with Pillow and videos encoded as H.264 MP4 with PyAV. Everything is kept tiny
(images have a 256 px long side, videos a 160 px long side and ~1 s at 24 fps) so tests stay fast,
while the bytes remain real files that Pillow / PyAV / ffprobe can open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import random
from collections.abc import Mapping
from typing import Any

import av
import numpy as np
from PIL import Image, ImageDraw

IMAGE_LONG_SIDE = 256
VIDEO_LONG_SIDE = 160
VIDEO_FPS = 24
VIDEO_SECONDS = 1.0

#: Replicate ``output_format`` values → (Pillow format, file extension, MIME type).
IMAGE_FORMATS: dict[str, tuple[str, str, str]] = {
    "png": ("PNG", "png", "image/png"),
    "jpg": ("JPEG", "jpg", "image/jpeg"),
    "jpeg": ("JPEG", "jpg", "image/jpeg"),
    "webp": ("WEBP", "webp", "image/webp"),
}
CORRUPT_BYTES = b"\x00\x01 this is not an image, the fake server corrupted it on purpose \xff\xfe"


def seed_for(*parts: object) -> int:
    """A stable 64-bit seed from arbitrary values (``hash()`` is salted per process, this is not)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def frame_size(model_input: Mapping[str, Any], long_side: int) -> tuple[int, int]:
    """(width, height) for a model input: from ``aspect_ratio`` ("16:9") or ``width``/``height``.

    The result is scaled down so the long side is ``long_side`` pixels; both sides are even (H.264
    with yuv420p needs that). Unknown values such as ``match_input_image`` give a square.
    """
    ratio = 1.0
    aspect = model_input.get("aspect_ratio")
    if isinstance(aspect, str) and ":" in aspect:
        w_text, _, h_text = aspect.partition(":")
        try:
            ratio = float(w_text) / float(h_text)
        except (ValueError, ZeroDivisionError):
            ratio = 1.0
    else:
        width, height = model_input.get("width"), model_input.get("height")
        if isinstance(width, int | float) and isinstance(height, int | float) and width > 0 and height > 0:
            ratio = width / height
    if ratio >= 1:
        return _even(long_side), _even(long_side / ratio)
    return _even(long_side * ratio), _even(long_side)


def image_format(model_input: Mapping[str, Any]) -> tuple[str, str, str]:
    """(Pillow format, extension, MIME type) for the input's ``output_format`` (PNG by default)."""
    requested = str(model_input.get("output_format", "png")).lower()
    return IMAGE_FORMATS.get(requested, IMAGE_FORMATS["png"])


def _palette(rng: random.Random, count: int) -> list[tuple[int, int, int]]:
    return [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(count)]


def render_image(seed: int, size: tuple[int, int], background: Image.Image | None = None) -> Image.Image:
    """A deterministic picture: a two-colour gradient (or ``background``) with a few shapes on it."""
    rng = random.Random(seed)
    width, height = size
    if background is not None:
        image = background.convert("RGB").resize(size)
    else:
        top, bottom = _palette(rng, 2)
        t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
        gradient = (1 - t) * np.array(top, np.float32) + t * np.array(bottom, np.float32)
        image = Image.fromarray(np.broadcast_to(gradient, (height, width, 3)).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for colour in _palette(rng, rng.randint(3, 6)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randint(8, width // 2), y0 + rng.randint(8, height // 2)
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    return image


def encode_image(image: Image.Image, pillow_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=pillow_format)
    return buffer.getvalue()


def make_image(model_input: Mapping[str, Any], seed: int) -> tuple[bytes, str, str]:
    """Encode an output image for ``model_input``; returns (bytes, extension, MIME type)."""
    pillow_format, extension, mime = image_format(model_input)
    image = render_image(seed, frame_size(model_input, IMAGE_LONG_SIDE))
    return encode_image(image, pillow_format), extension, mime


def make_video(
    model_input: Mapping[str, Any],
    seed: int,
    start_frame: Image.Image | None = None,
    *,
    fps: int = VIDEO_FPS,
    seconds: float = VIDEO_SECONDS,
) -> bytes:
    """An H.264 MP4 whose first frame is ``start_frame`` (if given) with a square moving across it."""
    if start_frame is not None and not isinstance(model_input.get("aspect_ratio"), str):
        width, height = start_frame.size
        model_input = {"width": width, "height": height}
    size = frame_size(model_input, VIDEO_LONG_SIDE)
    base = np.asarray(render_image(seed, size, background=start_frame), dtype=np.uint8)
    rng = random.Random(seed)
    colour = np.array(_palette(rng, 1)[0], np.uint8)
    width, height = size
    square = max(4, height // 4)
    frame_count = max(1, round(fps * seconds))

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index in range(frame_count):
            pixels = base.copy()
            x = (index * (width - square)) // max(1, frame_count - 1)
            y = (height - square) // 2
            pixels[y : y + square, x : x + square] = colour
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    """(MIME type, payload) of a ``data:`` URI; raises ValueError when it is malformed."""
    if not uri.startswith("data:") or "," not in uri:
        raise ValueError("not a data: URI")
    header, _, payload = uri[5:].partition(",")
    mime = header.split(";", 1)[0] or "text/plain"
    if header.endswith(";base64"):
        try:
            return mime, base64.b64decode(payload, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"invalid base64 in data: URI: {exc}") from exc
    return mime, payload.encode()


def data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode()}"


def open_image(payload: bytes) -> Image.Image:
    """Decode image bytes fully; raises ValueError when they are not a readable image."""
    try:
        image = Image.open(io.BytesIO(payload))
        image.load()
    except Exception as exc:  # Pillow raises many different exception types
        raise ValueError(f"not a readable image: {exc}") from exc
    return image
