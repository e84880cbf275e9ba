"""Checks that run before any paid call: can every chosen scorer run here? (docs/scorers.md §I.6 for what each needs.)

`preflight(names, settings)` raises ScorerUnavailable for the first scorer that cannot run, with a hint such as
`fbloop models download NAME`; `problems(names, settings)` returns all of them by scorer name so the engine can
drop the unavailable ones instead. Nothing here imports torch or touches the network: weights are looked up in
the Hugging Face cache and fbloop's weights folder. Weights missing from the cache are only a problem when
HF_HUB_OFFLINE=1 (otherwise the first use downloads them); a missing local path always is.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import TYPE_CHECKING

from feedback_cli.errors import ScorerUnavailable
from feedback_cli.installation import extra_install_command
from feedback_cli.scoring import checkpoints
from feedback_cli.scoring.weights import hub_offline

if TYPE_CHECKING:
    from feedback_cli.config import Settings

#: scorers whose code imports torch
_NEEDS_TORCH = frozenset(checkpoints.ALL_MODEL_SCORERS) - {"vqascore"}


def check(name: str, settings: Settings) -> ScorerUnavailable | None:
    """The reason `name` cannot run here, or None. Unknown and offline-statistics scorers pass."""
    if name not in checkpoints.ALL_MODEL_SCORERS:
        return None
    if name in _NEEDS_TORCH:
        missing = [m for m in ("torch", "torchvision", "transformers") if importlib.util.find_spec(m) is None]
        if missing:
            return ScorerUnavailable(
                f"{name}: {', '.join(missing)} not installed", hint=extra_install_command("scoring")
            )
    if name == "vqascore":
        from feedback_cli.scoring.vqascore import check as vqa_check

        try:
            vqa_check(settings)
        except ScorerUnavailable as exc:
            return exc
    offline = hub_offline()
    for req in checkpoints.requirements(name, settings):
        st = checkpoints.status(req, settings)
        if st.available:
            continue
        if req.kind in ("hf-model", "hf-processor"):
            if checkpoints.looks_local(req.ref):
                return ScorerUnavailable(f"{name}: {req.env_var}={req.ref}: {st.state} ({st.detail})")
            if offline:
                return ScorerUnavailable(
                    f"{name}: {req.label} ({req.ref}) is not in the local Hugging Face cache and HF_HUB_OFFLINE=1",
                    hint=f"fbloop models download {name}",
                )
        elif req.kind == "url":
            if getattr(settings, req.setting):
                return ScorerUnavailable(f"{name}: {req.env_var}={req.ref} is not a file")
            if offline:
                return ScorerUnavailable(
                    f"{name}: {req.label} is not downloaded ({st.detail}) and HF_HUB_OFFLINE=1",
                    hint=f"fbloop models download {name}",
                )
        elif req.kind == "python":
            hint = (
                "pip install pyiqa, or FBLOOP_VBENCH_PYTHON=<python of a VBench env> for the official backend"
                if req.ref == "pyiqa"
                else f"pip install {req.pip_name}"
            )
            return ScorerUnavailable(f"{name}: the {req.ref} package is not installed", hint=hint)
        elif req.kind == "official":
            from feedback_cli.scoring.vbench_official import vbench_executable

            try:
                vbench_executable(settings, name)
            except ScorerUnavailable as exc:
                if name == "motion_smoothness" and not settings.vbench_python:
                    return ScorerUnavailable(
                        "motion_smoothness needs the AMT-S interpolation network, which only VBench's official "
                        "backend runs",
                        hint="install vbench in its own env and set FBLOOP_VBENCH_PYTHON=<that env's python>",
                    )
                return exc
        elif req.kind == "api":
            return ScorerUnavailable(f"{name}: {req.label} is not configured", hint="set OPENAI_API_KEY")
    return None


def problems(scorer_names: Iterable[str], settings: Settings) -> dict[str, ScorerUnavailable]:
    """Every scorer that cannot run, by name."""
    out: dict[str, ScorerUnavailable] = {}
    for name in scorer_names:
        problem = check(name, settings)
        if problem is not None:
            out[name] = problem
    return out


def preflight(scorer_names: Iterable[str], settings: Settings) -> None:
    """Raise ScorerUnavailable (naming the scorer and the fix) if any chosen scorer cannot run here."""
    found = problems(scorer_names, settings)
    if not found:
        return
    first_name, first = next(iter(found.items()))
    if len(found) > 1:
        others = ", ".join(n for n in found if n != first_name)
        raise ScorerUnavailable(f"{first.message} (also unavailable: {others})", hint=first.hint)
    raise first
