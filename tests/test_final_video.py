"""The storyboard's final video follows the picks: a human pick or a regenerated round at the review of
stage 5 re-joins it; a join that fails its check writes nothing and leaves the clips."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import pytest

from feedback_cli.choices import Backend
from feedback_cli.config import load_settings
from feedback_cli.errors import StageFailed
from feedback_cli.runstate.events import EventBus
from feedback_cli.runstate.models import ReviewDecision, RunOptions
from feedback_cli.stages import video_join as assemble
from feedback_cli.workflow.api import execute, prepare_run
from feedback_cli.workflow.review import ReviewRequest
from tests.conftest import EXAMPLE, read_json


class Scripted:
    """A reviewer that answers stage 5's review from a list, and continues at every other review."""

    def __init__(self, *answers: ReviewDecision) -> None:
        self.answers = list(answers)
        self.requests: list[ReviewRequest] = []

    def review(self, request: ReviewRequest) -> ReviewDecision:
        self.requests.append(request)
        if request.stage == "video_generation" and self.answers:
            return self.answers.pop(0)
        return ReviewDecision(stage=request.stage, action="continue")


def storyboard_run(tmp_path: Path, reviewer: Scripted | None) -> Path:
    options = RunOptions(
        storyboard=True,
        clips=2,
        num_image_variations=1,
        num_video_attempts=2,
        backend=Backend.offline,
        seed=3,
        prompt_file=str(EXAMPLE),
    )
    prepared = prepare_run(
        options,
        load_settings(backend="offline"),
        output_dir=tmp_path / "runs",
        source_prompt=EXAMPLE.read_text().strip(),
    )
    asyncio.run(execute(prepared, EventBus(), reviewer))  # type: ignore[arg-type]
    return prepared.folder.root


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def joined(run: Path) -> tuple[list[str], list[str], bytes]:
    """(the picks, the clips final.mp4 was joined from, final.mp4's bytes)."""
    summary = read_json(run / "workflow_summary.json")
    stage5 = next(s for s in summary["stages"] if s["name"] == "video_generation")
    sources = [c["path"] for c in stage5["outputs"]["assembly"]["clips"]]
    return summary["best_videos"], sources, (run / summary["final_video"]).read_bytes()


def test_a_human_pick_at_the_review_re_joins_the_final_video(tmp_path: Path) -> None:
    plain = storyboard_run(tmp_path / "a", None)
    picks_before, sources_before, final_before = joined(plain)
    assert sources_before == picks_before
    # the other take of clip 2, picked by hand at stage 5's review
    other = "clip_02_video_01" if picks_before[1].endswith("clip_02_video_02.mp4") else "clip_02_video_02"
    run = storyboard_run(tmp_path / "b", Scripted(ReviewDecision(stage="", action="pick", choice=other)))
    picks, sources, final = joined(run)
    assert picks[0] == picks_before[0] and picks[1].endswith(f"{other}.mp4")
    assert sources == picks  # final.mp4 is the join of the picks as they are now
    assert final != final_before
    assert frame_count(run / "stage_5_video_generation" / "final.mp4") == sum(frame_count(run / p) for p in picks)
    state = read_json(run / "workflow_checkpoint.json")["state"]
    assert any(e["kind"] == "final_video" for e in state["events"][-6:])


def test_a_regenerated_round_re_joins_the_final_video(tmp_path: Path) -> None:
    reviewer = Scripted(ReviewDecision(stage="", action="regenerate", feedback="slower camera"))
    run = storyboard_run(tmp_path, reviewer)
    picks, sources, _ = joined(run)
    assert sources == picks
    assert len([r for r in reviewer.requests if r.stage == "video_generation"]) == 2  # reviewed again
    # one pick per clip, in clip order, chosen across both rounds' takes; the film is exactly those
    assert [Path(p).name.split("_video_")[0] for p in picks] == ["clip_01", "clip_02"]
    assert frame_count(run / "stage_5_video_generation" / "final.mp4") == sum(frame_count(run / p) for p in picks)


def test_a_join_that_fails_its_check_writes_nothing_and_keeps_the_clips(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = storyboard_run(tmp_path, None)
    picks, _, _ = joined(run)
    clips = [run / p for p in picks]
    before = [c.read_bytes() for c in clips]
    real = assemble._stream_copy
    monkeypatch.setattr(assemble, "_stream_copy", lambda probes: real(probes[:1]))  # a join that loses clip 2
    with pytest.raises(StageFailed, match=r"the joined video has 12 frames, the clips have 24 together"):
        assemble.join_clips(clips)
    out = tmp_path / "again"
    r = cli("stage", "assemble", run, "--output-dir", out)
    assert r.exit_code == 1
    assert "the joined video has 12 frames, the clips have 24 together (stream_copy); nothing written" in r.stderr
    again = next((out / "assemble").iterdir())
    assert not (again / "stage_5_assemble" / "final.mp4").exists()
    assert read_json(again / "workflow_summary.json")["final_video"] is None
    assert [c.read_bytes() for c in clips] == before
    assert [p.read_bytes() for p in sorted((again / "input").glob("clip_*.mp4"))] == before


def test_a_clip_that_is_not_a_video_is_one_clear_failure(tmp_path: Path) -> None:
    bad = tmp_path / "clip_02.mp4"
    bad.write_bytes(b"\x00" * 100)
    good = tmp_path / "clip_01.mp4"
    with av.open(str(good), "w") as container:
        stream = container.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame(32, 32, "yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(StageFailed, match=r"cannot join clip_02.mp4: video cannot be decoded"):
        assemble.join_clips([good, bad])
