"""The choices the CLI offers, as plain enums: importing them costs nothing (no pydantic), so the
commands can declare their options without slowing `fbloop --help`."""

from __future__ import annotations

from enum import StrEnum


class Workflow(StrEnum):
    full = "full"
    image_only = "image-only"
    video_only = "video-only"
    prompt_only = "prompt-only"


class Backend(StrEnum):
    auto = "auto"
    offline = "offline"
    cloud = "cloud"
