"""Issue 15, scripting and cloud set-up as a user sees them: `--json` (nothing but one JSON document on stdout,
progress and the `backend:` line on stderr), dry runs as JSON and against `--max-cost`, runs found by id from
any directory, `--seed` and `-n` alike on `run` and `stage`, each provider role chosen on its own (real agents
with offline media), and a missing scoring extra named with the install command for how fbloop was installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any, ClassVar

import pytest

from feedback_cli.scoring.base import DefaultSet
from feedback_cli.scoring.offline import SharpnessScorer
from tests.conftest import EXAMPLE, only_run, read_json
from tests.test_checkpoint import rewrite_state

REPO = Path(__file__).resolve().parents[1]
FAST_CLOUD = {"FBLOOP_POLL_INTERVAL_S": "0.02", "FBLOOP_SCORERS": "offline", "REPLICATE_POLL_INTERVAL": "0.05"}


def only_json(stdout: str) -> Any:
    """stdout is one JSON document and nothing else (json.loads refuses anything around it)."""
    return json.loads(stdout)


def backend_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("backend:")]


def runs_under(root: Path) -> list[Path]:
    return [p.parent for p in root.rglob("workflow_checkpoint.json")]


# --- --json on run and stage --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--workflow", "prompt-only"],
        ["--workflow", "image-only", "-n", "2"],
        ["--workflow", "full", "-n", "2", "--num-video-attempts", "1", "--storyboard", "--clips", "1"],
    ],
    ids=["prompt-only", "image-only", "full-storyboard"],
)
def test_run_json_is_the_summary_and_only_it(cli, tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "runs"
    result = cli("run", EXAMPLE, *args, "--output-dir", out, "--json")
    assert result.exit_code == 0, result.stderr
    data = only_json(result.stdout)
    run = only_run(out)
    # the same document as workflow_summary.json: the same schema, the same figures
    assert data == read_json(run / "workflow_summary.json")
    assert data["run_dir"] == str(run.absolute()) and data["status"] == "completed"
    assert data["stages"] and all("scores" in s and "cost_usd" in s for s in data["stages"])
    assert {"total_cost_usd", "total_time_s", "best_image", "best_video", "providers"} <= set(data)
    if "image-only" in args or "full" in args:
        assert data["best_image"] and (run / data["best_image"]).is_file()
    if "full" in args:
        assert data["best_video"] and (run / data["best_video"]).is_file()
    # progress and the backend line on stderr, nothing of it on stdout
    assert len(backend_lines(result.stderr)) == 1
    assert "Stage 1: Image prompt" in result.stderr and f"run {data['run_id']}" in result.stderr
    assert "backend:" not in result.stdout and "Stage 1" not in result.stdout


def test_run_without_json_keeps_the_table(cli, tmp_path: Path) -> None:
    result = cli("run", EXAMPLE, "--workflow", "prompt-only", "--output-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    assert "fbloop run" in result.stdout and "backend:" not in result.stdout
    assert len(backend_lines(result.stderr)) == 1
    with pytest.raises(ValueError):
        json.loads(result.stdout)


@pytest.mark.parametrize(
    ("stage", "extra"),
    [("image-prompt", []), ("image-generation", ["-n", "2"])],
)
def test_stage_json_is_the_summary_and_only_it(cli, tmp_path: Path, stage: str, extra: list[str]) -> None:
    out = tmp_path / "out"
    result = cli("stage", stage, "--prompt-file", EXAMPLE, *extra, "--output-dir", out, "--json")
    assert result.exit_code == 0, result.stderr
    data = only_json(result.stdout)
    (run,) = runs_under(out)
    assert data == read_json(run / "workflow_summary.json")
    assert data["kind"] == "stage" and data["run_dir"] == str(run.absolute())
    assert len(backend_lines(result.stderr)) == 1 and "backend:" not in result.stdout
    if stage == "image-generation":
        assert data["best_image"] and len(data["stages"][0]["files"]) >= 2


def test_stage_assemble_json_and_its_run_is_listed(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FBLOOP_OUTPUT_DIR", str(tmp_path / "runs"))
    made = cli("run", EXAMPLE, "--storyboard", "--clips", "2", "-n", "1", "--num-video-attempts", "1", "--json")
    assert made.exit_code == 0, made.stderr
    source = only_json(made.stdout)
    result = cli("stage", "assemble", source["run_dir"], "--json")
    assert result.exit_code == 0, result.stderr
    data = only_json(result.stdout)
    run = Path(data["run_dir"])
    assert run.parent == tmp_path / "runs" / "assemble" and data["final_video"]
    assert (run / data["final_video"]).is_file() and data == read_json(run / "workflow_summary.json")
    assert len(backend_lines(result.stderr)) == 1 and not backend_lines(result.stdout)
    listed = {r["run_id"] for r in only_json(cli("inspect", "--json").stdout)}
    assert listed == {source["run_id"], data["run_id"]}


def test_a_failed_run_still_prints_its_json(cli, fake_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A run stopped by --max-cost exits non-zero and still prints the summary (status, cost so far)."""
    for key, value in {**fake_server.env(), **FAST_CLOUD}.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "runs"
    result = cli(
        "run", EXAMPLE, "--backend", "cloud", "--workflow", "image-only", "-n", "2", "--max-cost", "0.001",
        "--output-dir", out, "--json",
    )  # fmt: skip
    assert result.exit_code != 0
    data = only_json(result.stdout)
    assert data["status"] != "completed" and data["backend"] == "cloud"
    assert data == read_json(only_run(out) / "workflow_summary.json")
    assert "fbloop: error:" in result.stderr and "resume with" in result.stderr


