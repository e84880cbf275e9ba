"""`fbloop run` on the offline backend: each workflow mode runs exactly its stages and leaves the
run folder the architecture describes."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from PIL import Image

from tests.conftest import EXAMPLE, only_run, read_json

ALL = ["image_prompt", "image_generation", "storyboard", "video_prompt", "video_generation"]


def run_full(cli, tmp_path: Path, *extra: str):
    out = tmp_path / "runs"
    result = cli(
        "run",
        EXAMPLE,
        "--output-dir",
        out,
        "--seed",
        "7",
        "--num-image-variations",
        "3",
        "--num-video-attempts",
        "2",
        *extra,
    )
    return result, out


def test_full_storyboard_run_leaves_the_whole_folder(cli, tmp_path: Path) -> None:
    result, out = run_full(cli, tmp_path, "--storyboard", "--clips", "2")
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    for name in ("workflow_checkpoint.json", "workflow_trace.json", "workflow_summary.json", "run.log"):
        assert (run / name).is_file(), name
    stage_dirs = sorted(p.name for p in run.iterdir() if p.name.startswith("stage_"))
    assert stage_dirs == [
        "stage_1_image_prompt",
        "stage_2_image_generation",
        "stage_3_storyboard",
        "stage_4_video_prompt",
        "stage_5_video_generation",
    ]
    s1 = run / "stage_1_image_prompt"
    assert (s1 / "iterations.json").is_file() and (s1 / "final_prompt.txt").read_text().strip()
    s2 = run / "stage_2_image_generation"
    images = sorted(s2.glob("image_*.png"))
    assert len(images) == 3
    assert len({p.read_bytes() for p in images}) == 3, "variations must really differ"
    scores = read_json(s2 / "scores.json")
    assert scores["groups"]["all"]["best"] in {p.stem for p in images}
    for candidate in scores["groups"]["all"]["candidates"]:
        assert set(candidate["scores"]) == {"sharpness", "colorfulness", "exposure"}
        assert all(0 <= v["normalized"] <= 100 for v in candidate["scores"].values())
    s3 = run / "stage_3_storyboard"
    for clip in (1, 2):
        for end in ("start", "end"):
            with Image.open(s3 / f"clip_{clip:02d}_{end}.png") as img:
                assert img.size[0] > 0
    # clips join: clip 1 ends where clip 2 starts, and clip 1 starts on the best image
    assert (s3 / "clip_01_end.png").read_bytes() == (s3 / "clip_02_start.png").read_bytes()
    best_image = run / read_json(run / "workflow_summary.json")["best_image"]
    assert (s3 / "clip_01_start.png").read_bytes() == best_image.read_bytes()
    s4 = run / "stage_4_video_prompt"
    motion = read_json(s4 / "storyboard_enhanced_motion_prompts.json")
    assert [c["clip"] for c in motion["clips"]] == [1, 2]
    plan = read_json(s4 / "video_plan.json")
    assert len(plan["scenes"]) == 2 and plan["entities"] and plan["consistency_groups"]
    s5 = run / "stage_5_video_generation"
    videos = sorted(s5.glob("clip_*_video_*.mp4"))
    assert len(videos) == 4  # 2 clips x 2 attempts
    with av.open(str(videos[0])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert float(stream.average_rate) == 24.0
        assert sum(1 for _ in container.decode(video=0)) == 12  # 0.5 s at 24 fps (FAST_ENV)
    summary = read_json(run / "workflow_summary.json")
    assert summary["status"] == "completed"
    assert summary["offline"] is True and "OFFLINE" in summary["label"]
    assert len(summary["best_videos"]) == 2
    assert "OFFLINE" in result.stdout  # the console summary says so too
    # stage 5's last step: the picked clips joined, in order, into one film
    assert summary["final_video"] == "stage_5_video_generation/final.mp4"
    final = run / summary["final_video"]
    picks = [run / p for p in summary["best_videos"]]
    assert [p.name.split("_video_")[0] for p in picks] == ["clip_01", "clip_02"]
    assert decoded_frames(final) == [f for p in picks for f in decoded_frames(p)]  # same frames, same order
    with av.open(str(final)) as container:
        assert float(container.streams.video[0].average_rate) == 24.0
    s5_record = next(s for s in summary["stages"] if s["name"] == "video_generation")
    assert s5_record["outputs"]["assembly"]["mode"] == "stream_copy"
    assert s5_record["outputs"]["assembly"]["frames"] == 24
    assert "stage_5_video_generation/final.mp4" in s5_record["files"]
    lines = result.stdout.splitlines()
    assert any(line.startswith("final video:") and line.endswith("final.mp4") for line in lines), result.stdout
    assert any(line.startswith("best video (clip 1):") for line in lines)
    assert any(line.startswith("best video (clip 2):") for line in lines)
    assert not any(line.startswith("best video:") for line in lines)  # every clip's line says which clip
    assert "clips=2 " in result.stdout.replace("│", " ") and "clips=2.0" not in result.stdout
    assert "final video: stage_5_video_generation/final.mp4: 2 clips joined (stream copy), 24 frames" in (
        " ".join(result.stderr.split())
    )


def decoded_frames(path: Path) -> list[bytes]:
    """Each frame's decoded pixels (a stream copy keeps them bit for bit)."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="gray").tobytes() for frame in container.decode(video=0)]


