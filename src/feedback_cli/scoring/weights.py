"""Weight files that do not live on the Hugging Face hub: where they come from, where they go, how they are checked.

Sources (docs/scorers.md):
- LAION improved aesthetic MLP `sac+logos+ava1-l14-linearMSE.pth`, 3,714,759 B, sha256 21dd590f... (§I.3).
- LAION aesthetic predictor V1 linear head `sa_0_4_vit_l_14_linear.pth` used by VBench aesthetic_quality (§V.7);
  docs/scorers.md gives no digest for it, so it is checked by shape (a `Linear(d, 1)` state dict) only.
- MUSIQ-SPAQ `musiq_spaq_ckpt-358bb6af.pth` for VBench imaging_quality (§V.8); the file name carries the first
  8 hex digits of its sha256 (the torch.hub convention), which is checked.
- torchvision RAFT-large `C_T_V1` (`raft_large_C_T_V1-22a6c225.pth`, §V.6a), stored where torchvision's own
  loader looks (`$TORCH_HOME/hub/checkpoints`), hash prefix checked the same way.

This module imports neither torch nor transformers: `fbloop models list` and the preflight use it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from feedback_cli.errors import ScorerUnavailable

if TYPE_CHECKING:
    from feedback_cli.config import Settings

#: progress callback: (bytes so far, total bytes or None)
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class UrlFile:
    """One downloadable weight file."""

    key: str
    label: str
    url: str
    filename: str
    approx_bytes: int
    #: full sha256 hex digest, when known
    sha256: str | None = None
    #: leading hex digits of the sha256 carried in the file name (torch.hub convention)
    sha256_prefix: str | None = None
    #: "fbloop" -> settings.weights_dir; "torch" -> torch.hub's checkpoints folder
    home: str = "fbloop"


AESTHETIC_MLP = UrlFile(
    key="aesthetic-mlp",
    label="LAION improved aesthetic MLP (sac+logos+ava1-l14-linearMSE)",
    url=(
        "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/"
        "sac%2Blogos%2Bava1-l14-linearMSE.pth"
    ),
    filename="sac+logos+ava1-l14-linearMSE.pth",
    approx_bytes=3_714_759,
    sha256="21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0",
)
VBENCH_AESTHETIC_V1 = UrlFile(
    key="aesthetic-v1-linear",
    label="LAION aesthetic predictor V1 linear head (sa_0_4_vit_l_14_linear)",
    url="https://github.com/LAION-AI/aesthetic-predictor/raw/main/sa_0_4_vit_l_14_linear.pth",
    filename="sa_0_4_vit_l_14_linear.pth",
    approx_bytes=4_000,
)
MUSIQ_SPAQ = UrlFile(
    key="musiq-spaq",
    label="MUSIQ trained on SPAQ (pyiqa)",
    url="https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/musiq_spaq_ckpt-358bb6af.pth",
    filename="musiq_spaq_ckpt-358bb6af.pth",
    approx_bytes=110_000_000,
    sha256_prefix="358bb6af",
)
RAFT_LARGE_C_T_V1 = UrlFile(
    key="raft-large-c-t-v1",
    label="torchvision RAFT-large C_T_V1",
    url="https://download.pytorch.org/models/raft_large_C_T_V1-22a6c225.pth",
    filename="raft_large_C_T_V1-22a6c225.pth",
    approx_bytes=21_100_000,
    sha256_prefix="22a6c225",
    home="torch",
)


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE asks for no network (read now, not at import time)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def torch_hub_checkpoints() -> Path:
    """torch.hub's checkpoints folder, computed like `torch.hub.get_dir()` without importing torch."""
    torch_home = os.environ.get("TORCH_HOME")
    base = Path(torch_home).expanduser() if torch_home else _cache_home() / "torch"
    return base / "hub" / "checkpoints"


def weights_dir(settings: Settings) -> Path:
    if settings.weights_dir is not None:
        return Path(settings.weights_dir).expanduser()
    return _cache_home() / "fbloop" / "weights"


def default_path(spec: UrlFile, settings: Settings) -> Path:
    """Where the file lives once downloaded."""
    folder = torch_hub_checkpoints() if spec.home == "torch" else weights_dir(settings)
    return folder / spec.filename


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(spec: UrlFile, path: Path) -> None:
    """Raise ScorerUnavailable if the file's sha256 does not match what docs/scorers.md / its name says."""
    if spec.sha256 is None and spec.sha256_prefix is None:
        return
    actual = sha256_of(path)
    expected = spec.sha256 or spec.sha256_prefix or ""
    if not actual.startswith(expected):
        raise ScorerUnavailable(
            f"{path} has sha256 {actual[:16]}..., expected {expected[:16]}... for {spec.label}",
            hint="delete it and run `fbloop models download`",
        )


def resolve(
    spec: UrlFile,
    override: str | None,
    settings: Settings,
    scorer: str,
    *,
    download: bool = True,
    setting_name: str = "",
) -> Path:
    """The local file for `spec`: the user's path when a setting names one, else the downloaded copy.

    A local path from a setting is used as given (the user vouches for it); the default download is
    checked by sha256. With HF_HUB_OFFLINE=1 nothing is downloaded and a missing file is an error that
    names `fbloop models download SCORER`.
    """
    if override:
        path = Path(override).expanduser()
        if path.is_file():
            return path
        env = f"FBLOOP_{setting_name.upper()}" if setting_name else "its setting"
        raise ScorerUnavailable(f"{scorer}: {env} points at {path}, which is not a file")
    path = default_path(spec, settings)
    if path.is_file():
        return path
    if hub_offline() or not download:
        raise ScorerUnavailable(
            f"{scorer}: {spec.label} is not downloaded ({path})" + (" and HF_HUB_OFFLINE=1" if hub_offline() else ""),
            hint=f"fbloop models download {scorer}",
        )
    fetch(spec, path, timeout=settings.request_timeout_s)
    return path


def fetch(spec: UrlFile, dest: Path, *, timeout: float = 120.0, progress: Progress | None = None) -> Path:
    """Download `spec` to `dest` atomically (temp file + rename) and check its digest."""
    import httpx

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(fd, "wb") as out,
            httpx.stream("GET", spec.url, follow_redirects=True, timeout=timeout) as resp,
        ):
            if resp.status_code != 200:
                raise ScorerUnavailable(f"downloading {spec.url} failed: HTTP {resp.status_code}")
            total = int(resp.headers.get("content-length") or 0) or None
            done = 0
            for chunk in resp.iter_bytes(1 << 16):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        verify(spec, tmp)
        os.replace(tmp, dest)
    except httpx.HTTPError as exc:
        raise ScorerUnavailable(
            f"downloading {spec.label} from {spec.url} failed: {exc}",
            hint="check the network, or point the setting at a local copy",
        ) from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest
