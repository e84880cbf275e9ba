"""Rounds in the image-generation stage (issue 13): each stop condition, selection across rounds, a missing
element fixed in a later round (offline), human feedback through the same revision, the summary and the
dry run; on the fake cloud: the budget stop and a kill in the middle of round 2 resumed without paying twice."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from feedback_cli.choices import Backend, Workflow
from feedback_cli.config import Settings
from feedback_cli.runstate.events import EventBus
from feedback_cli.runstate.models import RunOptions
from feedback_cli.stages.rounds import RoundRules, stop_reason
from feedback_cli.workflow.api import execute, prepare_run
from feedback_cli.workflow.estimate import dry_run
from tests.conftest import only_run, read_json
from tests.test_picks import ScriptedReviewer

PROMPT = "three green trees next to a small wooden house at dusk"


def run_engine(tmp_path: Path, *, seed: int, prompt: str = PROMPT, reviewer: Any = None, **options: Any) -> Path:
    settings = Settings(_env_file=None, backend="offline", offline_image_size=160)  # type: ignore[call-arg]
    opts = RunOptions(
        workflow=Workflow.image_only,
        num_image_variations=3,
        max_iterations_image=1,
        backend=Backend.offline,
        scorers="offline",
        seed=seed,
        interactive=reviewer is not None,
        **options,
    )
    prepared = prepare_run(opts, settings, output_dir=tmp_path / "runs", source_prompt=prompt)
    asyncio.run(execute(prepared, EventBus(), reviewer))
    return prepared.folder.root


def image_stage(run: Path) -> dict[str, Any]:
    return next(s for s in read_json(run / "workflow_trace.json")["stages"] if s["name"] == "image_generation")


def rules(**kw: Any) -> RoundRules:
    base = {"kind": "image", "max_rounds": 3, "target": 90.0, "patience": 1, "per_round": 2, "specs": lambda r, p: []}
    return RoundRules(**{**base, **kw})


# --- the stop rule ------------------------------------------------------------------------------------------


def test_stop_rule_names_each_condition() -> None:
    def done(*scores: float) -> list[dict[str, Any]]:
        return [{"round": i + 1, "best_so_far_overall": s} for i, s in enumerate(scores)]

    assert stop_reason(done(91.0), rules(), True).startswith("target:")
    assert stop_reason(done(50.0), rules(), True) is None
    assert stop_reason(done(50.0, 60.0), rules(), True) is None  # improved: go on
    assert stop_reason(done(50.0, 60.0, 70.0), rules(), True).startswith("rounds: 3 of 3")
    assert stop_reason(done(50.0, 50.0), rules(), True).startswith("patience:")
    assert stop_reason(done(50.0, 50.0), rules(patience=2), True) is None
    assert stop_reason(done(50.0, 50.0, 50.0), rules(patience=2, max_rounds=5), True).startswith("patience:")
    assert stop_reason(done(50.0), rules(), False).startswith("no element questions")
    feedback = done(50.0, 55.0)
    feedback[-1]["feedback_round"] = True
    assert stop_reason(feedback, rules(max_rounds=9), True).startswith("feedback:")


@pytest.mark.parametrize(
    ("options", "reason", "rounds"),
    [
        ({"target_image": 0.0}, "target:", 1),
        ({"target_image": 100.0, "max_rounds_image": 2, "patience": 5}, "rounds: 2 of 2", 2),
    ],
)
def test_target_and_rounds_stop_the_stage(tmp_path: Path, options: dict, reason: str, rounds: int) -> None:
    run = run_engine(tmp_path, seed=3, **options)
    outputs = image_stage(run)["outputs"]
    assert outputs["stop_reason"].startswith(reason)
    assert len(outputs["rounds"]) == rounds
    assert len([i for i in image_stage(run)["items"]]) == 3 * rounds
    summary = read_json(run / "workflow_summary.json")
    stage = next(s for s in summary["stages"] if s["name"] == "image_generation")
    assert stage["outputs"]["stop_reason"] == outputs["stop_reason"]
    assert [r["best_overall"] for r in stage["outputs"]["rounds"]] == [r["best_overall"] for r in outputs["rounds"]]
    body = read_json(run / "stage_2_image_generation" / "rounds.json")
    assert body["stop_reason"] == outputs["stop_reason"] and len(body["rounds"]) == rounds
    assert (run / "stage_2_image_generation" / "questions.json").is_file()


def test_patience_stops_when_the_pick_does_not_improve(tmp_path: Path) -> None:
    for seed in range(1, 12):
        run = run_engine(tmp_path / str(seed), seed=seed, target_image=100.0, max_rounds_image=6, patience=1)
        outputs = image_stage(run)["outputs"]
        if outputs["stop_reason"].startswith("patience:"):
            rounds = outputs["rounds"]
            assert 2 <= len(rounds) < 6
            assert rounds[-1]["best_so_far_overall"] == rounds[-2]["best_so_far_overall"]
            assert all(
                rounds[i]["best_so_far_overall"] > rounds[i - 1]["best_so_far_overall"]
                for i in range(1, len(rounds) - 1)
            )
            return
    pytest.fail("no seed stopped on patience")


def test_a_prompt_without_questions_is_one_round(tmp_path: Path) -> None:
    run = run_engine(tmp_path, seed=2, prompt="a red fox in a snowy forest at dawn", target_image=100.0)
    stage = image_stage(run)
    assert stage["outputs"]["stop_reason"].startswith("no element questions")
    assert len(stage["items"]) == 3
    assert all("elements" not in {e["scorer"] for e in i["scores"]} for i in stage["items"])


# --- selection across rounds, and what the rounds fix -------------------------------------------------------


def test_the_pick_is_the_best_of_every_round(tmp_path: Path) -> None:
    earlier_picks = 0
    for seed in range(1, 7):
        run = run_engine(tmp_path / str(seed), seed=seed, target_image=100.0, max_rounds_image=3, patience=3)
        stage = image_stage(run)
        items = [i for i in stage["items"] if i["status"] == "succeeded"]
        assert {i["extra"]["round"] for i in items} == {1, 2, 3}
        assert len({i["key"] for i in items}) == 9  # keys are unique per round
        best = max(items, key=lambda i: (i["overall"], -i["index"]))
        assert stage["outputs"]["best_key"] == best["key"]
        scores = read_json(run / "stage_2_image_generation" / "scores.json")["groups"]["all"]
        assert scores["best"] == best["key"] and len(scores["candidates"]) == 9
        assert stage["outputs"]["rounds"][-1]["best_so_far_key"] == best["key"]
        earlier_picks += best["extra"]["round"] < 3
        # the elements scorer is part of the overall score, with every answer kept
        assert all("elements" in {e["scorer"] for e in i["scores"]} for i in items)
        assert all(len(i["extra"]["elements"]["answers"]) == 5 for i in items)
    assert earlier_picks, "the best so far never stayed from an earlier round: the case is not exercised"


def test_a_missing_element_is_fixed_in_a_later_round(tmp_path: Path) -> None:
    for seed in range(1, 20):
        run = run_engine(tmp_path / str(seed), seed=seed, target_image=100.0, max_rounds_image=3, patience=3)
        stage = image_stage(run)
        rounds = stage["outputs"]["rounds"]
        first_failed = set(rounds[0]["failed"])
        pick = next(i for i in stage["items"] if i["key"] == stage["outputs"]["best_key"])
        passed = {a["question"] for a in pick["extra"]["elements"]["answers"] if a["score"] >= 0.5}
        fixed = first_failed & passed
        if first_failed and fixed and pick["extra"]["round"] > 1:
            # round 2's prompt asks again for what round 1's best missed, named by its failed question
            changes = " ".join(rounds[1]["revision"]["changes"])
            assert any(question in changes for question in fixed)
            assert rounds[1]["prompt"].startswith(rounds[0]["prompt"])
            assert pick["extra"]["elements"]["score"] > rounds[0]["best_elements"]
            return
    pytest.fail("no seed fixed a missing element in a later round")


def test_human_feedback_goes_through_the_revision(tmp_path: Path) -> None:
    reviewer = ScriptedReviewer(image_generation=[("regenerate", "make the house red")])
    run = run_engine(tmp_path, seed=4, reviewer=reviewer, target_image=0.0)
    rounds = image_stage(run)["outputs"]["rounds"]
    assert len(rounds) == 2 and rounds[1]["feedback_round"]
    assert rounds[1]["revision"]["human_feedback"] == "make the house red"
    assert rounds[1]["prompt"].endswith("make the house red")
    assert image_stage(run)["outputs"]["stop_reason"].startswith("feedback:")
    assert {c.round for c in reviewer.requests[-1].candidates} == {1, 2}


# --- the plan ------------------------------------------------------------------------------------------------


def test_dry_run_counts_the_rounds(fake_provider_env) -> None:  # type: ignore[no-untyped-def]
    settings = Settings()
    one = RunOptions(workflow=Workflow.image_only, backend=Backend.cloud, num_image_variations=4, max_rounds_image=1)
    three = one.model_copy(update={"max_rounds_image": 3})
    image_one = next(s for s in dry_run(one, settings, starts_from_image=False).stages if s.name == "image_generation")
    plan = dry_run(three, settings, starts_from_image=False)
    image = next(s for s in plan.stages if s.name == "image_generation")
    assert (image.media_calls_min, image.media_calls) == (4, 12)
    assert image.cost_min_usd == pytest.approx(image_one.cost_min_usd)
    assert image.cost_max_usd > 2.9 * image_one.cost_max_usd - 2 * image_one.agent_calls_max
    assert image.agent_calls_max == 1 + 2 * 2
    assert any("1 to 3 round(s)" in n for n in plan.notes)


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--max-rounds-image", "0"), ("--max-rounds-video", "21"), ("--patience", "0"), ("--target-image", "101")],
)
def test_bad_rounds_flags_are_one_line(cli, tmp_path: Path, flag: str, value: str) -> None:  # type: ignore[no-untyped-def]
    prompt = tmp_path / "p.txt"
    prompt.write_text(PROMPT)
    for args in (("run", prompt), ("stage", "image-generation", "--prompt-file", prompt)):
        result = cli(*args, flag, value, "--output-dir", tmp_path / "out")
        assert result.exit_code == 2 and flag in result.stderr and "Traceback" not in result.stderr


def test_stage_command_runs_rounds(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prompt = tmp_path / "p.txt"
    prompt.write_text(PROMPT)
    out = tmp_path / "out"
    result = cli(
        "stage",
        "image-generation",
        "--prompt-file",
        prompt,
        "--num",
        "2",
        "--max-rounds-image",
        "2",
        "--target-image",
        "100",
        "--patience",
        "2",
        "--backend",
        "offline",
        "--output-dir",
        out,
    )
    assert result.exit_code == 0, result.stderr
    run = only_run(out / "image_generation")
    outputs = read_json(run / "workflow_summary.json")["stages"][0]["outputs"]
    assert outputs["stop_reason"].startswith("rounds: 2 of 2") and len(outputs["rounds"]) == 2


# --- the cloud: budget, and a kill in round 2 ----------------------------------------------------------------

FAST = {"FBLOOP_POLL_INTERVAL_S": "0.02", "FBLOOP_SCORERS": "offline"}


def test_a_round_whose_estimate_passes_the_cap_is_not_started(
    cli, fake_provider_env, monkeypatch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    prompt = tmp_path / "p.txt"
    prompt.write_text(PROMPT)
    out = tmp_path / "runs"
    # 2 flux-schnell images at $0.003 a round: round 1 (with its questions and element check) fits under
    # $0.0095, round 2 (its images, its element check and the revision) would not
    result = cli(
        "run",
        prompt,
        "--backend",
        "cloud",
        "--workflow",
        "image-only",
        "--num-image-variations",
        "2",
        "--max-iterations-image",
        "1",
        "--target-image",
        "100",
        "--seed",
        "1",
        "--max-cost",
        "0.0085",
        "--output-dir",
        out,
    )
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    stage = image_stage(run)
    assert stage["outputs"]["stop_reason"].startswith("budget: round 2 would cost")
    assert len(stage["outputs"]["rounds"]) == 1 and fake_provider_env.predictions_created == 2
    assert read_json(run / "workflow_summary.json")["total_cost_usd"] <= 0.0095


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_kill_in_round_two_resumes_in_round_two_without_paying_twice(fake_provider_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cloud = fake_provider_env
    prompt = tmp_path / "p.txt"
    prompt.write_text(PROMPT)
    out = tmp_path / "runs"
    env = {**os.environ, **cloud.env(), **FAST}
    cmd = [
        sys.executable,
        "-m",
        "feedback_cli",
        "run",
        str(prompt),
        "--backend",
        "cloud",
        "--workflow",
        "image-only",
        "--num-image-variations",
        "2",
        "--max-iterations-image",
        "1",
        "--max-rounds-image",
        "2",
        "--target-image",
        "100",
        "--seed",
        "5",
        "--output-dir",
        str(out),
    ]
    cloud.image_latency = 0.05
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    submitted: list[str] = []
    while time.monotonic() < deadline and len(submitted) < 2:
        if cloud.predictions_created >= 2:
            cloud.image_latency = 3.0  # round 2's predictions stay in flight long enough to kill the run
        time.sleep(0.02)
        for run in out.glob("*"):
            try:
                state = json.loads((run / "workflow_checkpoint.json").read_text())["state"]
            except (OSError, ValueError, KeyError):
                continue
            submitted = [
                i["job_id"]
                for s in state["stages"]
                for i in s["items"]
                if i["key"].startswith("r2_") and i["status"] == "submitted"
            ]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert len(submitted) == 2, "both round-2 predictions were in flight at the kill"
    assert cloud.predictions_created == 4
    run = only_run(out)
    before = read_json(run / "workflow_checkpoint.json")["state"]
    stage_before = next(s for s in before["stages"] if s["name"] == "image_generation")
    round_one = {i["key"]: _sha(run / i["artifact"]["path"]) for i in stage_before["items"] if i["extra"]["round"] == 1}
    chats_before = len(cloud.requests_for("chat"))
    cloud.image_latency = 0.05
    resumed = subprocess.run(
        [sys.executable, "-m", "feedback_cli", "resume", str(run)], env=env, capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    assert cloud.predictions_created == 4, "resume re-attached to round 2's predictions"
    stage = image_stage(run)
    assert sorted(i["job_id"] for i in stage["items"] if i["key"].startswith("r2_")) == sorted(submitted)
    assert {k: _sha(run / f"stage_2_image_generation/{k}.png") for k in round_one} == round_one
    assert stage["outputs"]["rounds"][1]["revision"] == stage_before["outputs"]["rounds"][1]["revision"]
    new_chats = [json.dumps(r.body) for r in cloud.requests_for("chat")[chats_before:]]
    assert not any("RevisionNotes" in c or "QuestionsReply" in c for c in new_chats), "nothing asked twice"
    assert stage["outputs"]["stop_reason"].startswith("rounds: 2 of 2")


def test_inspect_shows_the_rounds(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for seed in range(1, 20):
        run = run_engine(tmp_path / str(seed), seed=seed, target_image=100.0, max_rounds_image=2, patience=2)
        if image_stage(run)["outputs"]["rounds"][0]["failed"]:
            break
    else:
        pytest.fail("no seed failed a question in round 1")
    data = json.loads(cli("inspect", run, "--json").stdout)
    stage = next(s for s in data["stages"] if s["name"] == "image_generation")
    log = stage["round_log"]
    assert [r["round"] for r in log] == [1, 2] and log[0]["changes"] is None and log[0]["failed"]
    added = " ".join(words for op, words in log[1]["changes"] if op == "+")
    assert (
        log[1]["prompt"].startswith(log[0]["prompt"]) and log[1]["prompt"][len(log[0]["prompt"]) :].strip(", ") in added
    )
    assert stage["stop_reason"].startswith("rounds:") and "questions" not in stage["outputs"]
    text = cli("inspect", run).stdout
    assert "Image generation: rounds" in text and "{+" in text and "failed: " in text and "stopped: rounds" in text
    report = tmp_path / "report.html"
    assert cli("inspect", run, "--html", report).exit_code == 0
    html = report.read_text()
    assert "<h3>Rounds</h3>" in html and "<ins>" in html and "failed: " in html and "stopped: rounds" in html


def test_storyboard_clips_loop_independently(tmp_path: Path) -> None:
    prompt = "a red kite flying over three trees while the camera zooms in"
    for seed in range(1, 10):
        settings = Settings(_env_file=None, backend="offline", offline_image_size=128, offline_video_seconds=0.5)  # type: ignore[call-arg]
        opts = RunOptions(
            workflow=Workflow.full,
            storyboard=True,
            clips=2,
            num_image_variations=2,
            num_video_attempts=2,
            max_iterations_image=1,
            max_iterations_video=1,
            max_rounds_image=1,
            max_rounds_video=3,
            target_video=100.0,
            patience=1,
            backend=Backend.offline,
            scorers="offline",
            seed=seed,
        )
        prepared = prepare_run(opts, settings, output_dir=tmp_path / str(seed), source_prompt=prompt)
        asyncio.run(execute(prepared, EventBus()))
        run = prepared.folder.root
        stage = next(s for s in read_json(run / "workflow_trace.json")["stages"] if s["name"] == "video_generation")
        outputs = stage["outputs"]
        counts = {clip: len(outputs[f"rounds_{clip}"]) for clip in ("clip_01", "clip_02")}
        for clip, count in counts.items():
            mine = [i for i in stage["items"] if i["extra"]["group"] == clip]
            assert {i["extra"]["round"] for i in mine} == set(range(1, count + 1))
            assert outputs[f"stop_reason_{clip}"].split(":")[0] in ("rounds", "patience")
            body = read_json(run / "stage_5_video_generation" / f"rounds_{clip}.json")
            assert len(body["rounds"]) == count
            pick = max((i for i in mine if i["overall"] is not None), key=lambda i: i["overall"])
            assert pick["artifact"]["path"] in outputs["best_videos"]
            assert all("elements" in {e["scorer"] for e in i["scores"]} for i in mine)
        if counts["clip_01"] != counts["clip_02"]:
            return  # each clip stopped on its own account
    pytest.fail("no seed had clips stopping after different numbers of rounds")


def test_a_later_round_that_makes_nothing_keeps_the_best_so_far(tmp_path: Path) -> None:
    from feedback_cli.errors import ProviderError
    from feedback_cli.providers.offline.media import OfflineMedia

    class RoundTwoFails(OfflineMedia):
        async def generate_image(self, request, job):  # type: ignore[no-untyped-def]
            if request.seed >= 3 + 3:  # seeds 3.. are round 1 (3 images a round, base seed 3)
                raise ProviderError("prediction failed: CUDA OOM")
            return await super().generate_image(request, job)

    settings = Settings(_env_file=None, backend="offline", offline_image_size=128)  # type: ignore[call-arg]
    opts = RunOptions(
        workflow=Workflow.image_only,
        num_image_variations=3,
        max_iterations_image=1,
        backend=Backend.offline,
        scorers="offline",
        seed=3,
        target_image=100.0,
        patience=3,
    )
    prepared = prepare_run(opts, settings, output_dir=tmp_path / "runs", source_prompt=PROMPT)
    prepared.services._media = RoundTwoFails(settings)
    asyncio.run(execute(prepared, EventBus()))
    run = prepared.folder.root
    stage = image_stage(run)
    assert read_json(run / "workflow_summary.json")["status"] == "completed"
    assert stage["outputs"]["stop_reason"].startswith("failed: no candidate of round 2 succeeded")
    assert len(stage["outputs"]["rounds"]) == 2
    assert stage["outputs"]["best_key"] == stage["outputs"]["rounds"][0]["best_so_far_key"]
    assert stage["outputs"]["best_key"].startswith("image_")


# --- selection rules inside rounds ----------------------------------------------------------------------------


def test_a_tie_in_the_recorded_overall_goes_to_the_earlier_candidate() -> None:
    """The pick is made on the values recorded and shown (3 decimals): 54.4908 and 54.4912 are both 54.491, a
    tie, and the earlier candidate wins, as the round log and a reader of scores.json would say."""
    from feedback_cli.scoring.combine import pick_best

    for values in ([54.4908, 54.4912], [70.00049, 70.0001, 69.9]):
        best, overall = pick_best([{"a": v} for v in values], {"a": 1.0}, "weighted")
        assert best == 0 and overall[0] == overall[1]
    best, overall = pick_best([{"a": 1.0}, {"a": 1.0004}, {"a": 3.0}], {"a": 1.0}, "weighted")
    assert best == 2 and overall == [1.0, 1.0, 3.0]


def run_rank_engine(tmp_path: Path, seed: int) -> Path:
    settings = Settings(_env_file=None, backend="offline", offline_image_size=160, selection="rank")  # type: ignore[call-arg]
    opts = RunOptions(
        workflow=Workflow.image_only,
        num_image_variations=3,
        max_iterations_image=1,
        backend=Backend.offline,
        scorers="offline",
        seed=seed,
        max_rounds_image=3,
        target_image=100.0,
        patience=3,
    )
    prepared = prepare_run(opts, settings, output_dir=tmp_path / "runs", source_prompt=PROMPT)
    asyncio.run(execute(prepared, EventBus(), None))
    return prepared.folder.root


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rounds_under_the_rank_rule_pick_the_lowest_mean_rank_and_stop_on_0_100_scores(
    tmp_path: Path, seed: int
) -> None:
    """With FBLOOP_SELECTION=rank, `overall` is a mean rank (lower is better): each round's best and the pick
    are the lowest, and the round's scores that the target and patience read are 0-100 weighted means."""
    stage = image_stage(run_rank_engine(tmp_path, seed))
    items = {i["key"]: i for i in stage["items"] if i["status"] == "succeeded"}
    log = stage["outputs"]["rounds"]
    assert [r["round"] for r in log] == [1, 2, 3]
    assert stage["outputs"]["stop_reason"].startswith("rounds:")

    def mean_0_100(item: dict[str, Any]) -> float:
        values = [e["normalized"] for e in item["scores"]]  # every offline scorer and elements weigh 1
        return round(sum(values) / len(values), 3)

    for entry in log:
        assert items[entry["best_key"]]["extra"]["round"] == entry["round"]
        assert entry["best_overall"] == mean_0_100(items[entry["best_key"]])
        assert entry["best_so_far_overall"] == mean_0_100(items[entry["best_so_far_key"]])
    # a mean rank is over the whole pool, so only the last round's entry was made with the ranks recorded now
    last = [i for i in items.values() if i["extra"]["round"] == 3]
    assert log[-1]["best_key"] == min(last, key=lambda i: (i["overall"], i["index"]))["key"]
    pick = min(items.values(), key=lambda i: (i["overall"], i["extra"]["round"], i["index"]))
    assert stage["outputs"]["best_key"] == log[-1]["best_so_far_key"] == pick["key"]


