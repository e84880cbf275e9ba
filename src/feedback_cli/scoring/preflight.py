"""Checks that run before any paid call: can every chosen scorer run here? (docs/scorers.md §I.6 for what each needs.)

What is checked is what each scorer class declares (`scoring/base.py::Scorer`): the python modules its code
imports, its own availability check, and its requirements; no scorer is named here.

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
from feedback_cli.installation import extra_install_command, package_install_command
from feedback_cli.scoring import registry
from feedback_cli.scoring import requirements as reqs
from feedback_cli.scoring.weights import hub_offline

if TYPE_CHECKING:
    from feedback_cli.config import Settings


def check(name: str, settings: Settings) -> ScorerUnavailable | None:
    """The reason `name` cannot run here, or None. Unknown and offline-statistics scorers pass."""
    if name not in registry.targets():
        return None
    try:
        cls = registry.scorer_class(name)
    except ScorerUnavailable as exc:  # its module cannot be imported
        return exc
    if cls.offline:
        return None
    missing = [m for m in cls.needs_modules if importlib.util.find_spec(m) is None]
    if missing:  # the install command for how fbloop was installed (pipx inject / uv tool / pip)
        return ScorerUnavailable(f"{name}: {', '.join(missing)} not installed", hint=extra_install_command(cls.extra))
    problem = cls.unavailable(settings)
    if problem is not None:
        return problem
    offline = hub_offline()
    for req in cls.requirements(settings):
        st = reqs.status(req, settings)
        if st.available:
            continue
        if req.kind in ("hf-model", "hf-processor"):
            if reqs.looks_local(req.ref):
                return ScorerUnavailable(f"{name}: {req.env_var}={req.ref}: {st.state} ({st.detail})")
            if offline:
                return ScorerUnavailable(
                    f"{name}: {req.label} ({req.ref}) is not in the local Hugging Face cache and HF_HUB_OFFLINE=1",
                    hint=f"fbloop models download {name}",
                )
        elif req.kind == "url":
            if req.override:
                return ScorerUnavailable(f"{name}: {req.env_var}={req.ref} is not a file")
            if offline:
                return ScorerUnavailable(
                    f"{name}: {req.label} is not downloaded ({st.detail}) and HF_HUB_OFFLINE=1",
                    hint=f"fbloop models download {name}",
                )
        elif req.kind == "python":
            message = req.missing or f"{name}: the {req.ref} package is not installed"
            return ScorerUnavailable(message, hint=req.hint or package_install_command(req.pip_name))
        elif req.kind == "official":
            from feedback_cli.scoring.vbench_official import vbench_executable

            try:
                vbench_executable(settings, name)
            except ScorerUnavailable as exc:
                if req.missing:
                    return ScorerUnavailable(req.missing, hint=req.hint or exc.hint)
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
