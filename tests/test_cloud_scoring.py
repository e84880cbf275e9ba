"""A cloud run (fake server, real clients) scored by the real scorers, loaded through their real loading code
from tiny random checkpoints: every image scorer and the native VBench dimensions land in scores.json and the
summary, and VQAScore asks the (fake) vision model with logprobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, only_run, read_json
from tests.scoring_models import have_pyiqa

pytest.importorskip("torch")
pytest.importorskip("torchvision")

IMAGE = ["pickscore", "clip-score", "aesthetic", "vqascore"]
VIDEO = [
    "subject_consistency",
    "background_consistency",
    "temporal_flickering",
    "dynamic_degree",
    "aesthetic_quality",
] + (["imaging_quality"] if have_pyiqa() else [])


def test_cloud_run_reports_every_real_scorer(
    cli,
    fake_provider_env,
    tiny_models,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tests.fakes.media as fake_media

    monkeypatch.setattr(fake_media, "VIDEO_LONG_SIDE", 256)  # RAFT needs frames of 128 px and more
    for key, value in tiny_models.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FBLOOP_POLL_INTERVAL_S", "0.02")
    monkeypatch.setenv("FBLOOP_VQA_MODEL", "gpt-4.1")
    fake_provider_env.yes_probability = 0.8
    out = tmp_path / "runs"
    result = cli(
        "run",
        EXAMPLE,
        "--backend",
        "cloud",
        "--scorers",
        ",".join(IMAGE + VIDEO),
        "--seed",
        "2",
        "--num-image-variations",
        "2",
        "--num-video-attempts",
        "2",
        "--output-dir",
        out,
    )
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    images = read_json(run / "stage_2_image_generation" / "scores.json")
    assert {name: s["status"] for name, s in images["scorers"].items()} == dict.fromkeys(IMAGE, "ok")
    for candidate in images["groups"]["all"]["candidates"]:
        assert set(candidate["scores"]) == set(IMAGE)
        assert candidate["scores"]["vqascore"]["raw"] == pytest.approx(0.8, abs=0.02)
        assert candidate["scores"]["clip-score"]["model_id"] == str(tiny_models.clip_l)
        assert candidate["overall"] is not None
    videos = read_json(run / "stage_5_video_generation" / "scores.json")
    for candidate in videos["groups"]["all"]["candidates"]:
        assert set(VIDEO) <= set(candidate["scores"]), candidate["scores"].keys()
    summary = read_json(run / "workflow_summary.json")
    image_scores = next(s for s in summary["stages"] if s["name"] == "image_generation")["scores"]
    assert {f"best_{n}" for n in IMAGE} <= set(image_scores)
    video_scores = next(s for s in summary["stages"] if s["name"] == "video_generation")["scores"]
    assert {f"all_{n}" for n in VIDEO} <= set(video_scores)
    vqa_requests = [r for r in fake_provider_env.requests_for("chat") if r.body.get("logprobs")]
    assert len(vqa_requests) == 2 and vqa_requests[0].body["model"] == "gpt-4.1"


def test_cloud_run_records_scorer_notes_in_scores_json(
    cli,
    fake_provider_env,
    tiny_models,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A prompt over CLIP's 77 tokens and a VQA answer without "yes"/"no" are noted per candidate in scores.json;
    the VQAScore is then 0 (t2v_metrics' value), not left out and not 1.0."""
    import json
    import math

    from tests.fakes.script import ChatReply

    for key, value in tiny_models.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FBLOOP_POLL_INTERVAL_S", "0.02")
    monkeypatch.setenv("FBLOOP_VQA_MODEL", "gpt-4.1")
    neither = (("The", 0.6), ("I", 0.3), ("Sure", 0.05))
    long_prompt = (
        "A red fox sits in a snowy birch forest at dawn, soft pink light through the trees, frost on its fur, "
        "breath visible in the cold air, a frozen stream behind it and small tracks leading into the distance"
    )

    def reply(body: dict) -> ChatReply | str | None:
        if body.get("logprobs"):  # the VQAScore question
            return ChatReply(first_token=neither)
        schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema", {})
        if set(schema.get("properties", {})) == {"prompt", "rationale"}:  # the prompt writer
            return json.dumps({"prompt": long_prompt, "rationale": "more detail"})
        return None

    fake_provider_env.chat_handler = reply
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text("a red fox in the snow\n")
    out = tmp_path / "runs"
    result = cli(
        "run",
        prompt_file,
        "--backend",
        "cloud",
        "--workflow",
        "image-only",
        "--scorers",
        "clip-score,pickscore,aesthetic,vqascore",
        "--seed",
        "3",
        "--num-image-variations",
        "2",
        "--output-dir",
        out,
    )
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    images = read_json(run / "stage_2_image_generation" / "scores.json")
    for candidate in images["groups"]["all"]["candidates"]:
        scores = candidate["scores"]
        assert scores["vqascore"]["raw"] == 0.0 and scores["vqascore"]["normalized"] == 0.0
        assert "neither 'yes' nor 'no' among the top 3 first-token logprobs" in scores["vqascore"]["notes"][0]
        for name in ("clip-score", "pickscore"):
            assert scores[name]["notes"][0].startswith("prompt truncated for CLIP: "), scores[name]
        assert "notes" not in scores["aesthetic"]
        assert math.isfinite(candidate["overall"])