@pytest.mark.parametrize(
    ("workflow", "expected"),
    [
        ("full", {"image_prompt", "image_generation", "video_prompt", "video_generation"}),
        ("image-only", {"image_prompt", "image_generation"}),
        ("prompt-only", {"image_prompt"}),
        ("video-only", {"video_prompt", "video_generation"}),
    ],
)
def test_each_mode_runs_exactly_its_stages(cli, tmp_path: Path, workflow: str, expected: set[str]) -> None:
    out = tmp_path / "runs"
    args: list[str | Path] = [
        "run",
        EXAMPLE,
        "--workflow",
        workflow,
        "--output-dir",
        out,
        "--seed",
        "1",
        "--num-image-variations",
        "2",
        "--num-video-attempts",
        "2",
    ]
    if workflow == "video-only":
        image = tmp_path / "start.png"
        Image.new("RGB", (96, 64), (200, 80, 40)).save(image)
        args += ["--input-image", image]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    summary = read_json(run / "workflow_summary.json")
    ran = {s["name"] for s in summary["stages"] if s["status"] == "completed"}
    assert ran == expected
    skipped = {s["name"]: s["skip_reason"] for s in summary["stages"] if s["status"] == "skipped"}
    if workflow in ("full", "video-only"):
        assert skipped == {"storyboard": "storyboard not requested (run with --storyboard)"}
    else:
        assert skipped == {}
    listed = {s["name"] for s in summary["stages"]}
    assert listed <= set(ALL)
    present = {p.name.split("_", 2)[2] for p in run.iterdir() if p.name.startswith("stage_")}
    assert present == expected
    if workflow == "video-only":
        assert summary["best_video"] and (run / summary["best_video"]).is_file()
        assert (run / "input" / "input_image.png").is_file()


def test_trace_and_summary_record_everything(cli, tmp_path: Path) -> None:
    result, out = run_full(cli, tmp_path)
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    trace = read_json(run / "workflow_trace.json")
    summary = read_json(run / "workflow_summary.json")
    assert trace["format"] == "fbloop-trace" and trace["trace_schema_version"] == 1
    assert trace["options"]["num_image_variations"] == 3 and trace["options"]["seed"] == 7
    stage1 = next(s for s in trace["stages"] if s["name"] == "image_prompt")
    assert stage1["iterations"], "every iteration is recorded"
    for it in stage1["iterations"]:
        assert it["prompt"] and 0 <= it["critique"]["overall"] <= 100 and it["critique"]["scores"]
    stage2 = next(s for s in trace["stages"] if s["name"] == "image_generation")
    seeds = [item["seed"] for item in stage2["items"]]
    assert seeds == [7, 8, 9]
    for item in stage2["items"]:
        assert item["status"] == "succeeded" and item["job_id"] and item["artifact"]["sha256"]
        assert item["request"]["prompt"] and item["model"] == "offline-procedural-image"
    # the ledger is real even when every entry is 0.0
    assert trace["ledger"] and all(entry["usd"] == 0.0 for entry in trace["ledger"])
    assert {e["stage"] for e in trace["ledger"]} == {
        "image_prompt",
        "image_generation",
        "video_prompt",
        "video_generation",
    }
    assert summary["total_cost_usd"] == 0.0
    assert summary["total_time_s"] == pytest.approx(sum(s["wall_time_s"] for s in summary["stages"]), abs=0.01)
    for stage in summary["stages"]:
        assert {"cost_usd", "wall_time_s", "scores", "files"} <= set(stage)
    assert summary["stages"][0]["scores"]["prompt_score"] > 0
    # every path is relative and exists, so the folder can be moved
    for path in summary["files"]:
        assert not Path(path).is_absolute() and (run / path).is_file(), path
    assert summary["best_image"] in summary["files"] and summary["best_video"] in summary["files"]
    log = (run / "run.log").read_text()
    assert "stage_started" in log and "run_finished" in log


def test_same_prompt_and_seed_give_identical_outputs(cli, tmp_path: Path) -> None:
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    for out in (out_a, out_b):
        result = cli(
            "run",
            EXAMPLE,
            "--workflow",
            "image-only",
            "--seed",
            "3",
            "--num-image-variations",
            "2",
            "--output-dir",
            out,
        )
        assert result.exit_code == 0, result.stderr
    a, b = only_run(out_a), only_run(out_b)
    for name in ("image_01.png", "image_02.png"):
        assert (a / "stage_2_image_generation" / name).read_bytes() == (
            b / "stage_2_image_generation" / name
        ).read_bytes()
    assert (a / "stage_1_image_prompt/final_prompt.txt").read_text() == (
        b / "stage_1_image_prompt/final_prompt.txt"
    ).read_text()


def test_image_as_starting_prompt_is_described_first(cli, tmp_path: Path) -> None:
    image = tmp_path / "sunset_beach.png"
    Image.new("RGB", (64, 64), (240, 140, 30)).save(image)
    out = tmp_path / "runs"
    result = cli("run", image, "--workflow", "prompt-only", "--output-dir", out, "--seed", "1")
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    summary = read_json(run / "workflow_summary.json")
    assert summary["source_prompt"].startswith("sunset beach, dominated by orange")
    assert (run / "input" / "sunset_beach.png").is_file()


def test_backend_is_announced_in_one_line(cli, tmp_path: Path) -> None:
    result = cli("run", EXAMPLE, "--workflow", "prompt-only", "--output-dir", tmp_path / "runs")
    lines = [line for line in result.stderr.splitlines() if line.startswith("backend:")]
    assert len(lines) == 1 and "offline" in lines[0] and "OPENAI_API_KEY" in lines[0]


def test_two_runs_in_the_same_second_get_two_folders(cli, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    for _ in range(2):
        assert cli("run", EXAMPLE, "--workflow", "prompt-only", "--output-dir", out).exit_code == 0
    assert len([p for p in out.iterdir() if p.is_dir()]) == 2


def test_python_dash_m_works(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "feedback_cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("fbloop ")
