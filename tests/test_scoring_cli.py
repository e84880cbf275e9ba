"""`fbloop score`, `fbloop models list/download` and the preflight, through Typer's CliRunner on tiny models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from feedback_cli.errors import ScorerUnavailable

pytest.register_assert_rewrite("tests.scoring_models")

from feedback_cli.scoring import loaders as models  # noqa: E402
from feedback_cli.scoring import preflight  # noqa: E402
from feedback_cli.scoring import requirements as checkpoints  # noqa: E402
from tests.scoring_models import TinyModels, make_images, translating_frames, write_video  # noqa: E402

pytest_plugins = ["tests.scoring_models", "tests.fakes.fixtures"]

ROOT = Path(__file__).resolve().parents[1]


def make_app() -> typer.Typer:
    """The real app's error handling (one line, exit code) with the score and models commands registered."""
    from feedback_cli.app import OneLineErrors
    from feedback_cli.commands import models as models_cmd
    from feedback_cli.commands import score as score_cmd

    app = typer.Typer(cls=OneLineErrors, name="fbloop", no_args_is_help=True, add_completion=False)

    @app.callback()
    def _root() -> None:
        """fbloop"""

    score_cmd.register(app)
    models_cmd.register(app)
    return app


@pytest.fixture
def cli_env(tiny_models: TinyModels, tiny_settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> TinyModels:
    for key, value in tiny_models.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return tiny_models


def run(*args: str) -> Result:
    runner = CliRunner()
    return runner.invoke(make_app(), list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    images = make_images(root, 2)
    return {
        "img0": images[0],
        "img1": images[1],
        "video": write_video(root / "clip.mp4", translating_frames(6, 128, 128, 4), fps=8),
    }


def test_score_images_json(cli_env: TinyModels, media) -> None:
    result = run(
        "score",
        str(media["img0"]),
        str(media["img1"]),
        "--prompt",
        "a cat",
        "-s",
        "pickscore,clip-score",
        "--scorer",
        "aesthetic",
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["prompt"] == "a cat" and data["errors"] == {}
    assert [r["file"] for r in data["results"]] == [str(media["img0"]), str(media["img1"])]
    for row in data["results"]:
        assert set(row["scores"]) == {"pickscore", "clip-score", "aesthetic"}
        for s in row["scores"].values():
            assert 0.0 <= s["normalized"] <= 100.0
            assert isinstance(s["raw"], float)
            assert s["model_id"]
        assert row["scores"]["clip-score"]["model_id"] == str(cli_env.clip_l)
    assert models.load_count(str(cli_env.clip_l)) == 1


def test_score_offline_statistics_on_images_only(cli_env: TinyModels, media) -> None:
    result = run("score", str(media["img0"]), "-p", "x", "-s", "offline", "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)["results"][0]["scores"]
    assert set(scores) == {"sharpness", "colorfulness", "exposure"}
    assert models.load_count() == 0


def test_score_video_table(cli_env: TinyModels, media) -> None:
    result = run(
        "score",
        str(media["video"]),
        "-p",
        "a moving texture",
        "-s",
        "temporal_flickering",
        "-s",
        "subject_consistency",
    )
    assert result.exit_code == 0, result.output
    assert "temporal_flickering" in result.stdout and "subject_consistency" in result.stdout
    assert "clip.mp4" in result.stdout


def test_score_default_set_skips_what_cannot_run(cli_env: TinyModels, media) -> None:
    """No --scorer: every real image scorer; vqascore has no key here, so it is skipped with a reason."""
    result = run("score", str(media["img0"]), "-p", "a cat", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["results"][0]["scores"]) == {"pickscore", "clip-score", "aesthetic"}
    assert "vqascore" in data["errors"] and "OPENAI_API_KEY" in data["errors"]["vqascore"]
    assert "skipping vqascore" in result.stderr


def test_score_vqascore_via_fake_server(cli_env: TinyModels, media, fake_server, monkeypatch) -> None:
    for key, value in fake_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FBLOOP_VQA_MODEL", "gpt-4.1")
    fake_server.yes_probability = 0.9
    result = run("score", str(media["img0"]), "-p", "a cat", "-s", "vqascore", "--json")
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)["results"][0]["scores"]["vqascore"]
    # the fake gives Yes/yes/ Yes 98 % x 0.9 of its mass: P(yes) as t2v_metrics reads it, not renormalised
    assert s["raw"] == pytest.approx(0.882) and s["normalized"] == pytest.approx(88.2)
    assert "notes" not in s


@pytest.mark.parametrize("files", [1, 3])
def test_score_says_what_its_paid_requests_cost(cli_env: TinyModels, media, fake_server, monkeypatch, files) -> None:
    """`fbloop score` keeps no ledger, but VQAScore's requests are paid: the report counts each one the server
    billed and prices it from the price table; the free scorers report nothing paid."""
    from feedback_cli.providers.prices import load_prices

    for key, value in fake_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FBLOOP_VQA_MODEL", "gpt-4.1")
    images = [str(media["img0"])] * files
    result = run("score", *images, "-p", "a cat", "-s", "vqascore,clip-score", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    billed = fake_server.billed_chats
    assert len(billed) == files  # one question per image
    prices = load_prices(None)
    bill = sum(
        prices.llm_cost(b["model"], b["prompt_tokens"], b["completion_tokens"], b["cached_tokens"]) for b in billed
    )
    assert data["paid_calls"] == {
        "vqascore": {"requests": files, "usd": pytest.approx(bill, abs=1e-6), "estimated": 0, "models": ["gpt-4.1"]}
    }
    assert data["cost_usd"] == pytest.approx(bill, abs=1e-6) and bill > 0
    table = run("score", *images, "-p", "a cat", "-s", "vqascore,clip-score")
    plural = "" if files == 1 else "s"
    assert f"vqascore: {files} paid request{plural} to gpt-4.1, ${bill:.4f}" in table.stdout


def test_score_reports_notes(cli_env: TinyModels, media, fake_server, monkeypatch) -> None:
    """A prompt over CLIP's 77 tokens and a VQA answer with neither yes nor no: noted in --json and the table."""
    from tests.fakes.script import ChatReply

    for key, value in fake_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FBLOOP_VQA_MODEL", "gpt-4.1")
    fake_server.chat_handler = lambda body: ChatReply(first_token=(("Hmm", 0.7), ("The", 0.2)))
    prompt = "a small red cat " * 10  # 122 tokens of the tiny byte-level tokenizer (no merges)
    args = ["score", str(media["img0"]), "-p", prompt, "-s", "clip-score,pickscore,vqascore,aesthetic"]
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)["results"][0]["scores"]
    for name in ("clip-score", "pickscore"):
        assert scores[name]["notes"][0].startswith("prompt truncated for CLIP: 122 tokens"), scores[name]
    assert scores["vqascore"]["raw"] == 0.0 and "neither 'yes' nor 'no'" in scores["vqascore"]["notes"][0]
    assert "notes" not in scores["aesthetic"]
    table = run(*args)
    assert table.exit_code == 0, table.output
    assert "clip-score: prompt truncated for CLIP" in " ".join(table.stdout.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.png", "-p", "x"], "no such file"),
        (["{img}", "-p", "   "], "--prompt is empty"),
        (["{txt}", "-p", "x"], "not an image or video"),
        (["{img}", "-p", "x", "-s", "subject_consistency"], "scores videos, but no video"),
        (["{video}", "-p", "x", "-s", "pickscore"], "scores images, but no image"),
        (["{img}", "-p", "x", "-s", "nonsense"], "unknown scorer 'nonsense'"),
    ],
)
def test_score_bad_input_is_one_line_exit_2(cli_env, media, tmp_path, capsys, args, message) -> None:
    txt = tmp_path / "notes.txt"
    txt.write_text("hi")
    argv = [a.format(img=media["img0"], video=media["video"], txt=txt) for a in args]
    app = make_app()
    with pytest.raises(SystemExit) as exit_info:
        app(["score", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_score_explicit_unavailable_scorer_fails_before_scoring(cli_env, media, capsys, monkeypatch) -> None:
    monkeypatch.setenv("FBLOOP_VQA_MODEL", "o3")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    app = make_app()
    with pytest.raises(SystemExit) as exit_info:
        app(["score", str(media["img0"]), "-p", "x", "-s", "vqascore", "-s", "clip-score"])
    assert exit_info.value.code == 2
    assert "reasoning model" in capsys.readouterr().err
    assert models.load_count() == 0  # nothing was loaded: the preflight ran first


# --------------------------------------------------------------------------- preflight


def test_preflight_offline_names_the_download_command(tiny_settings, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = tiny_settings.model_copy(update={"pickscore_model": "yuvalkirstain/PickScore_v1"})
    with pytest.raises(ScorerUnavailable) as err:
        preflight.preflight(["pickscore", "clip-score"], settings)
    assert "HF_HUB_OFFLINE=1" in err.value.message and err.value.hint == "fbloop models download pickscore"
    # the tiny local checkpoints pass, offline or not
    preflight.preflight(["clip-score", "aesthetic", "subject_consistency", "dynamic_degree"], tiny_settings)
    # the default aesthetic head is not downloaded here
    no_head = tiny_settings.model_copy(update={"aesthetic_head": None, "weights_dir": tmp_path / "w"})
    with pytest.raises(ScorerUnavailable) as err:
        preflight.preflight(["aesthetic"], no_head)
    assert err.value.hint == "fbloop models download aesthetic"
    # online, a missing hub checkpoint is fine (the first use downloads it)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert preflight.problems(["pickscore"], settings) == {}


def test_preflight_cached_hub_checkpoint_passes_offline(tiny_settings, tiny_models, monkeypatch, tmp_path) -> None:
    """A hub id whose snapshot is in the HF cache passes the offline preflight (cache layout of huggingface_hub)."""
    import shutil

    cache = tmp_path / "hub"
    snap = cache / "models--openai--clip-vit-large-patch14" / "snapshots" / "abc123"
    shutil.copytree(tiny_models.clip_l, snap)
    (cache / "models--openai--clip-vit-large-patch14" / "refs").mkdir()
    (cache / "models--openai--clip-vit-large-patch14" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = tiny_settings.model_copy(update={"clip_model": "openai/clip-vit-large-patch14"})
    preflight.preflight(["clip-score"], settings)


def test_preflight_reports_every_problem(tiny_settings, monkeypatch) -> None:
    settings = tiny_settings.model_copy(update={"openai_api_key": None, "openai_base_url": None})
    found = preflight.problems(["vqascore", "motion_smoothness", "sharpness", "temporal_flickering"], settings)
    assert set(found) == {"vqascore", "motion_smoothness"}
    with pytest.raises(ScorerUnavailable, match="also unavailable: motion_smoothness"):
        preflight.preflight(["vqascore", "motion_smoothness"], settings)


# --------------------------------------------------------------------------- models list / download


def test_models_list_json(cli_env: TinyModels, monkeypatch) -> None:
    monkeypatch.setenv("FBLOOP_PICKSCORE_MODEL", "yuvalkirstain/PickScore_v1")
    result = run("models", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    by = {(r["scorer"], r["setting"]): r for r in rows}
    assert by[("clip-score", "FBLOOP_CLIP_MODEL")]["available"] is True
    assert by[("clip-score", "FBLOOP_CLIP_MODEL")]["status"] == "local"
    pick = by[("pickscore", "FBLOOP_PICKSCORE_MODEL")]
    assert pick["available"] is False and pick["status"] == "missing" and pick["size"] == "~3.9 GB"
    assert by[("aesthetic", "FBLOOP_AESTHETIC_HEAD")]["available"] is True
    assert by[("motion_smoothness", "FBLOOP_VBENCH_PYTHON")]["available"] is False
    assert {r["scorer"] for r in rows} == set(checkpoints.ALL_MODEL_SCORERS)


def test_models_list_table(cli_env: TinyModels) -> None:
    result = run("models", "list", "clip-score")
    assert result.exit_code == 0, result.output
    assert "clip-score" in result.stdout and "local" in result.stdout


def test_models_download_refuses_offline_and_unknown(cli_env, capsys, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit) as exit_info:
        make_app()(["models", "download", "clip-score"])
    assert exit_info.value.code == 2 and "HF_HUB_OFFLINE" in capsys.readouterr().err
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(SystemExit) as exit_info:
        make_app()(["models", "download", "nonsense"])
    assert exit_info.value.code == 2 and "unknown scorer" in capsys.readouterr().err


def test_models_download_skips_what_is_here(cli_env: TinyModels) -> None:
    result = run("models", "download", "clip-score", "aesthetic", "temporal_flickering")
    assert result.exit_code == 0, result.output
    assert "already here" in result.stderr


def test_models_download_fetches_url_files(cli_env: TinyModels, monkeypatch, tmp_path) -> None:
    """URL weights go through weights.fetch with the sha256 check; here the network call is replaced."""
    from feedback_cli.scoring import weights

    calls = []

    def fake_fetch(spec, dest, *, timeout=120.0, progress=None):
        calls.append(spec.key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"x")
        if progress:
            progress(1, 1)
        return dest

    monkeypatch.setattr(weights, "fetch", fake_fetch)
    monkeypatch.delenv("FBLOOP_AESTHETIC_HEAD")
    monkeypatch.setenv("FBLOOP_WEIGHTS_DIR", str(tmp_path / "w"))
    result = run("models", "download", "aesthetic")
    assert result.exit_code == 0, result.output
    assert calls == ["aesthetic-mlp"]
    assert (tmp_path / "w" / weights.AESTHETIC_MLP.filename).is_file()


# --------------------------------------------------------------------------- startup cost


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys, typer\n"
        "from feedback_cli.commands import score, models\n"
        "import feedback_cli.scoring.registry, feedback_cli.scoring.preflight, feedback_cli.scoring.requirements\n"
        "app = typer.Typer()\n"
        "score.register(app); models.register(app)\n"
        "try:\n"
        "    app(['score', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "bad = [m for m in ('torch', 'transformers', 'torchvision') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'src'}", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "--prompt" in proc.stdout
