"""Validation of what the user hands us: prompt files and images. One InputError per problem."""

from __future__ import annotations

from pathlib import Path

from feedback_cli.errors import InputError
from feedback_cli.workflow.media_checks import MediaInvalid, check_image

MAX_PROMPT_BYTES = 64 * 1024  # an idea, not a novel: larger files are almost surely the wrong file
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"RIFF", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")


def _existing_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{what} {path} does not exist")
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory, not a file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be read: {exc.strerror}") from None


def looks_like_image(path: Path) -> bool:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return head.startswith(IMAGE_MAGIC)


def validate_image(path: Path, what: str = "image") -> Path:
    _existing_file(path, what)
    if path.stat().st_size == 0:
        raise InputError(f"{what} {path} is empty (0 bytes)")
    try:
        check_image(path)
    except MediaInvalid as exc:
        raise InputError(f"{what} {path} is not a usable image: {exc}") from None
    return path


def read_prompt(path: Path) -> tuple[str, Path | None]:
    """-> (prompt text, None) for a text file, ("", image path) for an image file."""
    _existing_file(path, "prompt file")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"prompt file {path} is empty")
    if looks_like_image(path):
        return "", validate_image(path, "prompt image")
    if size > MAX_PROMPT_BYTES:
        raise InputError(f"prompt file {path} is {size} bytes; a prompt must be under {MAX_PROMPT_BYTES} bytes")
    data = path.read_bytes()
    if b"\x00" in data:
        raise InputError(f"prompt file {path} is binary, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"prompt file {path} is not UTF-8 text") from None
    text = " ".join(text.split())
    if not text:
        raise InputError(f"prompt file {path} has only whitespace")
    return text, None