def test_the_readmes_offline_rounds_demo_is_true(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README, Rounds: `fbloop run examples/balloons.txt --workflow image-only --seed 2` goes three rounds and
    its pick from 65.5 to 72.6; the red fox's words are outside the offline vocabulary, and the run says so."""
    monkeypatch.delenv("FBLOOP_OFFLINE_IMAGE_SIZE")  # the README's figures are at the default size
    repo = Path(__file__).resolve().parents[1]
    readme = " ".join((repo / "README.md").read_text().split())
    demo = "`fbloop run examples/balloons.txt --workflow image-only --seed 2`"
    assert f"{demo} (three rounds; the pick goes from 65.5 to 72.6)" in readme
    result = cli(
        "run",
        repo / "examples" / "balloons.txt",
        "--workflow",
        "image-only",
        "--seed",
        "2",
        "--output-dir",
        tmp_path / "a",
    )
    assert result.exit_code == 0, result.stderr
    log = read_json(only_run(tmp_path / "a") / "stage_2_image_generation" / "rounds.json")
    picks = [f"{r['best_so_far_overall']:.1f}" for r in log["rounds"]]
    assert len(picks) == 3 and (picks[0], picks[-1]) == ("65.5", "72.6")
    fox = cli(
        "run",
        repo / "examples" / "red_fox.txt",
        "--workflow",
        "image-only",
        "--seed",
        "2",
        "--output-dir",
        tmp_path / "b",
    )
    assert fox.exit_code == 0, fox.stderr
    words = "none of its words are in its vocabulary (dawn, forest, fox, snowy)"
    assert f"0 element questions from the prompt (offline-decomposition): {words}" in fox.stderr
