"""Validation of what the user hands us: prompt files, images, JSON files and output folders.
One InputError per problem, and all of it before anything is written."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from feedback_cli.errors import InputError
from feedback_cli.files import open_regular, read_regular
from feedback_cli.workflow.safe_text import has_visible_text, printable

MAX_PROMPT_BYTES = 64 * 1024  # an idea, not a novel: larger files are almost surely the wrong file
#: a JSON input (storyboard, motion prompts) is a few KB; this is far above any real one
MAX_JSON_BYTES = 16 * 1024 * 1024
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
#: the Pillow formats those suffixes stand for: a file without such a suffix is an image only if it
#: decodes in full as one of these (never because of its first bytes: "BMX rider..." starts like a BMP)
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")


#: what a decode attempt found: an image, or a header that says image but too large to decode safely
IMAGE, TOO_LARGE = "image", "too large"


def _image_verdict(fh: BinaryIO) -> str | None:
    """IMAGE when the file decodes in full as one of IMAGE_FORMATS, TOO_LARGE when its header claims more
    pixels than is safe to decode (a bomb, or text that happens to parse as a header), else None.
    The file position is put back."""
    from PIL import Image

    start = fh.tell()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fh, formats=IMAGE_FORMATS) as img:
                img.load()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        return TOO_LARGE
    except Exception:  # any decoder failure means "not an image": the file is then read as text
        return None
    finally:
        fh.seek(start)
    return IMAGE


def validate_image(path: Path, what: str = "image") -> Path:
    from feedback_cli.media_checks import MediaInvalid, check_image  # lazy: Pillow is slow to import

    with open_regular(path, what) as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise InputError(f"{what} {path} is empty (0 bytes)")
        try:
            check_image(fh)  # the file already opened and checked, not the path again
        except MediaInvalid as exc:
            raise InputError(f"{what} {path} is not a usable image: {exc}") from None
    return path


def clean_prompt(text: str) -> str:
    """One line of prompt: control characters (ESC sequences, CR, BEL...) and bidi or zero-width marks
    removed, whitespace runs made one space."""
    return " ".join(printable(text).split())


def read_prompt(path: Path) -> tuple[str, Path | None]:
    """-> (prompt text, None) for a text file, ("", image path) for an image file.

    An image is told by its extension, or, without one, by decoding in full as an image; a text file
    is never taken for an image because of its first bytes."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return "", validate_image(path, "prompt image")
    with open_regular(path, "prompt file") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise InputError(f"prompt file {path} is empty")
        verdict = _image_verdict(fh)
        if verdict == IMAGE:  # an image saved without (or with a wrong) extension
            return "", validate_image(path, "prompt image")
        # a header claiming too many pixels decides nothing yet: text can parse as one ("GIF89a of a cat")
        too_large = f"prompt file {path} is not a usable image: its header claims more pixels than is safe"
        if size > MAX_PROMPT_BYTES:
            if verdict == TOO_LARGE:
                raise InputError(too_large)
            raise InputError(f"prompt file {path} is {size} bytes; a prompt must be under {MAX_PROMPT_BYTES} bytes")
        try:
            data = fh.read(MAX_PROMPT_BYTES + 1)
        except OSError as exc:
            raise InputError(f"prompt file {path} cannot be read: {exc.strerror}") from None
    try:
        if b"\x00" in data:
            raise InputError(f"prompt file {path} is binary, not text")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(f"prompt file {path} is not UTF-8 text") from None
    except InputError:
        if verdict == TOO_LARGE:  # not text either: then it is the oversized image it claims to be
            raise InputError(too_large) from None
        raise
    text = clean_prompt(text)
    if not has_visible_text(text):
        # only whitespace, or characters that show nothing (controls, zero-width): as good as empty
        raise InputError(f"prompt file {path} has only whitespace, control or zero-width characters")
    return text, None


def read_json_input(path: Path, flag: str) -> Any:
    data = read_regular(path, flag, MAX_JSON_BYTES)
    if len(data) > MAX_JSON_BYTES:
        raise InputError(f"{flag} {path} is over {MAX_JSON_BYTES} bytes; it is not a file fbloop wrote")
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{flag} {path} is not valid JSON") from None
    except RecursionError:
        raise InputError(f"{flag} {path} is not valid: JSON nested too deeply") from None


def nonempty_path(value: str) -> Path:
    """Parser of path options fbloop writes to (`--output-dir`, `--html`): Path("") is the working directory,
    so an empty value (an unset shell variable, say) would quietly write there."""
    if not value.strip():
        from pydantic_core import PydanticCustomError  # Typer validates options with pydantic: no "Value error, "

        raise PydanticCustomError("empty_path", "an empty path would write into the working directory")
    return Path(value)


@dataclass
class ClipInput:
    """One clip of a storyboard / motion-prompts file, checked: its entry and its two frames."""

    number: int
    entry: dict[str, Any]
    frames: dict[str, Path] = field(default_factory=dict)


def validate_clips(data: Any, source: Path, flag: str, *, needs_motion_prompt: bool) -> list[ClipInput]:
    """Check every clip and every frame of a storyboard or motion-prompts file before anything is copied."""
    if not isinstance(data, dict) or not isinstance(data.get("clips"), list) or not data["clips"]:
        raise InputError(f"{flag} {source} has no clips list")
    base = run_root_of(source)
    clips: list[ClipInput] = []
    seen: set[int] = set()
    for clip in data["clips"]:
        try:
            number = int(clip["clip"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{source}: every clip needs a 'clip' number") from None
        if number in seen:
            raise InputError(f"{source}: clip {number} appears twice")
        seen.add(number)
        entry = dict(clip)
        entry.pop("iterations", None)
        checked = ClipInput(number, entry)
        for end in ("start", "end"):
            rel = clip.get(f"{end}_frame")
            if not isinstance(rel, str) or not rel.strip():
                raise InputError(f"{source}: clip {number} has no {end}_frame")
            frame = Path(rel) if Path(rel).is_absolute() else base / rel
            checked.frames[end] = validate_image(frame, f"clip {number} {end} frame")
        if needs_motion_prompt and not isinstance(entry.get("motion_prompt"), str):
            raise InputError(f"{source}: clip {number} has no motion_prompt")
        entry.setdefault("prompt", data.get("prompt", ""))
        clips.append(checked)
    return clips


def run_root_of(path: Path) -> Path:
    """Frame paths in these files are relative to their run folder (the parent of the stage folder)."""
    parent = path.resolve().parent
    return parent.parent if parent.name.startswith("stage_") else parent
