"""Picks across regenerate rounds (issue 11): one pick per clip (or one image), chosen across every round's
candidates of that clip; the per-clip scores are the pick's; `best_overall` is the mean over the picks only;
`best_videos` has one path per clip in clip order; a human pick after a regenerate replaces only its clip.

These drive the engine in-process with a scripted reviewer (fast, many configurations); the same flows in a
real terminal are in tests/test_review_pty.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from feedback_cli.choices import Backend, Workflow
from feedback_cli.config import Settings
from feedback_cli.errors import Interrupted
from feedback_cli.runstate.events import EventBus
from feedback_cli.runstate.models import ReviewDecision, RunOptions
from feedback_cli.workflow.api import execute, prepare_run
from feedback_cli.workflow.review import ReviewRequest
from tests.conftest import read_json


class ScriptedReviewer:
    """Answers each review from a per-stage list of decisions ("continue" once a list is used up)."""

    def __init__(self, **decisions: list[tuple[str, str | None]]) -> None:
        self.decisions = {stage: list(answers) for stage, answers in decisions.items()}
        self.requests: list[ReviewRequest] = []

    def review(self, request: ReviewRequest) -> ReviewDecision:
        self.requests.append(request)
        answers = self.decisions.get(request.stage) or []
        if not answers:
            return ReviewDecision(stage=request.stage, action="continue")
        action, value = answers.pop(0)
        if action == "pick" and value == "best-other-round":
            value = _other_round_alternative(request)
        if action == "regenerate":
            return ReviewDecision(stage=request.stage, action="regenerate", feedback=value)
        return ReviewDecision(stage=request.stage, action=action, choice=value)  # type: ignore[arg-type]


def _other_round_alternative(request: ReviewRequest) -> str:
    """A candidate of the last group that is not its pick and comes from a round other than the pick's."""
    groups = sorted({c.group for c in request.candidates})
    group = groups[-1]
    pick = next(c for c in request.candidates if c.key == request.picks[group])
    return next(
        c.key
        for c in request.candidates
        if c.group == group and c.round != pick.round and c.status == "succeeded" and c.key != pick.key
    )


def run_engine(
    tmp_path: Path,
    reviewer: ScriptedReviewer,
    *,
    seed: int,
    storyboard: bool,
    selection: str = "weighted",
    workflow: Workflow = Workflow.full,
) -> Path:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        backend="offline",
        offline_image_size=96,
        offline_video_seconds=0.5,
        selection=selection,
    )
    options = RunOptions(
        workflow=workflow,
        num_image_variations=3,
        num_video_attempts=2,
        max_iterations_image=1,
        max_iterations_video=1,
        interactive=True,
        storyboard=storyboard,
        clips=2,
        backend=Backend.offline,
        scorers="offline",
        seed=seed,
    )
    prepared = prepare_run(options, settings, output_dir=tmp_path / "runs", source_prompt="a red fox in the snow")
    try:
        asyncio.run(execute(prepared, EventBus(), reviewer))
    except Interrupted:  # pragma: no cover - not expected here
        raise
    return prepared.folder.root


def better(rule: str) -> Any:
    return min if rule == "rank" else max


def stage_of(trace: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in trace["stages"] if s["name"] == name)


def assert_one_pick_per_group(run: Path, rule: str, storyboard: bool) -> dict[str, Any]:
    """Every invariant of the picks, from the trace, the summary and scores.json; returns facts for the caller."""
    trace = read_json(run / "workflow_trace.json")
    summary = read_json(run / "workflow_summary.json")
    facts: dict[str, Any] = {"earlier_round_picks": 0}

    images = stage_of(trace, "image_generation")
    ok = [i for i in images["items"] if i["status"] == "succeeded"]
    best = better(rule)(ok, key=lambda i: i["overall"])  # ties: the first (oldest) wins, as in the engine
    assert images["outputs"]["best_key"] == best["key"]
    assert images["outputs"]["best_image"] == best["artifact"]["path"] == summary["best_image"]
    assert images["scores"]["best_overall"] == best["overall"]
    for entry in best["scores"]:
        assert images["scores"][f"best_{entry['scorer']}"] == round(entry["normalized"], 3)
    scores = read_json(run / "stage_2_image_generation" / "scores.json")
    assert list(scores["groups"]) == ["all"]
    assert scores["groups"]["all"]["best"] == best["key"]
    assert len(scores["groups"]["all"]["candidates"]) == len(images["items"])
    facts["earlier_round_picks"] += best["extra"]["round"] < max(i["extra"]["round"] for i in images["items"])
    if not any(s["name"] == "video_generation" for s in trace["stages"]):
        return facts

    videos = stage_of(trace, "video_generation")
    groups = [f"clip_{c:02d}" for c in (1, 2)] if storyboard else ["all"]
    picks = []
    for group in groups:
        members = [i for i in videos["items"] if i["extra"]["group"] == group and i["status"] == "succeeded"]
        picks.append(better(rule)(members, key=lambda i: i["overall"]))
        last_round = max(i["extra"]["round"] for i in members)
        facts["earlier_round_picks"] += picks[-1]["extra"]["round"] < last_round
    paths = [p["artifact"]["path"] for p in picks]
    if storyboard:
        assert videos["outputs"]["best_videos"] == paths, "one path per clip, in clip order"
        assert summary["best_videos"] == paths
    else:
        assert videos["outputs"]["best_video"] == paths[0] == summary["best_video"]
    overall = [p["overall"] for p in picks]
    assert videos["scores"]["best_overall"] == round(sum(overall) / len(overall), 3)
    expected = {"best_overall": videos["scores"]["best_overall"]}
    for group, pick in zip(groups, picks, strict=True):
        expected.update({f"{group}_{e['scorer']}": round(e["normalized"], 3) for e in pick["scores"]})
    assert videos["scores"] == expected
    scores = read_json(run / "stage_5_video_generation" / "scores.json")
    assert list(scores["groups"]) == groups
    for group, pick in zip(groups, picks, strict=True):
        assert scores["groups"][group]["best"] == pick["key"]
        assert scores["groups"][group]["best_path"] == pick["artifact"]["path"]
        assert {c["key"] for c in scores["groups"][group]["candidates"]} == {
            i["key"] for i in videos["items"] if i["extra"]["group"] == group
        }
    # the summary's per-stage scores are the same figures
    summary_videos = next(s for s in summary["stages"] if s["name"] == "video_generation")
    assert summary_videos["scores"] == videos["scores"]
    return facts


