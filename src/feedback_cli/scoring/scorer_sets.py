"""Resolves the scorer sets a run uses: from `--scorers` / FBLOOP_SCORERS, or the backend's default.

The default sets are what the scorer classes declare (`Scorer.default_set`), read through the registry."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from feedback_cli.installation import extra_install_command
from feedback_cli.scoring.registry import names_of, split_names

if TYPE_CHECKING:
    from feedback_cli.config import Settings


def everything_here(name: str, settings: Settings) -> bool:
    """Every checkpoint and package `name` needs is already here (nothing would be downloaded)."""
    from feedback_cli.scoring import requirements

    return all(requirements.status(req, settings).available for req in requirements.requirements(name, settings))


def default_image_scorers(settings: Settings) -> list[str]:
    """The real image scorers a default run uses: the standard set plus optional ones whose weights are here."""
    optional = [n for n in names_of("image", "optional") if everything_here(n, settings)]
    return [*names_of("image", "standard"), *optional]


def scoring_extra_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


def default_spec(backend: str, settings: Settings | None = None) -> tuple[str, str | None]:
    """The scorer spec a backend uses when the user names none, and a notice if it had to fall back."""
    if backend != "cloud":
        return "offline", None
    if settings is None:  # the caller did not pass its settings: the optional scorers' paths come from env/.env
        from feedback_cli.config import load_settings

        settings = load_settings()
    real = [*default_image_scorers(settings), *names_of("video", "standard")]
    if not real:
        return "offline", "real scorers are not part of this build; scoring with offline statistics"
    if not scoring_extra_installed():
        return "offline", (
            f"the scoring extra is not installed ({extra_install_command('scoring')}); scoring with offline statistics"
        )
    return ",".join(real), None


def resolve(
    spec: str | None, backend: str, settings: Settings | None = None
) -> tuple[str, list[str], list[str], str | None]:
    """-> (spec, image scorer names, video scorer names, notice)."""
    notice = None
    if not spec:
        spec, notice = default_spec(backend, settings)
    images, videos = split_names(spec)
    if not images:
        images = list(names_of("image", "offline"))
        notice = "no image scorer named; images are scored with offline statistics"
    if not videos:
        videos = list(names_of("video", "offline"))
        notice = "no video scorer named; videos are scored with offline statistics"
    return spec, images, videos, notice
