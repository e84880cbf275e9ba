"""The cloud backend, driven by the real `openai` and `replicate` clients against the fake provider
server on 127.0.0.1 (tests/fakes): nothing in the client libraries is patched."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from feedback_cli.agents.schemas import CritiqueRequest, PlanRequest, WriteRequest
from feedback_cli.config import Settings
from feedback_cli.errors import ProviderError
from feedback_cli.providers.openai_agents import OpenAIAgents
from tests.conftest import EXAMPLE, only_run, read_json
from tests.fakes.script import ChatReply

FAST = {"FBLOOP_POLL_INTERVAL_S": "0.02", "FBLOOP_SCORERS": "offline"}


@pytest.fixture
def cloud(fake_provider_env, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    fake_provider_env.image_latency = 0.05
    fake_provider_env.video_latency = 0.1
    return fake_provider_env


def agents() -> OpenAIAgents:
    return OpenAIAgents(Settings(llm_retries=0))


def run_cloud(cli: Any, out: Path, *args: str) -> Any:
    return cli(
        "run",
        EXAMPLE,
        "--backend",
        "cloud",
        "--seed",
        "3",
        "--output-dir",
        out,
        "--num-image-variations",
        "3",
        "--num-video-attempts",
        "2",
        "--max-rounds-image",  # these tests count one round's predictions; rounds: tests/test_rounds.py
        "1",
        *args,
    )


def assert_each_prediction_paid_once(cloud, run: Path) -> None:  # type: ignore[no-untyped-def]
    """Every prediction the server created belongs to exactly one item of the run: nothing paid twice.
    (Video attempts of a model without a seed field have identical inputs by design, so identical inputs
    alone do not mean a duplicate.)"""
    trace = read_json(run / "workflow_trace.json")
    job_ids = [i["job_id"] for s in trace["stages"] for i in s["items"] if i["job_id"]]
    assert len(job_ids) == len(set(job_ids))
    assert set(job_ids) == set(cloud.predictions), (len(job_ids), cloud.predictions_created)


# --- agents ---------------------------------------------------------------------------------------


def both(*calls: Any) -> list[Any]:
    """Run agent calls in one event loop with one client, as a run does."""

    async def scenario() -> list[Any]:
        a = agents()
        try:
            return [await call(a) for call in calls]
        finally:
            await a.aclose()

    return asyncio.run(scenario())


def test_structured_outputs_are_parsed(cloud) -> None:  # type: ignore[no-untyped-def]
    critique, plan = both(
        lambda a: a.critique(CritiqueRequest(kind="image", source="a red fox", prompt="a red fox, 85mm")),
        lambda a: a.plan_video(PlanRequest(source="a red fox", scenes=2)),
    )
    assert 0 <= critique.value.overall <= 100 and critique.value.scores
    assert critique.model == "gpt-4.1-mini" and critique.usage.prompt_tokens > 0 and critique.cost_usd > 0
    assert critique.request["mode"] == "json_schema"
    body = cloud.requests_for("chat")[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert plan.value.scenes and plan.value.entities
    # the strict schema holds the critic to the rubric: one 0-100 score per criterion, by name
    rubric_names = {"subject", "style", "composition", "lighting", "colour", "camera", "mood", "detail"}
    assert set(critique.value.scores) == rubric_names
    assert len(plan.value.scenes) == 2
    assert [e.id for e in plan.value.entities] == [f"e{i + 1}" for i in range(len(plan.value.entities))]


def test_json_mode_fallback_and_one_repair(cloud) -> None:  # type: ignore[no-untyped-def]
    cloud.json_mode_only = True
    cloud.queue_chat_replies('{"prompt": 42}', match="json_object")  # JSON of the wrong shape: repaired once
    first, second = both(
        lambda a: a.write(WriteRequest(kind="image", source="a red fox")),
        lambda a: a.write(WriteRequest(kind="image", source="a red fox")),
    )
    assert first.value.prompt and first.request["mode"] == "json_object+repair"
    kinds = [r.body["response_format"]["type"] for r in cloud.requests_for("chat")]
    # rejected, asked, repaired; then the client has learnt: straight to JSON mode
    assert kinds == ["json_schema", "json_object", "json_object", "json_object"]
    assert second.request["mode"] == "json_object"


@pytest.mark.parametrize(
    ("replies", "message"),
    [
        ([ChatReply.refuse("I can't help with that")], "refused: I can't help with that"),
        ([ChatReply.cut_off()], "cut off at the token limit"),
        (
            [ChatReply.not_json(), ChatReply.not_json()],
            "did not return valid JSON after one repair",
        ),
    ],
    ids=["refusal", "cut-off", "not-json"],
)
def test_bad_llm_replies_are_clear_provider_errors(cloud, replies, message: str) -> None:  # type: ignore[no-untyped-def]
    cloud.queue_chat_replies(*replies)
    with pytest.raises(ProviderError) as info:
        both(lambda a: a.critique(CritiqueRequest(kind="image", source="a fox", prompt="a fox")))
    assert message in info.value.message
    assert len(cloud.requests_for("chat")) == len(replies)  # a bad JSON reply gets exactly one repair


# --- whole runs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("workflow", ["full", "image-only", "prompt-only", "video-only", "full-storyboard"])
def test_every_workflow_completes_on_the_cloud_backend(cli, cloud, tmp_path: Path, workflow: str) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "runs"
    args = ["--workflow", workflow.split("-storyboard")[0]]
    if workflow == "full-storyboard":
        args = ["--storyboard", "--clips", "2"]
    if workflow == "video-only":
        from PIL import Image

        Image.new("RGB", (64, 36), (200, 60, 20)).save(tmp_path / "start.png")
        args += ["--input-image", str(tmp_path / "start.png")]
    result = run_cloud(cli, out, *args)
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    summary = read_json(run / "workflow_summary.json")
    assert summary["status"] == "completed" and summary["backend"] == "cloud" and not summary["offline"]
    trace = read_json(run / "workflow_trace.json")
    for stage in trace["stages"]:
        for item in stage["items"]:  # every paid request is in the trace with what it cost
            assert item["status"] == "succeeded" and item["job_id"] and item["model"]
            assert item["request"]["prediction_id"] == item["job_id"] and item["request"]["input"]["prompt"]
            assert isinstance(item["seed"], int) and item["cost_usd"] > 0
        for it in stage["iterations"]:
            assert it["writer_model"] == "gpt-4.1-mini" and it["cost_usd"] > 0
    llm = [e for e in trace["ledger"] if e["provider"] == "openai"]
    assert llm and all(e["detail"]["prompt_tokens"] > 0 for e in llm)
    assert summary["total_cost_usd"] == pytest.approx(sum(e["usd"] for e in trace["ledger"]), abs=1e-6)
    assert_each_prediction_paid_once(cloud, run)


def test_storyboard_uses_start_and_end_frames(cli, cloud, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cloud(cli, tmp_path / "runs", "--storyboard", "--clips", "2")
    assert result.exit_code == 0, result.stderr
    videos = [p for p in cloud.predictions.values() if p.model == "kwaivgi/kling-v2.1"]
    assert len(videos) == 4
    for prediction in videos:
        assert prediction.input["start_image"].startswith("data:image/png;base64,")
        assert prediction.input["end_image"].startswith("data:image/png;base64,")
        assert prediction.input["mode"] == "pro"  # kling takes an end frame only in pro mode


def test_429_and_5xx_on_create_are_retried(cli, cloud, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cloud.fail_next_creates(429, count=2, retry_after=0)
    cloud.fail_next_creates(503, count=1)
    result = run_cloud(cli, tmp_path / "runs", "--workflow", "image-only")
    assert result.exit_code == 0, result.stderr
    assert len(cloud.requests_for("create")) == 6  # 3 rejected, then one per image
    assert cloud.predictions_created == 3  # the rejected attempts created nothing
    assert_each_prediction_paid_once(cloud, only_run(tmp_path / "runs"))


def test_a_failed_prediction_is_recorded_and_the_run_goes_on(cli, cloud, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cloud.fail_next_predictions("CUDA out of memory", count=1, model="black-forest-labs/flux-schnell")
    out = tmp_path / "runs"
    result = run_cloud(cli, out, "--workflow", "image-only")
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    items = read_json(run / "workflow_trace.json")["stages"][1]["items"]
    failed = [i for i in items if i["status"] == "failed"]
    assert len(failed) == 1 and "CUDA out of memory" in failed[0]["error"] and failed[0]["job_id"]
    assert "CUDA out of memory" in result.stderr
    scores = read_json(run / "stage_2_image_generation" / "scores.json")
    assert scores["groups"]["all"]["best"] != failed[0]["key"]


def test_keys_never_reach_the_run_folder(cli, cloud, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "runs"
    result = run_cloud(cli, out, "--storyboard", "--clips", "1", "--verbose")
    assert result.exit_code == 0, result.stderr
    secrets = [os.environ["OPENAI_API_KEY"], os.environ["REPLICATE_API_TOKEN"]]
    assert set(secrets) <= cloud.auth_tokens  # they were really used...
    for secret in secrets:  # ...and written nowhere
        assert secret not in result.stdout + result.stderr
        for path in only_run(out).rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


def test_budget_cap_stops_before_the_call_that_would_pass_it(cli, cloud, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "runs"
    # 3 images at $0.003 and 2 videos at $0.25 (kling standard, 5 s): the second video would pass $0.30
    result = run_cloud(cli, out, "--max-cost", "0.30")
    assert result.exit_code == 1
    assert "budget reached" in result.stderr and "--max-cost" in result.stderr
    run = only_run(out)
    state = read_json(run / "workflow_checkpoint.json")["state"]
    assert state["status"] == "budget_exceeded"
    spent = sum(e["usd"] for e in state["ledger"])
    assert spent <= 0.30
    assert cloud.predictions_per_model.get("kwaivgi/kling-v2.1", 0) == 1
    again = cli("resume", run, "--max-cost", "1.0")
    assert again.exit_code == 0, again.stderr
    assert read_json(run / "workflow_summary.json")["status"] == "completed"
    assert_each_prediction_paid_once(cloud, run)


# --- crash while predictions are in flight -----------------------------------------------------


def test_kill_with_predictions_in_flight_then_resume_creates_none_twice(cloud, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cloud.image_latency = 1.5
    out = tmp_path / "runs"
    env = {**os.environ, **cloud.env(), **FAST}
    cmd = [
        sys.executable,
        "-m",
        "feedback_cli",
        "run",
        str(EXAMPLE),
        "--backend",
        "cloud",
        "--workflow",
        "image-only",
        "--num-image-variations",
        "4",
        "--max-rounds-image",
        "1",
        "--seed",
        "9",
        "--output-dir",
        str(out),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    submitted: list[str] = []
    while time.monotonic() < deadline and len(submitted) < 4:
        time.sleep(0.02)
        for run in out.glob("*"):
            try:
                state = json.loads((run / "workflow_checkpoint.json").read_text())["state"]
            except (OSError, ValueError, KeyError):
                continue
            submitted = [i["job_id"] for s in state["stages"] for i in s["items"] if i["status"] == "submitted"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert len(submitted) == 4, "all four predictions were in flight at the kill"
    assert cloud.predictions_created == 4
    cloud.image_latency = 0.05
    run = only_run(out)
    resumed = subprocess.run(
        [sys.executable, "-m", "feedback_cli", "resume", str(run)], env=env, capture_output=True, text=True, timeout=60
    )
    assert resumed.returncode == 0, resumed.stderr
    assert cloud.predictions_created == 4, "resume re-attached to the recorded predictions"
    assert_each_prediction_paid_once(cloud, run)
    items = read_json(run / "workflow_trace.json")["stages"][1]["items"]
    assert sorted(i["job_id"] for i in items) == sorted(submitted)


def test_a_prediction_created_just_before_a_crash_is_adopted_not_paid_again(
    cli,
    cloud,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """The narrow window: the provider created the job, the process died before the id was checkpointed."""
    from tests.test_checkpoint import rewrite_state

    out = tmp_path / "runs"
    assert run_cloud(cli, out, "--workflow", "image-only").exit_code == 0
    run = only_run(out)
    lost = read_json(run / "workflow_checkpoint.json")["state"]["stages"][1]["items"][1]
    (run / lost["artifact"]["path"]).unlink()

    def died_before_the_id_was_saved(state: dict) -> None:
        state["status"] = "interrupted"
        stage = state["stages"][1]
        stage.update(status="interrupted", outputs={}, artifacts=[])
        stage["items"][1].update(
            status="pending",
            job_id=None,
            artifact=None,
            scores=[],
            overall=None,
            finished_at=None,
            extra={},
            started_at="2000-01-01T00:00:00.000+00:00",
        )
        state["ledger"] = [e for e in state["ledger"] if e["detail"].get("job_id") != lost["job_id"]]

    rewrite_state(run, died_before_the_id_was_saved)
    created = cloud.predictions_created
    result = cli("resume", run)
    assert result.exit_code == 0, result.stderr
    assert cloud.predictions_created == created, "no new prediction: the orphan was found and adopted"
    items = read_json(run / "workflow_trace.json")["stages"][1]["items"]
    assert items[1]["job_id"] == lost["job_id"] and items[1]["status"] == "succeeded"
    assert_each_prediction_paid_once(cloud, run)


def test_the_plan_is_held_to_its_brief() -> None:
    from feedback_cli.agents.templates import EntityReply, PlanReply, SceneReply
    from feedback_cli.providers.openai_agents import normalize_plan

    scene = SceneReply(
        description="s",
        entity_ids=["fox", "ghost"],
        background="b",
        camera_motion="pan",
        action="a",
        mood="m",
        duration_s=5,
    )
    reply = PlanReply(
        scenes=[scene, scene, scene],
        entities=[EntityReply(id="fox", description="a red fox")],
        background="snow",
        camera_motion="pan",
        consistency_groups=[["fox", "ghost"], ["ghost"]],
    )
    plan = normalize_plan(reply, PlanRequest(source="a red fox", scenes=2))
    assert [s.index for s in plan.scenes] == [1, 2]  # the third scene is cut
    assert [e.id for e in plan.entities] == ["e1"]
    assert all(s.entity_ids == ["e1"] for s in plan.scenes)  # "ghost" is in no entity list
    assert plan.consistency_groups == [["e1"]]


def test_an_unfaithful_prompt_cannot_win(cloud) -> None:  # type: ignore[no-untyped-def]
    names = ["subject", "style", "composition", "lighting", "colour", "camera", "mood", "detail"]
    verdict = {"scores": dict.fromkeys(names, 95), "overall": 97, "feedback": [], "faithful": False}
    cloud.queue_chat_replies(json.dumps(verdict))
    (critique,) = both(lambda a: a.critique(CritiqueRequest(kind="image", source="a fox", prompt="a cat")))
    assert critique.value.overall == 50.0 and not critique.value.faithful


def test_a_starting_image_is_described_by_the_vision_model(cli, cloud, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    image = tmp_path / "harbour_at_night.png"
    Image.new("RGB", (2000, 1000), (20, 30, 90)).save(image)
    result = cli("run", image, "--backend", "cloud", "--workflow", "prompt-only", "--output-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    first = cloud.requests_for("chat")[0].body
    parts = first["messages"][0]["content"]
    url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
    assert url.startswith("data:image/jpeg;base64,") and first["model"] == "gpt-4.1-mini"
    trace = read_json(only_run(tmp_path / "runs") / "workflow_trace.json")
    assert trace["stages"][0]["outputs"]["derived_prompt"] == trace["source_prompt"]
    assert any(e["what"] == "describe starting image" and e["usd"] > 0 for e in trace["ledger"])


def test_variations_are_in_flight_together_and_a_price_file_overrides(
    cli,
    cloud,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"replicate": {"black-forest-labs/flux-schnell": {"per_image": 0.5}}}))
    monkeypatch.setenv("FBLOOP_PRICE_FILE", str(prices))
    cloud.image_latency = 0.3
    out = tmp_path / "runs"
    result = cli(
        "run",
        EXAMPLE,
        "--backend",
        "cloud",
        "--workflow",
        "image-only",
        "--num-image-variations",
        "4",
        "--max-rounds-image",
        "1",
        "--output-dir",
        out,
    )
    assert result.exit_code == 0, result.stderr
    assert cloud.max_in_flight_predictions == 4  # all four variations were running at once
    items = read_json(only_run(out) / "workflow_trace.json")["stages"][1]["items"]
    assert [i["cost_usd"] for i in items] == [0.5] * 4