class NoisyScorer(SharpnessScorer):
    """A plug-in scorer whose library prints on stdout while it scores (as some model code does)."""

    name: ClassVar[str] = "noisy"
    default_set: ClassVar[DefaultSet] = ""  # in no default set: only where a test names it

    def score(self, images: Any, prompt: str) -> list[float]:
        print("loading weights ... done")  # the point of this scorer
        return super().score(images, prompt)


def test_json_stdout_survives_a_library_printing_during_the_run(cli, tmp_path: Path) -> None:
    from feedback_cli.scoring import registry

    registry.register("noisy", "tests.test_scripting:NoisyScorer")
    try:
        args = ("run", EXAMPLE, "--workflow", "image-only", "-n", "2", "--scorers", "noisy,flicker")
        result = cli(*args, "--output-dir", tmp_path / "runs", "--json")
    finally:
        registry.unregister("noisy")
    assert result.exit_code == 0, result.stderr
    assert only_json(result.stdout)["status"] == "completed"
    assert "loading weights ... done" in result.stderr


def test_json_with_interactive_is_refused(cli, tmp_path: Path) -> None:
    result = cli("run", EXAMPLE, "--interactive", "--json", "--output-dir", tmp_path / "runs")
    assert result.exit_code == 2 and not (tmp_path / "runs").exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--json and --interactive cannot be used together" in lines[0]


