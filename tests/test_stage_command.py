"""`fbloop stage NAME`: each stage alone from files, chained by hand like the original per-stage scripts."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tests.conftest import EXAMPLE, only_run, read_json


def test_each_stage_alone_chained_through_files(cli, tmp_path: Path) -> None:
    out = tmp_path / "output"
    r = cli("stage", "image-prompt", "--prompt-file", EXAMPLE, "--output-dir", out, "--seed", "1")
    assert r.exit_code == 0, r.stderr
    s1 = only_run(out / "image_prompt")
    final_prompt = s1 / "stage_1_image_prompt" / "final_prompt.txt"
    assert (s1 / "workflow_trace.json").is_file() and final_prompt.read_text().strip()
    assert read_json(s1 / "workflow_summary.json")["workflow"] == "stage image_prompt"

    r = cli("stage", "image-generation", "--prompt-file", final_prompt, "-n", "2", "--output-dir", out)
    assert r.exit_code == 0, r.stderr
    s2 = only_run(out / "image_generation")
    summary2 = read_json(s2 / "workflow_summary.json")
    assert [s["name"] for s in summary2["stages"]] == ["image_generation"]
    best = s2 / summary2["best_image"]
    assert summary2["final_image_prompt"] == final_prompt.read_text().strip()

    r = cli("stage", "storyboard", "--image", best, "--prompt-file", final_prompt, "--clips", "2", "--output-dir", out)
    assert r.exit_code == 0, r.stderr
    s3 = only_run(out / "storyboard")
    storyboard = s3 / "stage_3_storyboard" / "storyboard.json"
    assert len(read_json(storyboard)["clips"]) == 2
    assert (s3 / "stage_3_storyboard" / "clip_01_start.png").read_bytes() == best.read_bytes()

    r = cli("stage", "video-prompt", "--storyboard", storyboard, "--output-dir", out)
    assert r.exit_code == 0, r.stderr
    s4 = only_run(out / "video_prompt")
    motion = s4 / "stage_4_video_prompt" / "storyboard_enhanced_motion_prompts.json"
    assert [c["clip"] for c in read_json(motion)["clips"]] == [1, 2]
    # the frames were copied in, so this run folder stands on its own
    assert all(c["start_frame"].startswith("input/") for c in read_json(motion)["clips"])

    r = cli("stage", "video-generation", "--motion-prompts", motion, "-n", "1", "--output-dir", out)
    assert r.exit_code == 0, r.stderr
    s5 = only_run(out / "video_generation")
    summary5 = read_json(s5 / "workflow_summary.json")
    assert len(summary5["best_videos"]) == 2
    assert all((s5 / p).is_file() for p in summary5["best_videos"])


def test_video_generation_from_one_image_and_a_prompt(cli, tmp_path: Path) -> None:
    image = tmp_path / "start.png"
    Image.new("RGB", (80, 48), (30, 60, 200)).save(image)
    motion = tmp_path / "motion.txt"
    motion.write_text("slow pan across the blue sea\n")
    out = tmp_path / "output"
    r = cli("stage", "video-generation", "--image", image, "--prompt-file", motion, "-n", "2", "--output-dir", out)
    assert r.exit_code == 0, r.stderr
    run = only_run(out / "video_generation")
    summary = read_json(run / "workflow_summary.json")
    assert summary["best_video"].startswith("stage_5_video_generation/video_0")
    trace = read_json(run / "workflow_trace.json")
    assert all("slow pan across the blue sea" in i["request"]["prompt"] for i in trace["stages"][0]["items"])
