"""`fbloop stage NAME`: each stage alone from files, chained by hand like the original per-stage scripts."""

from __future__ import annotations

import shlex
from pathlib import Path

import av
import numpy as np
import pytest
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


NEXT = "next stage:   fbloop "


def next_command(stdout: str) -> list[str]:
    """The last line a stage printed: the command that continues from its output, as argv after `fbloop`."""
    last = [line for line in stdout.splitlines() if line.strip()][-1]
    assert last.startswith(NEXT), stdout
    return shlex.split(last.removeprefix(NEXT))


def test_each_stage_prints_last_the_command_that_continues_from_its_output(cli, tmp_path: Path) -> None:
    out = tmp_path / "output"
    r = cli("stage", "image-prompt", "--prompt-file", EXAMPLE, "--output-dir", out, "--seed", "1")
    assert r.exit_code == 0, r.stderr
    args = next_command(r.stdout)
    assert args[:2] == ["stage", "image-generation"]
    steps = [
        ("image-generation", ["-n", "2"], "storyboard"),
        ("storyboard", ["--clips", "2"], "video-prompt"),
        ("video-prompt", [], "video-generation"),
        ("video-generation", ["-n", "1"], "assemble"),
    ]
    for name, extra, following in steps:
        assert args[:2] == ["stage", name], args
        r = cli(*args, *extra, "--output-dir", out)
        assert r.exit_code == 0, r.stderr
        if name == "video-prompt":  # it shows what it made: the motion prompts, not an "image prompt"
            assert "motion prompt (clip 1): " in r.stdout and "motion prompt (clip 2): " in r.stdout
            assert "image prompt:" not in r.stdout
            motion = read_json(only_run(out / "video_prompt") / "workflow_summary.json")["motion_prompts"]
            assert len(motion) == 2 and all(motion)
        args = next_command(r.stdout)
        assert args[:2] == ["stage", following], args
    s5 = only_run(out / "video_generation")
    summary5 = read_json(s5 / "workflow_summary.json")
    assert summary5["final_video"] == "stage_5_video_generation/final.mp4"
    assert args[2:] == [str(s5 / p) for p in summary5["best_videos"]]  # the picks, in clip order

    r = cli(*args, "--output-dir", out)
    assert r.exit_code == 0, r.stderr
    assert not r.stdout.strip().splitlines()[-1].startswith(NEXT)  # the last step: nothing follows
    joined = only_run(out / "assemble")
    summary = read_json(joined / "workflow_summary.json")
    assert summary["workflow"] == "stage assemble" and summary["final_video"] == "stage_5_assemble/final.mp4"
    assert (joined / summary["final_video"]).read_bytes() == (s5 / summary5["final_video"]).read_bytes()