@pytest.mark.parametrize("selection", ["weighted", "rank"])
@pytest.mark.parametrize("storyboard", [True, False], ids=["storyboard", "single"])
def test_regenerating_videos_keeps_one_pick_per_clip(tmp_path: Path, storyboard: bool, selection: str) -> None:
    earlier_round_picks = 0
    for seed in (1, 2, 3, 4):
        reviewer = ScriptedReviewer(video_generation=[("regenerate", "slower camera")])
        run = run_engine(tmp_path / str(seed), reviewer, seed=seed, storyboard=storyboard, selection=selection)
        facts = assert_one_pick_per_group(run, selection, storyboard)
        earlier_round_picks += facts["earlier_round_picks"]
        videos = stage_of(read_json(run / "workflow_trace.json"), "video_generation")
        assert {i["extra"]["round"] for i in videos["items"]} == {1, 2}
        # the review after the regenerate shows both rounds and marks the one pick per clip
        last = reviewer.requests[-1]
        assert {c.round for c in last.candidates} == {1, 2}
        assert len(last.picks) == (2 if storyboard else 1)
    assert earlier_round_picks, "no seed had an earlier round's video as the best: the case is not exercised"


@pytest.mark.parametrize("selection", ["weighted", "rank"])
def test_regenerating_images_picks_across_rounds(tmp_path: Path, selection: str) -> None:
    earlier_round_picks = 0
    for seed in range(1, 9):
        reviewer = ScriptedReviewer(image_generation=[("regenerate", "warmer light")])
        run = run_engine(
            tmp_path / str(seed),
            reviewer,
            seed=seed,
            storyboard=False,
            selection=selection,
            workflow=Workflow.image_only,
        )
        images = stage_of(read_json(run / "workflow_trace.json"), "image_generation")
        assert {i["extra"]["round"] for i in images["items"]} == {1, 2}
        facts = assert_one_pick_per_group(run, selection, storyboard=False)
        earlier_round_picks += facts["earlier_round_picks"]
    assert earlier_round_picks, "no seed had an earlier round's image as the best: the case is not exercised"


def test_twice_regenerated_then_a_human_pick_replaces_only_its_clip(tmp_path: Path) -> None:
    reviewer = ScriptedReviewer(
        video_generation=[("regenerate", "slower"), ("regenerate", "more snow"), ("pick", "best-other-round")]
    )
    run = run_engine(tmp_path, reviewer, seed=5, storyboard=True)
    trace = read_json(run / "workflow_trace.json")
    videos = stage_of(trace, "video_generation")
    assert {i["extra"]["round"] for i in videos["items"]} == {1, 2, 3}
    choice = next(r["choice"] for r in trace["reviews"] if r["action"] == "pick")
    by_key = {i["key"]: i for i in videos["items"]}
    picked = by_key[choice]
    assert picked["extra"]["group"] == "clip_02"
    best_videos = videos["outputs"]["best_videos"]
    assert len(best_videos) == 2
    assert best_videos[1] == picked["artifact"]["path"]
    clip_01 = [i for i in videos["items"] if i["extra"]["group"] == "clip_01"]
    assert best_videos[0] == max(clip_01, key=lambda i: i["overall"])["artifact"]["path"], "clip 1 kept its pick"
    first = next(i for i in videos["items"] if i["artifact"] and i["artifact"]["path"] == best_videos[0])
    assert videos["scores"]["best_overall"] == round((first["overall"] + picked["overall"]) / 2, 3)
    for e in picked["scores"]:
        assert videos["scores"][f"clip_02_{e['scorer']}"] == round(e["normalized"], 3)
    for e in first["scores"]:
        assert videos["scores"][f"clip_01_{e['scorer']}"] == round(e["normalized"], 3)
    assert read_json(run / "workflow_summary.json")["best_videos"] == best_videos