# --- dry runs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["offline", "cloud"])
def test_dry_run_json_is_the_plan(cli, tmp_path: Path, backend: str) -> None:
    """A price before signing up: --backend cloud needs no keys in a dry run."""
    result = cli("run", EXAMPLE, "--dry-run", "--json", "--backend", backend, "--output-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    plan = only_json(result.stdout)
    assert plan["backend"] == backend and [s["number"] for s in plan["stages"]] == [1, 2, 3, 4, 5]
    assert plan["cost_min_usd"] <= plan["cost_max_usd"]
    if backend == "cloud":
        assert plan["providers"] == {"agents": "openai", "media": "replicate"}
        assert plan["cost_min_usd"] > 0
        assert any("priced without keys" in note for note in plan["notes"])
    else:
        assert plan["cost_max_usd"] == 0
    assert len(backend_lines(result.stderr)) == 1 and not backend_lines(result.stdout)
    assert not (tmp_path / "runs").exists()


def test_dry_run_table_keeps_the_backend_line_on_stderr(cli, tmp_path: Path) -> None:
    result = cli("run", EXAMPLE, "--dry-run", "--backend", "cloud", "--workflow", "image-only")
    assert result.exit_code == 0, result.stderr
    assert "dry run: image-only on cloud" in result.stdout and "backend:" not in result.stdout
    assert len(backend_lines(result.stderr)) == 1


def _cloud_estimate(cli: Any) -> dict[str, Any]:
    result = cli("run", EXAMPLE, "--dry-run", "--json", "--backend", "cloud")
    assert result.exit_code == 0, result.stderr
    return only_json(result.stdout)


@pytest.mark.parametrize("where", ["below-low", "between", "above-high"])
@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_dry_run_against_max_cost(cli, where: str, as_json: bool) -> None:
    plan = _cloud_estimate(cli)
    low, high = plan["cost_min_usd"], plan["cost_max_usd"]
    assert low < high
    cap = {"below-low": low / 2, "between": (low + high) / 2, "above-high": high * 2}[where]
    result = cli("run", EXAMPLE, "--dry-run", "--backend", "cloud", "--max-cost", f"{cap:.6f}", *(["--json"] * as_json))
    errors = [line for line in result.stderr.splitlines() if line.startswith("fbloop: error:")]
    if where == "above-high":
        assert result.exit_code == 0 and not errors
    else:
        assert result.exit_code == 1
        assert len(errors) == 1 and "--max-cost" in errors[0] and "below the estimate" in errors[0]
        assert ("would stop" if where == "below-low" else "may stop") in errors[0]
    if as_json:
        data = only_json(result.stdout)
        assert data["fits_max_cost"] == {"below-low": "no", "between": "maybe", "above-high": "yes"}[where]


# --- runs found by id, FBLOOP_OUTPUT_DIR ----------------------------------------------------------------


def test_output_dir_setting_is_used_by_every_command(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "all-runs"
    monkeypatch.setenv("FBLOOP_OUTPUT_DIR", str(root))
    first = cli("run", EXAMPLE, "--workflow", "prompt-only", "--seed", "1", "--json")
    assert first.exit_code == 0, first.stderr
    run_id = only_json(first.stdout)["run_id"]
    staged = cli("stage", "image-prompt", "--prompt-file", EXAMPLE, "--seed", "1", "--json")
    assert staged.exit_code == 0, staged.stderr
    stage_run = Path(only_json(staged.stdout)["run_dir"])
    assert (root / run_id).is_dir() and stage_run.parent == root / "image_prompt"
    assert stage_run.name != run_id, "a run id names one run, even when both started in the same second"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    listed = cli("inspect", "--json")
    assert listed.exit_code == 0, listed.stderr
    ids = {r["run_id"]: r for r in only_json(listed.stdout)}
    assert run_id in ids and stage_run.name in ids
    assert ids[stage_run.name]["workflow"] == "stage image_prompt" and ids[stage_run.name]["status"] == "completed"
    assert not any(r["status"] == "broken" for r in ids.values()), ids  # DIR/{stage}/ is not a broken run

    for target in (run_id, stage_run.name):
        shown = cli("inspect", target, "--json")
        assert shown.exit_code == 0, shown.stderr
        assert only_json(shown.stdout)["run_id"] == target


def test_resume_and_inspect_take_a_run_id(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "runs"
    monkeypatch.setenv("FBLOOP_OUTPUT_DIR", str(root))
    result = cli("run", EXAMPLE, "--workflow", "image-only", "-n", "2", "--seed", "2", "--json")
    assert result.exit_code == 0, result.stderr
    summary = only_json(result.stdout)
    run = Path(summary["run_dir"])
    stage_dir = run / "stage_2_image_generation"
    for path in stage_dir.iterdir():
        path.unlink()
    stage_dir.rmdir()

    def undo_stage2(state: dict[str, Any]) -> None:
        state["status"] = "interrupted"
        state["stages"][-1].update(status="interrupted", items=[], artifacts=[], outputs={}, scores={})

    rewrite_state(run, undo_stage2)
    monkeypatch.chdir(tmp_path)
    resumed = cli("resume", summary["run_id"], "--json")
    assert resumed.exit_code == 0, resumed.stderr
    data = only_json(resumed.stdout)
    assert data["status"] == "completed" and data["run_id"] == summary["run_id"] and data["best_image"]
    assert len(backend_lines(resumed.stderr)) == 1 and "resuming" in resumed.stderr
    again = cli("run", "--resume", summary["run_id"], "--json")  # complete: says so, still one JSON document
    assert again.exit_code == 0 and only_json(again.stdout)["status"] == "completed"


def test_a_stage_run_is_resumed_by_id(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FBLOOP_OUTPUT_DIR", str(tmp_path / "runs"))
    result = cli("stage", "image-prompt", "--prompt-file", EXAMPLE, "--json")
    assert result.exit_code == 0, result.stderr
    run_id = only_json(result.stdout)["run_id"]
    again = cli("resume", run_id)
    assert again.exit_code == 0 and "already complete" in again.stderr


@pytest.mark.parametrize("command", [("resume",), ("inspect",), ("run", "--resume")])
def test_an_unknown_run_id_is_one_line(cli, tmp_path: Path, monkeypatch, command: tuple[str, ...]) -> None:
    monkeypatch.setenv("FBLOOP_OUTPUT_DIR", str(tmp_path / "runs"))
    result = cli(*command, "20990101_000000")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "20990101_000000 does not exist" in lines[0] and str(tmp_path / "runs") in lines[0]


# --- --seed and -n alike on run and stage ----------------------------------------------------------------


def _seed_of(run_dir: str) -> int:
    return int(read_json(Path(run_dir) / "workflow_trace.json")["options"]["seed"])


@pytest.mark.parametrize(
    "command",
    [("run", EXAMPLE, "--workflow", "image-only"), ("stage", "image-generation", "--prompt-file", EXAMPLE)],
    ids=["run", "stage"],
)
def test_seed_is_random_and_recorded_unless_given_and_n_is_accepted(cli, tmp_path: Path, command: tuple) -> None:
    def go(*extra: str) -> dict[str, Any]:
        result = cli(*command, "-n", "2", "--output-dir", tmp_path / "out", "--json", *extra)
        assert result.exit_code == 0, result.stderr
        return only_json(result.stdout)

    unseeded = [go(), go()]
    seeds = [_seed_of(s["run_dir"]) for s in unseeded]
    assert seeds[0] != seeds[1], "without --seed each run gets its own (random) seed"
    seeded = [go("--seed", "7"), go("--seed", "7")]
    assert [_seed_of(s["run_dir"]) for s in seeded] == [7, 7]
    images = [Path(s["run_dir"]) / s["best_image"] for s in seeded]
    assert images[0].read_bytes() == images[1].read_bytes(), "the same --seed gives the same output"
    for summary in (*unseeded, *seeded):
        generation = next(s for s in summary["stages"] if s["name"] == "image_generation")
        assert len([f for f in generation["files"] if f.endswith(".png")]) == 2, "-n 2 made two images"


def test_readme_says_deterministic_given_seed() -> None:
    readme = (REPO / "README.md").read_text()
    assert "deterministic given `--seed`" in readme


# --- each provider role chosen on its own ---------------------------------------------------------------


@pytest.fixture
def openai_only(fake_server, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Only an OpenAI-compatible server: no Replicate token."""
    env = fake_server.env()
    for key in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.setenv(key, env[key])
    for key, value in FAST_CLOUD.items():
        monkeypatch.setenv(key, value)
    return fake_server


@pytest.fixture
def replicate_only(fake_server, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    env = fake_server.env()
    for key in ("REPLICATE_BASE_URL", "REPLICATE_API_TOKEN"):
        monkeypatch.setenv(key, env[key])
    for key, value in FAST_CLOUD.items():
        monkeypatch.setenv(key, value)
    fake_server.image_latency = 0.05
    return fake_server


def test_prompt_only_on_cloud_needs_no_replicate_token(cli, openai_only, tmp_path: Path) -> None:
    result = cli("run", EXAMPLE, "--workflow", "prompt-only", "--backend", "cloud", "--json", "--output-dir", tmp_path)
    assert result.exit_code == 0, result.stderr
    data = only_json(result.stdout)
    assert data["backend"] == "cloud" and data["providers"]["agents"] == "openai" and not data["offline"]
    assert openai_only.chat_completions, "the agents were the real client against the server"
    (line,) = backend_lines(result.stderr)
    assert "agents: openai (OPENAI_API_KEY is set)" in line and "images and videos: not used" in line


def test_only_an_openai_server_gives_real_agents_and_offline_media(cli, openai_only, tmp_path: Path) -> None:
    """auto: each role on its own; the images are the offline backend's and labelled so."""
    result = cli("run", EXAMPLE, "--workflow", "image-only", "-n", "2", "--json", "--output-dir", tmp_path)
    assert result.exit_code == 0, result.stderr
    data = only_json(result.stdout)
    assert data["providers"] == {"agents": "openai", "media": "offline"}
    assert data["best_image"] and openai_only.chat_completions and not openai_only.predictions
    assert data["label"] and "PARTLY OFFLINE" in data["label"] and "images" in data["label"]
    (line,) = backend_lines(result.stderr)
    assert "agents: openai" in line and "images and videos: offline (REPLICATE_API_TOKEN not set)" in line


def test_an_openai_base_url_alone_is_enough_for_the_agents(
    cli, fake_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A local OpenAI-compatible server (Ollama, vLLM) has no key: OPENAI_BASE_URL alone chooses it."""
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.openai_base_url)
    result = cli("run", EXAMPLE, "--workflow", "prompt-only", "--json", "--output-dir", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert only_json(result.stdout)["providers"]["agents"] == "openai" and fake_server.chat_completions
    assert "OPENAI_BASE_URL is set" in backend_lines(result.stderr)[0]


def test_a_mixed_run_resumes_with_its_recorded_providers(cli, openai_only, tmp_path: Path) -> None:
    result = cli("run", EXAMPLE, "--workflow", "image-only", "-n", "2", "--json", "--output-dir", tmp_path)
    assert result.exit_code == 0, result.stderr
    run = Path(only_json(result.stdout)["run_dir"])

    def undo_stage2(state: dict[str, Any]) -> None:
        state["status"] = "interrupted"
        state["stages"][-1].update(status="interrupted", items=[], artifacts=[], outputs={}, scores={})

    rewrite_state(run, undo_stage2)
    resumed = cli("resume", run, "--json")
    assert resumed.exit_code == 0, resumed.stderr
    data = only_json(resumed.stdout)
    assert data["status"] == "completed" and data["providers"] == {"agents": "openai", "media": "offline"}
    assert not openai_only.predictions
    assert "images and videos: offline" in backend_lines(resumed.stderr)[0]


def test_a_media_stage_on_cloud_needs_only_the_replicate_token(cli, replicate_only, tmp_path: Path) -> None:
    # one round: best of N, no revision, so no agent is needed (rounds revise with the writer and the critic)
    result = cli(
        "stage", "image-generation", "--prompt-file", EXAMPLE, "-n", "2", "--max-rounds-image", "1",
        "--backend", "cloud", "--json", "--output-dir", tmp_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = only_json(result.stdout)
    assert data["providers"]["media"] == "replicate" and data["backend"] == "cloud"
    assert replicate_only.predictions_created == 2 and not replicate_only.chat_completions


def test_media_stage_rounds_on_cloud_name_the_agents_key(cli, replicate_only, tmp_path: Path) -> None:
    # more than one round revises the prompt with the writer and the critic: those need their key too
    result = cli(
        "stage", "image-generation", "--prompt-file", EXAMPLE, "-n", "2", "--max-rounds-image", "2",
        "--backend", "cloud", "--output-dir", tmp_path,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "OPENAI_API_KEY" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert replicate_only.predictions_created == 0


@pytest.mark.parametrize(
    ("keys", "command", "needed", "not_needed"),
    [
        ("openai", ("run", EXAMPLE, "--workflow", "image-only"), "REPLICATE_API_TOKEN", "OPENAI_API_KEY"),
        ("replicate", ("run", EXAMPLE, "--workflow", "prompt-only"), "OPENAI_API_KEY", "REPLICATE_API_TOKEN"),
        ("replicate", ("stage", "image-prompt", "--prompt-file", EXAMPLE), "OPENAI_API_KEY", "REPLICATE_API_TOKEN"),
        ("openai", ("stage", "storyboard"), "REPLICATE_API_TOKEN", "OPENAI_API_KEY"),
    ],
    ids=["image-only-without-replicate", "prompt-only-without-openai", "stage-prompt", "stage-storyboard"],
)
def test_cloud_names_only_the_key_the_run_needs(
    cli, fake_server, monkeypatch, tmp_path: Path, keys: str, command: tuple, needed: str, not_needed: str
) -> None:
    env = fake_server.env()
    names = ("OPENAI_API_KEY",) if keys == "openai" else ("REPLICATE_API_TOKEN",)
    for name in names:
        monkeypatch.setenv(name, env[name])
    if command == ("stage", "storyboard"):
        from PIL import Image

        image = tmp_path / "best.png"
        Image.new("RGB", (64, 48), (10, 120, 200)).save(image)
        command = (*command, "--image", image, "--prompt-file", EXAMPLE)
    result = cli(*command, "--backend", "cloud", "--output-dir", tmp_path / "out")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needed in lines[0] and not_needed not in lines[0].split("(")[0], lines
    assert not (tmp_path / "out").exists()


# --- a missing scoring extra, as pipx (or pip) installed fbloop ----------------------------------------

HIDE_EXTRA = """
from importlib.machinery import PathFinder

HIDDEN = {"torch", "torchvision", "transformers", "huggingface_hub", "safetensors"}
_find_spec = PathFinder.find_spec.__func__


def _find(cls, name, path=None, target=None):
    if name.split(".")[0] in HIDDEN:
        return None
    return _find_spec(cls, name, path, target)


PathFinder.find_spec = classmethod(_find)
"""


@pytest.fixture(scope="module")
def without_extra(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two environments without the scoring extra: a pipx-made venv (pipx_metadata.json in its prefix) and a
    plain one. Each is a real venv whose python runs fbloop from this source tree with the shared packages
    but torch, transformers, huggingface_hub ... not importable."""
    root = tmp_path_factory.mktemp("installs")
    hide = root / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(HIDE_EXTRA)
    pythons = {}
    for kind in ("pipx", "pip"):
        env_dir = root / kind / "venvs" / "fbloop"
        venv.create(env_dir, with_pip=False)
        if kind == "pipx":
            (env_dir / "pipx_metadata.json").write_text(json.dumps({"main_package": {"package": "fbloop"}}))
        pythons[kind] = env_dir / "bin" / "python"
    return {"hide": hide, **pythons}


def fbloop_in(without_extra: dict[str, Path], kind: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    import site

    shared = [p for p in site.getsitepackages() if Path(p).is_dir()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FBLOOP_")}
    env["PYTHONPATH"] = os.pathsep.join([str(without_extra["hide"]), str(REPO / "src"), *shared])
    env["HF_HUB_CACHE"] = str(cwd / "hf-cache")
    env["FBLOOP_WEIGHTS_DIR"] = str(cwd / "weights")
    return subprocess.run(
        [str(without_extra[kind]), "-m", "feedback_cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("kind", "command"),
    [("pipx", "pipx inject fbloop "), ("pip", "pip install 'fbloop[scoring]'")],
)
def test_models_download_names_the_install_command_for_this_install(
    without_extra, tmp_path: Path, kind: str, command: str
) -> None:
    for scorers in (["pickscore"], []):
        proc = fbloop_in(without_extra, kind, "models", "download", *scorers, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fbloop: error:"), proc.stderr
        assert "scoring extra" in lines[0] and command in lines[0] and "Traceback" not in proc.stderr
        if kind == "pipx":
            assert "torch" in lines[0].split("pipx inject fbloop")[1] and "pip install" not in lines[0]
    assert not (tmp_path / "hf-cache").exists() and not (tmp_path / "weights").exists()
    # a scorer with nothing to download still works
    ok = fbloop_in(without_extra, kind, "models", "download", "vqascore", cwd=tmp_path)
    assert ok.returncode == 0 and "nothing to download" in ok.stderr


def test_models_list_says_torch_not_installed(without_extra, tmp_path: Path) -> None:
    proc = fbloop_in(without_extra, "pipx", "models", "list", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    model_rows = [r for r in rows if r.get("kind") in ("hf-model", "hf-processor", "url")]
    assert model_rows and all(r["status"] == "torch not installed" for r in model_rows)
    assert not any(r["status"] == "missing" for r in rows)
    table = fbloop_in(without_extra, "pipx", "models", "list", cwd=tmp_path)
    assert "torch not installed" in table.stdout and "pipx inject fbloop" in " ".join(table.stdout.split())


def test_score_defaults_to_what_can_run(without_extra, tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "cat.png"
    Image.new("RGB", (64, 64), (200, 120, 40)).save(image)
    proc = fbloop_in(without_extra, "pipx", "score", str(image), "-p", "a cat", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data["results"][0]["scores"]) == {"sharpness", "colorfulness", "exposure"}
    assert "pipx inject fbloop" in data["errors"]["pickscore"]
    assert "scoring with offline statistics" in proc.stderr
    named = fbloop_in(without_extra, "pipx", "score", str(image), "-p", "a cat", "--scorer", "pickscore", cwd=tmp_path)
    assert named.returncode == 2 and "pipx inject fbloop" in named.stderr  # asked for by name: refused, not swapped


def test_install_command_follows_the_installer(tmp_path: Path) -> None:
    from feedback_cli.installation import extra_install_command, installer, package_install_command

    plain, pipx, uv = (tmp_path / n for n in ("plain", "pipx", "uv"))
    for folder in (plain, pipx, uv):
        folder.mkdir()
    (pipx / "pipx_metadata.json").write_text("{}")
    (uv / "uv-receipt.toml").write_text("")
    assert [installer(p) for p in (plain, pipx, uv)] == ["pip", "pipx", "uv"]
    assert extra_install_command(prefix=plain) == "pip install 'fbloop[scoring]'"
    assert extra_install_command(prefix=pipx).startswith("pipx inject fbloop ") and "torch" in extra_install_command(
        prefix=pipx
    )
    assert extra_install_command(prefix=uv) == "uv tool install --reinstall 'fbloop[scoring]'"
    assert package_install_command("pyiqa", prefix=pipx) == "pipx inject fbloop pyiqa"
    assert sys.prefix  # the default is this interpreter's environment


def test_a_new_run_id_is_unique_across_workflow_and_stage_runs(tmp_path: Path) -> None:
    from datetime import datetime

    from feedback_cli.runstate.runfolder import new_run_dir
    from feedback_cli.workflow.locate import run_dirs

    root = tmp_path / "runs"
    moment = datetime(2030, 1, 1)
    workflow_run = new_run_dir(root, now=moment, taken={p.name for p in run_dirs(root)})
    stage_run = new_run_dir(root / "image_prompt", now=moment, taken={p.name for p in run_dirs(root)})
    other_stage = new_run_dir(root / "storyboard", now=moment, taken={p.name for p in run_dirs(root)})
    assert workflow_run.name == "20300101_000000"
    assert stage_run.name == "20300101_000000_2" and other_stage.name == "20300101_000000_3"
    assert {p.name for p in run_dirs(root)} == {"20300101_000000", "20300101_000000_2", "20300101_000000_3"}


def test_dry_run_names_the_planner_only_when_the_agents_are_real(cli, openai_only, monkeypatch) -> None:
    """The video plan's model is the agents' role: real agents list FBLOOP_PLANNER_MODEL, offline agents do
    not, whatever the media role does (a Replicate token alone makes the run `cloud`)."""
    monkeypatch.setenv("FBLOOP_PLANNER_MODEL", "planner-under-test")

    def video_prompt_models() -> tuple[dict[str, str], list[str]]:
        result = cli("run", EXAMPLE, "--dry-run", "--json")
        assert result.exit_code == 0, result.stderr
        plan = only_json(result.stdout)
        (stage,) = [s for s in plan["stages"] if s["name"] == "video_prompt"]
        return plan["providers"], stage["models"]

    providers, models = video_prompt_models()
    assert providers == {"agents": "openai", "media": "offline"} and "planner-under-test" in models
    for key in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8-test")
    providers, models = video_prompt_models()
    assert providers == {"agents": "offline", "media": "replicate"} and models == ["offline-rubric"]


def test_batch_rows_choose_each_role_on_their_own(cli, openai_only, tmp_path: Path) -> None:
    """`fbloop batch` under auto with only an OpenAI server: each row's run has real agents and offline media
    (as `fbloop run` does), instead of asking Replicate for images without a token."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red fox\na blue kite\n")
    out = tmp_path / "batches"
    result = cli(
        "batch", prompts, "--workflow", "image-only", "--max-iterations-image", "1", "--num-image-variations", "2",
        "--output-dir", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (batch,) = [p for p in out.iterdir() if p.is_dir()]
    runs = sorted((batch / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        state = read_json(run / "workflow_checkpoint.json")["state"]
        assert state["status"] == "completed" and state["providers"] == {"agents": "openai", "media": "offline"}
    assert openai_only.chat_completions, "the agents were the real client against the server"
