"""What a scorer needs on disk (or installed), and whether it is there. No torch import here.

Each scorer class declares its own requirements (`Scorer.requirements(settings)`, built from `Requirement`,
`hf` and `url` below); this module checks them. Used by `fbloop models list/download` and by `preflight`.
The built-ins' checkpoints (docs/scorers.md §I.6 table):

| scorer | needs |
|---|---|
| pickscore | `pickscore_model` (PickScore_v1, CLIP-H, ~3.9 GB) + `pickscore_processor` (tokenizer/preprocessor files) |
| clip-score | `clip_model` (openai/clip-vit-large-patch14, ~1.7 GB) |
| aesthetic | `clip_model` + `aesthetic_head` (LAION improved MLP, 3.7 MB, sha256-checked) |
| vqascore | an OpenAI-compatible API (openai backend) or the t2v_metrics package |
| hpsv2 | the open_clip_torch package + `FBLOOP_HPSV2_CHECKPOINT` (HPS_v2.1_compressed.pt, ~2 GB) |
| subject_consistency | `dino_model` (facebook/dino-vitb16, ~0.35 GB) |
| background_consistency | `vbench_clip_b32_model` (openai/clip-vit-base-patch32, ~0.6 GB) |
| aesthetic_quality | `clip_model` + `vbench_aesthetic_head` (LAION V1 linear head, ~4 KB) |
| imaging_quality | the pyiqa package + `musiq_weights` (MUSIQ-SPAQ, ~0.1 GB) |
| dynamic_degree | `raft_weights` (torchvision RAFT-large C_T_V1, ~21 MB) |
| temporal_flickering | nothing |
| motion_smoothness | VBench's official backend (`vbench_python`), which fetches AMT-S itself |

With `vbench_backend=official` every video dimension needs only `vbench_python`.
Sizes are approximate (the safetensors files of the hub repos).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from feedback_cli.scoring import weights

if TYPE_CHECKING:
    from feedback_cli.config import Settings
    from feedback_cli.scoring.base import Scorer

Kind = Literal["hf-model", "hf-processor", "url", "python", "api", "official"]

#: approximate download sizes of the default hub checkpoints
_HF_SIZES: dict[str, int] = {
    "yuvalkirstain/PickScore_v1": 3_940_000_000,
    "laion/CLIP-ViT-H-14-laion2B-s32B-b79K": 4_000_000,  # processor files only
    "openai/clip-vit-large-patch14": 1_710_000_000,
    "facebook/dino-vitb16": 343_000_000,
    "openai/clip-vit-base-patch32": 605_000_000,
}


@dataclass(frozen=True)
class Requirement:
    """One thing a scorer needs: a hub checkpoint, a weight file, a package, an API or the VBench env."""

    scorer: str
    kind: Kind
    label: str
    #: Settings field that chooses it ("" when none)
    setting: str
    #: hub id, local path, URL file name, package name, ...
    ref: str
    approx_bytes: int | None = None
    url_file: weights.UrlFile | None = None
    #: for kind "python": what to pip install when it is not the module name `ref` (open_clip -> open_clip_torch)
    package: str = ""
    #: what preflight says when it is missing, and the fix, when the generic line would not tell enough
    missing: str = ""
    hint: str = ""
    #: for kind "url": the local file the user chose instead of the download (None: the download)
    override: str | None = None
    #: the variable that chooses it, when it is not FBLOOP_<setting> (a scorer's own option)
    env: str = ""

    @property
    def env_var(self) -> str:
        if self.env:
            return self.env
        return f"FBLOOP_{self.setting.upper()}" if self.setting else ""

    @property
    def pip_name(self) -> str:
        return self.package or self.ref


@dataclass(frozen=True)
class Status:
    available: bool
    #: "cached", "local", "downloaded", "installed", "missing", "not installed", "not a file", ...
    state: str
    detail: str = ""


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            value = n / size
            return f"~{value:.0f} {unit}" if value >= 10 else f"~{value:.1f} {unit}"
    return f"~{n} B"


def hf(scorer: str, setting: str, label: str, settings: Settings, kind: Kind = "hf-model") -> Requirement:
    """A Hugging Face hub checkpoint (or local folder) chosen by the Settings field `setting`."""
    ref = str(getattr(settings, setting))
    return Requirement(scorer, kind, label, setting, ref, _HF_SIZES.get(ref))


def url(scorer: str, setting: str, spec: weights.UrlFile, settings: Settings) -> Requirement:
    """A weight file downloaded from `spec.url`, or the local file the Settings field `setting` names."""
    override = getattr(settings, setting)
    chosen = str(override) if override else None
    ref = chosen or spec.filename
    return Requirement(scorer, "url", spec.label, setting, ref, spec.approx_bytes, spec, override=chosen)


def option_url(scorer: type[Scorer], option: str, spec: weights.UrlFile, settings: Settings) -> Requirement:
    """A weight file downloaded from `spec.url`, or the local file the scorer's own option `option` names
    (`FBLOOP_<SCORER>_<OPTION>`, `scoring/base.py::ScorerOptions`)."""
    from feedback_cli.scoring.base import options_env_prefix

    override = getattr(scorer.options(settings), option)
    chosen = str(override) if override else None
    env = options_env_prefix(scorer.name) + option.upper()
    ref = chosen or spec.filename
    return Requirement(scorer.name, "url", spec.label, "", ref, spec.approx_bytes, spec, override=chosen, env=env)


def requirements(scorer: str, settings: Settings) -> list[Requirement]:
    """Everything `scorer` needs with these settings, as its class declares (empty for an unknown name)."""
    from feedback_cli.scoring import registry

    if scorer not in registry.targets():
        return []
    return registry.scorer_class(scorer).requirements(settings)


def __getattr__(attr: str) -> Any:
    """IMAGE_MODEL_SCORERS, VIDEO_MODEL_SCORERS, ALL_MODEL_SCORERS: derived from the registry when read."""
    from feedback_cli.scoring import registry

    kinds: dict[str, Any] = {"IMAGE_MODEL_SCORERS": "image", "VIDEO_MODEL_SCORERS": "video"}
    if attr in kinds:
        return registry.model_names(kinds[attr])
    if attr == "ALL_MODEL_SCORERS":
        return registry.model_names("image") + registry.model_names("video")
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


# --------------------------------------------------------------------------- status


def hf_cache_dir() -> Path:
    """The hub cache, read from the environment now (HF_HUB_CACHE, HF_HOME, default ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "huggingface" / "hub"


def looks_local(ref: str) -> bool:
    """A filesystem path rather than a hub id (hub ids are `owner/name`, never absolute or dotted)."""
    return ref.startswith(("/", "./", "../", "~")) or Path(ref).expanduser().exists()


_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json")


def _has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("pytorch_model*.bin"))