def make_clip(path: Path, size: tuple[int, int], fps: int, frames: int, shade: int) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            pixels = np.full((size[1], size[0], 3), (shade + 3 * i) % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def video_facts(path: Path) -> tuple[int, int, float, int, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [f.time for f in container.decode(stream)]
        rate = float(stream.average_rate)
        return stream.codec_context.width, stream.codec_context.height, rate, len(times), times[-1] + 1 / rate


@pytest.mark.parametrize(
    ("clips", "frames"),
    [
        # (size, fps, frames) per clip; frames expected: each clip counted at the first clip's rate
        ([((64, 48), 24, 24), ((96, 64), 24, 12)], 36),  # another size
        ([((64, 48), 24, 24), ((64, 48), 30, 15)], 36),  # another frame rate: 0.5 s at 24 fps = 12 frames
        ([((80, 60), 30, 30), ((64, 48), 24, 24), ((64, 48), 30, 6)], 66),  # both, three clips
    ],
    ids=["size", "fps", "size-and-fps"],
)
def test_assemble_re_encodes_clips_that_differ(cli, tmp_path: Path, clips, frames: int) -> None:
    files = [make_clip(tmp_path / f"clip_{i + 1:02d}.mp4", *spec, shade=40 * i) for i, spec in enumerate(clips)]
    out = tmp_path / "output"
    r = cli("stage", "assemble", *files, "--output-dir", out)
    assert r.exit_code == 0, r.stderr
    run = only_run(out / "assemble")
    summary = read_json(run / "workflow_summary.json")
    join = summary["stages"][0]["outputs"]["assembly"]
    assert join["mode"] == "reencode"
    width, height, rate, count, duration = video_facts(run / summary["final_video"])
    (w0, h0), fps0, _ = clips[0]
    assert (width, height, rate) == (w0, h0, fps0)  # the first clip's size and rate
    assert count == frames == join["frames"] == join["expected_frames"]
    expected_duration = sum(n / fps for _, fps, n in clips)
    assert abs(duration - expected_duration) <= 1 / fps0 + 1e-6
    assert summary["best_videos"] == [f"input/clip_{i + 1:02d}.mp4" for i in range(len(clips))]


def test_assemble_of_matching_clips_is_a_stream_copy(cli, tmp_path: Path) -> None:
    a = make_clip(tmp_path / "a.mp4", (64, 48), 24, 20, shade=10)
    b = make_clip(tmp_path / "b.mp4", (64, 48), 24, 7, shade=90)
    out = tmp_path / "output"
    r = cli("stage", "assemble", b, a, "--output-dir", out)  # the order given is the order joined
    assert r.exit_code == 0, r.stderr
    run = only_run(out / "assemble")
    summary = read_json(run / "workflow_summary.json")
    assert summary["stages"][0]["outputs"]["assembly"]["mode"] == "stream_copy"
    assert video_facts(run / summary["final_video"])[3] == 27
    assert "stream copy" in " ".join(r.stderr.split())


def test_assemble_from_a_run_folder_never_overwrites_a_finished_final_video(cli, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    r = cli(
        "run", EXAMPLE, "--storyboard", "--clips", "2", "--num-video-attempts", "2", "--num-image-variations", "2",
        "--output-dir", out,
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    run = only_run(out)
    final = run / "stage_5_video_generation" / "final.mp4"
    before = final.read_bytes()
    summary = read_json(run / "workflow_summary.json")
    # other picks: clip 2's other take instead of the picked one
    s5 = run / "stage_5_video_generation"
    clip2_other = next(p for p in sorted(s5.glob("clip_02_video_*.mp4")) if p.name not in summary["best_videos"][1])
    for args in ([run], [run / summary["best_videos"][0], clip2_other], [run / "stage_5_video_generation"]):
        r = cli("stage", "assemble", *args, "--output-dir", out)
        assert r.exit_code == 0, r.stderr
    assert final.read_bytes() == before
    assert sorted(p.name for p in s5.iterdir() if p.name.startswith("final")) == ["final.mp4"]
    rebuilt = sorted((out / "assemble").iterdir())
    assert len(rebuilt) == 3  # three new stage run folders
    finals = [r / "stage_5_assemble" / "final.mp4" for r in rebuilt]
    assert finals[0].read_bytes() == before == finals[2].read_bytes()  # the run's own picks rejoined
    assert finals[1].read_bytes() != before
    clip1 = video_facts(run / summary["best_videos"][0])[3]
    assert video_facts(finals[1])[3] == clip1 + video_facts(clip2_other)[3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "fbloop stage assemble needs the clip videos in order, or a storyboard run folder"),
        (["missing.mp4"], "clip video missing.mp4 does not exist"),
        (["notavideo.mp4"], "clip video notavideo.mp4 is not usable"),
        (["somedir", "notavideo.mp4"], "give either one run folder or clip video files, not both"),
        (["somedir"], "somedir is not an fbloop run folder"),
        (["notavideo.mp4", "--prompt-file", "x.txt"], "takes the clip videos or a run folder, not --prompt-file"),
        (["notavideo.mp4", "-n", "2"], "fbloop stage assemble takes the clip videos or a run folder, not --num"),
        # assemble pays for nothing: a cap would silently do nothing
        (["notavideo.mp4", "--max-cost", "1"], "takes the clip videos or a run folder, not --max-cost"),
    ],
)
def test_assemble_bad_input_is_one_line_and_exit_2(cli, tmp_path: Path, args: list[str], message: str) -> None:
    (Path("somedir")).mkdir()
    Path("notavideo.mp4").write_text("not a video")
    r = cli("stage", "assemble", *args, "--output-dir", tmp_path / "out")
    assert r.exit_code == 2
    assert r.stderr.startswith("fbloop: error: ") and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()


def test_assemble_of_a_run_without_clips_is_refused(cli, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    r = cli("run", EXAMPLE, "--workflow", "image-only", "--num-image-variations", "1", "--output-dir", out)
    assert r.exit_code == 0, r.stderr
    r = cli("stage", "assemble", only_run(out), "--output-dir", tmp_path / "again")
    assert r.exit_code == 2 and "has no picked clips to join" in r.stderr, r.stderr


def test_other_stages_take_no_file_arguments(cli, tmp_path: Path) -> None:
    r = cli("stage", "image-prompt", "extra.mp4", "--prompt-file", EXAMPLE)
    assert r.exit_code == 2 and "takes no file arguments" in r.stderr, r.stderr
