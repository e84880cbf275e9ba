"""The `official` VBench backend: VBench's own CLI in its own Python environment (docs/scorers.md §V.0, §V.10).

`settings.vbench_python` names the python of an environment where vbench is installed (e.g. the 0.1.5 wheel with
`--no-deps` plus the handful of dependencies §V.0 lists). Its `vbench` console script, next to that python, is run
once per dimension as

    vbench evaluate --videos_path DIR --dimension DIM --mode custom_input --prompt_file PROMPTS.json
                    --output_path OUT [--imaging_quality_preprocessing_mode MODE]

with that environment's bin folder first on PATH (the `vbench evaluate` wrapper launches `python -m
torch.distributed.run ...` through the shell). DIR holds links named `videoNNN.mp4` to the inputs (custom_input
lists only .mp4 and .gif files, §V.10); PROMPTS.json is the `{absolute video path: prompt}` dict `--prompt_file`
takes. VBench writes `OUT/results_<time>_eval_results.json` = `{dim: [aggregate, [{"video_path", "video_results"},
...]]}`; each video's `video_results` is read back by file name.

The numbers are VBench's: dynamic_degree's boolean becomes 1.0 / 0.0, and imaging_quality's per-video MUSIQ mean
(0-100) is divided by 100 as VBench divides its aggregate (§V.8), so raw values mean the same as the native ones.
VBench's launcher hard-codes `torch.device("cuda")`, so the official backend needs a CUDA machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feedback_cli.errors import ScorerUnavailable

if TYPE_CHECKING:
    from feedback_cli.config import Settings

SUPPORTED_SUFFIXES = frozenset({".mp4", ".gif"})
_SAFE_PATH = re.compile(r"^[\w./+\-]+$")
_results: dict[tuple[Any, ...], list[float]] = {}
_lock = threading.Lock()


def vbench_executable(settings: Settings, dimension: str = "vbench") -> tuple[Path, Path]:
    """(python, vbench console script) of the VBench env, or ScorerUnavailable saying what is missing."""
    if not settings.vbench_python:
        raise ScorerUnavailable(
            f"{dimension}: the official VBench backend needs FBLOOP_VBENCH_PYTHON",
            hint="create a venv, `pip install vbench --no-deps` + its deps (docs/scorers.md §V.0), "
            "and set FBLOOP_VBENCH_PYTHON to its python",
        )
    python = Path(settings.vbench_python).expanduser()
    if not python.exists():
        raise ScorerUnavailable(f"{dimension}: FBLOOP_VBENCH_PYTHON={python} does not exist")
    exe = python.parent / "vbench"
    if not exe.exists():
        raise ScorerUnavailable(
            f"{dimension}: no `vbench` command next to {python}",
            hint=f"{python} -m pip install vbench --no-deps",
        )
    return python, exe


def _video_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size)


def build_command(
    exe: Path, videos_dir: Path, dimension: str, prompt_file: Path, out_dir: Path, settings: Settings
) -> list[str]:
    cmd = [
        str(exe),
        "evaluate",
        "--videos_path",
        str(videos_dir),
        "--dimension",
        dimension,
        "--mode",
        "custom_input",
        "--prompt_file",
        str(prompt_file),
        "--output_path",
        str(out_dir),
    ]
    if dimension == "imaging_quality":
        cmd += ["--imaging_quality_preprocessing_mode", settings.vbench_imaging_preprocessing]
    return cmd


def parse_results(path: Path, dimension: str, names: Sequence[str]) -> list[float]:
    """Per-video values of `dimension` from VBench's `*_eval_results.json`, in the order of `names` (file names)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        _aggregate, rows = data[dimension]
        by_name = {Path(str(r["video_path"])).name: r["video_results"] for r in rows}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ScorerUnavailable(f"{dimension}: cannot read VBench's results {path}: {exc!r}") from exc
    out = []
    for name in names:
        if name not in by_name:
            raise ScorerUnavailable(f"{dimension}: VBench returned no result for {name} ({path})")
        value = by_name[name]
        if isinstance(value, bool):
            value = 1.0 if value else 0.0
        value = float(value)
        if dimension == "imaging_quality":
            value /= 100.0
        out.append(value)
    return out


def run_official(
    videos: Sequence[Path], prompt: str, dimensions: Sequence[str], settings: Settings
) -> dict[str, list[float]]:
    """Run VBench's CLI on `videos` for each dimension (memoised per video, prompt and dimension)."""
    videos = [Path(v) for v in videos]
    out: dict[str, list[float]] = {}
    for dim in dimensions:
        key = (dim, prompt, tuple(_video_key(v) for v in videos), settings.vbench_imaging_preprocessing)
        with _lock:
            hit = _results.get(key)
        if hit is None:
            hit = _run_one(videos, prompt, dim, settings)
            with _lock:
                _results[key] = hit
        out[dim] = list(hit)
    return out


def _run_one(videos: Sequence[Path], prompt: str, dimension: str, settings: Settings) -> list[float]:
    python, exe = vbench_executable(settings, dimension)
    bad = [v.name for v in videos if v.suffix.lower() not in SUPPORTED_SUFFIXES]
    if bad:
        raise ScorerUnavailable(
            f"{dimension}: VBench's custom input reads only .mp4 and .gif files, not {', '.join(bad)}"
        )
    with tempfile.TemporaryDirectory(prefix="fbloop-vbench-") as tmp_name:
        tmp = Path(tmp_name).resolve()
        if not _SAFE_PATH.match(str(tmp)):
            raise ScorerUnavailable(
                f"{dimension}: VBench's CLI passes paths through a shell unquoted; the temp folder {tmp} is unsafe",
                hint="set TMPDIR to a path without spaces",
            )
        videos_dir, out_dir = tmp / "videos", tmp / "results"
        videos_dir.mkdir()
        names = []
        prompts: dict[str, str] = {}
        for i, video in enumerate(videos):
            link = videos_dir / f"video{i:03d}{video.suffix.lower()}"
            try:
                link.symlink_to(video.resolve())
            except OSError:
                shutil.copyfile(video, link)
            names.append(link.name)
            prompts[str(link)] = prompt
        prompt_file = tmp / "prompts.json"
        prompt_file.write_text(json.dumps(prompts, ensure_ascii=False), encoding="utf-8")
        cmd = build_command(exe, videos_dir, dimension, prompt_file, out_dir, settings)
        env = dict(os.environ)
        env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
        try:
            proc = subprocess.run(
                cmd,
                cwd=tmp,
                env=env,
                capture_output=True,
                text=True,
                timeout=settings.prediction_deadline_s,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ScorerUnavailable(f"{dimension}: running VBench's CLI failed: {exc}") from exc
        results = sorted(out_dir.glob("*_eval_results.json"), key=lambda p: p.stat().st_mtime)
        if proc.returncode != 0 or not results:
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or ["no output"]
            raise ScorerUnavailable(
                f"{dimension}: VBench's CLI exited {proc.returncode} without results: {tail[0][:300]}",
                hint="run the same `vbench evaluate` by hand in that env to see why (it needs CUDA)",
            )
        return parse_results(results[-1], dimension, names)


def clear_cache() -> None:
    with _lock:
        _results.clear()