def _has_processor(folder: Path) -> bool:
    return any((folder / f).is_file() for f in _PROCESSOR_FILES) and any(
        (folder / f).is_file() for f in _TOKENIZER_FILES
    )


def hf_snapshot(ref: str) -> Path | None:
    """The newest cached snapshot folder of hub repo `ref`, or None."""
    repo = hf_cache_dir() / ("models--" + ref.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    main = repo / "refs" / "main"
    if main.is_file():
        folder = snapshots / main.read_text().strip()
        if folder.is_dir():
            return folder
    folders = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    return folders[0] if folders else None


def status(req: Requirement, settings: Settings) -> Status:
    """Is `req` usable here without a download?"""
    if req.kind in ("hf-model", "hf-processor"):
        check = _has_weights if req.kind == "hf-model" else _has_processor
        if looks_local(req.ref):
            folder = Path(req.ref).expanduser()
            if not folder.is_dir():
                return Status(False, "missing", f"{folder} is not a folder")
            ok = check(folder) and (req.kind == "hf-processor" or (folder / "config.json").is_file())
            return Status(ok, "local" if ok else "incomplete", str(folder))
        snap = hf_snapshot(req.ref)
        if snap is None:
            return Status(False, "missing", "not in the Hugging Face cache")
        ok = check(snap) and (req.kind == "hf-processor" or (snap / "config.json").is_file())
        return Status(ok, "cached" if ok else "incomplete", str(snap))
    if req.kind == "url":
        assert req.url_file is not None
        override = req.override
        if override:
            path = Path(str(override)).expanduser()
            return Status(path.is_file(), "local" if path.is_file() else "not a file", str(path))
        path = weights.default_path(req.url_file, settings)
        return Status(path.is_file(), "downloaded" if path.is_file() else "missing", str(path))
    if req.kind == "python":
        ok = importlib.util.find_spec(req.ref) is not None
        from feedback_cli.installation import package_install_command

        return Status(ok, "installed" if ok else "not installed", package_install_command(req.pip_name))
    if req.kind == "api":
        ok = settings.openai_api_key is not None or bool(settings.openai_base_url)
        return Status(ok, "configured" if ok else "no key", settings.openai_base_url or "api.openai.com")
    if req.kind == "official":
        if not settings.vbench_python:
            return Status(False, "not configured", "set FBLOOP_VBENCH_PYTHON")
        python = Path(settings.vbench_python).expanduser()
        ok = python.exists() and (python.parent / "vbench").exists()
        return Status(ok, "configured" if ok else "missing", str(python))
    return Status(True, "n/a")
