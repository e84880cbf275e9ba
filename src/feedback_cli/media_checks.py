"""Checks on images and videos before fbloop trusts them (inputs and provider outputs alike)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

#: refuse decompression bombs: larger than any generator's output by far (about 16k x 16k)
MAX_PIXELS = 16_384 * 16_384


class MediaInvalid(ValueError):
    """The file is not a usable image or video; the message says why in a few words."""


def check_image(path: Path | BinaryIO, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """Decode the header and the pixels; return (width, height)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise MediaInvalid(f"{width}x{height} pixels is over the {max_pixels} pixel limit")
                img.load()
    except MediaInvalid:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise MediaInvalid(f"image is over the {max_pixels} pixel limit (too large to decode safely)") from None
    except UnidentifiedImageError:
        raise MediaInvalid("not an image file") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaInvalid(f"image cannot be decoded ({exc})") from None
    return width, height


def check_video(path: Path) -> int:
    """Decode up to the first frame; return the container's frame count (or 1 if unknown)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaInvalid("no video stream")
            stream = container.streams.video[0]
            for _frame in container.decode(video=0):
                return int(stream.frames or 1)
    except MediaInvalid:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaInvalid(f"video cannot be decoded ({exc})") from None
    raise MediaInvalid("video has no frames")
