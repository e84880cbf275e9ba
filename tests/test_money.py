"""Money (issue 10) and provider errors (issue 11): every response the provider billed is in the ledger and
counted against --max-cost, whatever happens to the reply; a request in flight when the process dies is booked
on resume as an estimate; `fbloop stage` and a checkpoint are held to the same bounds as `fbloop run`.

All against the fake provider server with the real `openai` and `replicate` clients. The server's bill is
`server.billed_chats`: one entry per chat completion it answered with token usage.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from feedback_cli.config import Settings
from feedback_cli.providers.prices import load_prices
from feedback_cli.text import shorten
from tests.conftest import EXAMPLE, only_run, read_json
from tests.fakes.provider_server import GATEWAY_SCHEMA_ERROR, FakeProviderServer
from tests.fakes.script import ChatReply
from tests.test_checkpoint import rewrite_state

FAST = {"FBLOOP_POLL_INTERVAL_S": "0.02", "FBLOOP_SCORERS": "offline", "COLUMNS": "500"}
CRITIC = "ImageCriticReply"  # in the body of every image critic request (its schema's name)
MODEL = "gpt-4.1-mini"


@pytest.fixture
def cloud(fake_provider_env: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> FakeProviderServer:
    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    return fake_provider_env


def prompt_only(cli: Any, out: Path, *args: str) -> Any:
    return cli(
        "run", EXAMPLE, "--backend", "cloud", "--workflow", "prompt-only", "--seed", "1", "--output-dir", out, *args
    )


def llm_entries(trace: dict[str, Any], *, estimated: bool) -> list[dict[str, Any]]:
    return [e for e in trace["ledger"] if e["provider"] == "openai" and e["estimated"] is estimated]


def assert_ledger_is_the_bill(server: FakeProviderServer, trace: dict[str, Any]) -> None:
    """Every response the server billed is one ledger entry with its tokens, priced at the price table."""
    prices = load_prices(None)
    booked = llm_entries(trace, estimated=False)
    key = ("model", "prompt_tokens", "completion_tokens", "cached_tokens")
    as_booked = sorted(
        (e["model"], e["detail"]["prompt_tokens"], e["detail"]["completion_tokens"], e["detail"]["cached_tokens"])
        for e in booked
    )
    assert as_booked == sorted(tuple(b[k] for k in key) for b in server.billed_chats)
    for entry in booked:
        d = entry["detail"]
        usd = prices.llm_cost(entry["model"], d["prompt_tokens"], d["completion_tokens"], d["cached_tokens"])
        assert entry["usd"] == pytest.approx(usd, abs=1e-6)
    assert sum(s["cost_usd"] for s in trace["stages"]) == pytest.approx(sum(e["usd"] for e in trace["ledger"]))


def bill_usd(server: FakeProviderServer) -> float:
    prices = load_prices(None)
    return sum(
        prices.llm_cost(b["model"], b["prompt_tokens"], b["completion_tokens"], b["cached_tokens"]) or 0.0
        for b in server.billed_chats
    )


# --- every billed response is booked, whatever happens to the reply ------------------------------------------

MISSING_SCORES = "critic gpt-4.1-mini returned JSON that did not match the schema after one repair: field 'scores'"
CASES: dict[str, tuple[Any, int, str | None, int]] = {
    # name: (inject, exit code, what the error line says, estimated entries)
    "missing-field-twice": (
        lambda s: s.queue_chat_replies(ChatReply.missing("scores"), ChatReply.missing("scores"), match=CRITIC),
        1,
        MISSING_SCORES + " is missing",
        0,
    ),
    "missing-field-repaired": (lambda s: s.queue_chat_replies(ChatReply.missing("faithful"), match=CRITIC), 0, None, 0),
    "wrong-type-twice": (
        lambda s: s.queue_chat_replies('{"prompt": 42, "rationale": "x"}', '{"prompt": [], "rationale": "x"}'),
        1,
        "writer gpt-4.1-mini returned JSON that did not match the schema after one repair: field 'prompt': Input "
        "should be a valid string",
        0,
    ),
    "not-json-twice": (
        lambda s: s.queue_chat_replies(ChatReply.not_json(), ChatReply.not_json(), match=CRITIC),
        1,
        "critic gpt-4.1-mini did not return valid JSON after one repair: Invalid JSON",
        0,
    ),
    "refusal": (lambda s: s.queue_chat_replies(ChatReply.refuse(), match=CRITIC), 1, "gpt-4.1-mini refused", 0),
    "cut-off": (lambda s: s.queue_chat_replies(ChatReply.cut_off(), match=CRITIC), 1, "cut off at the token limit", 0),
    "gateway-schema-500-twice": (
        lambda s: s.schema_error_next_chats(2, match=CRITIC),
        1,
        "critic gpt-4.1-mini returned a reply the server found did not match the schema after one repair: HTTP 500",
        2,
    ),
    "gateway-schema-500-repaired": (lambda s: s.schema_error_next_chats(1, match=CRITIC), 0, None, 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_billed_response_is_in_the_ledger(cli, cloud: FakeProviderServer, tmp_path: Path, case: str) -> None:
    inject, code, says, estimated = CASES[case]
    inject(cloud)
    result = prompt_only(cli, tmp_path / "runs", "--max-iterations-image", "1")
    assert result.exit_code == code, result.stderr
    assert not cloud.script.pending(), "the fault was used"
    assert "Traceback" not in result.stderr
    if says is not None:
        error = [line for line in result.stderr.splitlines() if line.startswith("fbloop: error:")]
        assert len(error) == 1 and says in error[0], result.stderr
    trace = read_json(only_run(tmp_path / "runs") / "workflow_trace.json")
    assert_ledger_is_the_bill(cloud, trace)
    marked = llm_entries(trace, estimated=True)
    assert len(marked) == estimated, marked
    for entry in marked:  # no usage came back: booked at the call's estimate, and it says so
        assert entry["usd"] == pytest.approx(load_prices(None).llm_estimate(MODEL))
        assert "booked at the call's estimate" in entry["detail"]["note"]
    assert not read_json(only_run(tmp_path / "runs") / "workflow_checkpoint.json")["state"]["calls_in_flight"]


def test_a_gateway_schema_500_is_repaired_once_not_retried(cli, cloud: FakeProviderServer, tmp_path: Path) -> None:
    cloud.schema_error_next_chats(2, match=CRITIC)
    result = prompt_only(cli, tmp_path / "runs", "--max-iterations-image", "1")
    assert result.exit_code == 1
    critic_calls = [r for r in cloud.requests_for("chat") if CRITIC in r.raw.decode()]
    assert len(critic_calls) == 2, "the bad reply and one repair; no blind retries (FBLOOP_LLM_RETRIES is 3)"
    repair = critic_calls[1].body["messages"][-1]["content"]
    assert "did not match the schema" in repair and "'scores' is a required property" in repair
    assert "retry" not in result.stderr


def test_a_long_provider_message_is_cut_at_a_word_and_kept_whole_in_the_trace(
    cli, cloud: FakeProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FBLOOP_LLM_RETRIES", "0")
    cloud.schema_error_next_chats(2, match=CRITIC)
    result = prompt_only(cli, tmp_path / "runs", "--max-iterations-image", "1")
    line = next(line for line in result.stderr.splitlines() if line.startswith("fbloop: error:"))
    assert "…. Checkpoint saved" in line  # shortened, and marked as such
    shown = line.split("HTTP 500: ", 1)[1].split("…. Checkpoint saved")[0]
    assert GATEWAY_SCHEMA_ERROR.startswith(shown) and len(shown) < len(GATEWAY_SCHEMA_ERROR)
    assert re.match(r"[,;:.\-]*\s", GATEWAY_SCHEMA_ERROR[len(shown) :]), "cut at a word boundary"
    trace = read_json(only_run(tmp_path / "runs") / "workflow_trace.json")
    whole = [e["data"]["error"] for e in trace["events"] if e["kind"] == "agent_call_error"]
    assert any(GATEWAY_SCHEMA_ERROR in text for text in whole), whole


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short enough", 40, "short enough"),
        ("one two three four five six", 15, "one two three…"),
        ("split   across\nlines and   spaces", 100, "split across lines and spaces"),
        ("x" * 50, 20, "x" * 20 + "…"),  # one long word: cut inside it
        ("ends with a comma, then more words here", 19, "ends with a comma…"),
    ],
)
def test_shorten_cuts_at_a_word_boundary(text: str, limit: int, expected: str) -> None:
    assert shorten(text, limit) == expected


def test_a_timed_out_request_is_booked_at_its_estimate(
    cli, cloud: FakeProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FBLOOP_REQUEST_TIMEOUT_S", "0.5")
    cloud.hang_next_chats(seconds=2, match=CRITIC)
    result = prompt_only(cli, tmp_path / "runs", "--max-iterations-image", "1")
    assert result.exit_code == 0, result.stderr
    trace = read_json(only_run(tmp_path / "runs") / "workflow_trace.json")
    assert_ledger_is_the_bill(cloud, trace)
    (marked,) = llm_entries(trace, estimated=True)
    assert "no answer within 0.5s" in marked["detail"]["note"]


# --- --max-cost counts them ------------------------------------------------------------------------------------


def test_the_cap_counts_the_calls_that_failed(cli, cloud: FakeProviderServer, tmp_path: Path) -> None:
    """The cap fits exactly one writer/critic iteration at the estimate. The critic refuses: the writer and the
    refused critic call are paid, so the iteration cannot be paid again under the same cap."""
    cap = 2 * load_prices(None).llm_estimate(MODEL)
    cloud.queue_chat_replies(ChatReply.refuse(), match=CRITIC)
    out = tmp_path / "runs"
    first = prompt_only(cli, out, "--max-iterations-image", "1", "--max-cost", f"{cap:.6f}")
    assert first.exit_code == 1 and "refused" in first.stderr
    run = only_run(out)
    assert len(cloud.billed_chats) == 2
    billed_before = len(cloud.requests_for("chat"))
    again = cli("resume", run)
    assert again.exit_code == 1
    assert "budget reached" in again.stderr, again.stderr
    assert len(cloud.requests_for("chat")) == billed_before, "nothing more was sent past the cap"
    trace = read_json(run / "workflow_trace.json")
    assert trace["status"] == "budget_exceeded"
    assert_ledger_is_the_bill(cloud, trace)
    assert bill_usd(cloud) <= cap
    finished = cli("resume", run, "--max-cost", "1")  # a higher cap: the run goes on and finishes
    assert finished.exit_code == 0, finished.stderr
    assert_ledger_is_the_bill(cloud, read_json(run / "workflow_trace.json"))


def test_the_cap_stops_a_repair_that_would_pass_it(cli, cloud: FakeProviderServer, tmp_path: Path) -> None:
    """Each request is checked against the cap before it is sent, the repair request too. The cap fits one
    writer/critic iteration at the estimate; the critic's first reply is long (about 1000 completion tokens,
    $0.0016) and misses a field: with it booked, the repair no longer fits."""
    estimate = load_prices(None).llm_estimate(MODEL)
    assert estimate is not None
    cap = 2 * estimate
    long_and_incomplete = json.dumps({"overall": 80, "feedback": ["more light " * 400], "faithful": True})
    cloud.queue_chat_replies(long_and_incomplete, match=CRITIC)
    out = tmp_path / "runs"
    result = prompt_only(cli, out, "--max-iterations-image", "1", "--max-cost", f"{cap:.6f}")
    assert result.exit_code == 1 and "budget reached" in result.stderr, result.stderr
    assert len(cloud.requests_for("chat")) == 2, "the writer and the critic; the repair was not sent"
    trace = read_json(only_run(out) / "workflow_trace.json")
    assert trace["status"] == "budget_exceeded"
    assert_ledger_is_the_bill(cloud, trace)
    assert bill_usd(cloud) <= cap


# --- a request in flight when the process dies ----------------------------------------------------------------


def test_a_request_in_flight_at_a_kill_is_booked_as_an_estimate_on_resume(
    cli, cloud: FakeProviderServer, tmp_path: Path
) -> None:
    cloud.hang_next_chats(seconds=60, match=CRITIC)
    out = tmp_path / "runs"
    env = {**os.environ, **cloud.env(), **FAST}
    cmd = [sys.executable, "-m", "feedback_cli", "run", str(EXAMPLE), "--backend", "cloud"]
    cmd += ["--workflow", "prompt-only", "--max-iterations-image", "1", "--output-dir", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    in_flight: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    try:
        # the writer's request is in flight first (answered at once), then the critic's (held by the server)
        while time.monotonic() < deadline and not any(c["what"] == "critic image" for c in in_flight):
            time.sleep(0.05)
            for run in out.glob("*"):
                try:
                    state = json.loads((run / "workflow_checkpoint.json").read_text())["state"]
                except (OSError, ValueError, KeyError):
                    continue
                in_flight = state["calls_in_flight"]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert len(in_flight) == 1, "the critic request was on disk before it was sent"
    call = in_flight[0]
    assert call["what"] == "critic image" and call["model"] == MODEL
    assert call["estimate_usd"] == pytest.approx(load_prices(None).llm_estimate(MODEL))
    cloud.script.clear()
    run = only_run(out)
    resumed = cli("resume", run)
    assert resumed.exit_code == 0, resumed.stderr
    assert "was in flight when the run stopped: booked at its estimate" in resumed.stderr
    state = read_json(run / "workflow_checkpoint.json")["state"]
    assert state["calls_in_flight"] == []
    (marked,) = llm_entries(state, estimated=True)
    assert marked["detail"]["call_id"] == call["id"] and marked["usd"] == pytest.approx(call["estimate_usd"])
    assert marked["what"] == "critic image" and marked["stage"] == "image_prompt"
    assert_ledger_is_the_bill(cloud, state)  # the writer's reply before the kill was booked too
    summary = read_json(run / "workflow_summary.json")
    assert summary["estimated_cost_usd"] == pytest.approx(call["estimate_usd"])
    again = cli("resume", run)  # booked once: a second resume adds nothing
    assert again.exit_code == 0
    assert len(llm_entries(read_json(run / "workflow_checkpoint.json")["state"], estimated=True)) == 1


# --- `fbloop stage`: --max-cost and the limits of `fbloop run` ----------------------------------------------


def motion_prompts(tmp_path: Path, clips: int) -> Path:
    from PIL import Image

    frame = tmp_path / "frame.png"
    Image.new("RGB", (64, 36), (30, 60, 200)).save(frame)
    entries = [
        {"clip": i + 1, "motion_prompt": "slow pan", "start_frame": str(frame), "end_frame": str(frame)}
        for i in range(clips)
    ]
    path = tmp_path / "motion.json"
    path.write_text(json.dumps({"clips": entries}))
    return path


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["video-generation", "--motion-prompts", "{motion40}"], "the number of clips in --motion-prompts"),
        (["video-generation", "--motion-prompts", "{motion13}", "-n", "1"], "must be between 1 and 12, got 13"),
        (["video-prompt", "--storyboard", "{motion40}"], "the number of clips in --storyboard"),
        (
            ["video-generation", "--image", "{frame}", "--prompt-file", "{text}", "-n", "17"],
            "--num must be between 1 and 16, got 17",
        ),
        (["image-generation", "--prompt-file", "{text}", "-n", "65"], "--num must be between 1 and 64, got 65"),
        (["image-generation", "--prompt-file", "{text}", "--max-cost", "-1"], "--max-cost must be 0 or more, got -1"),
        (["image-generation", "--prompt-file", "{text}", "--max-cost", "nan"], "--max-cost must be 0 or more, got nan"),
        (
            ["image-prompt", "--prompt-file", "{text}", "--max-iterations", "51"],
            "--max-iterations must be between 1 and 50, got 51",
        ),
        (["image-prompt", "--prompt-file", "{text}", "--threshold", "101"], "--threshold must be between 0 and 100"),
        (
            ["storyboard", "--image", "{frame}", "--prompt-file", "{text}", "--clips", "13"],
            "--clips must be between 1 and 12, got 13",
        ),
    ],
    ids=[
        "40-clips",
        "13-clips",
        "40-storyboard-clips",
        "17-videos",
        "65-images",
        "negative-cap",
        "nan-cap",
        "51-iterations",
        "threshold-101",
        "13-storyboard-clips",
    ],
)
def test_stage_has_the_limits_of_run(cli, tmp_path: Path, args: list[str], says: str) -> None:
    text = tmp_path / "prompt.txt"
    text.write_text("a red fox\n")
    files = {
        "{motion40}": str(motion_prompts(tmp_path / "m40", 40) if (tmp_path / "m40").mkdir() is None else ""),
        "{motion13}": str(motion_prompts(tmp_path / "m13", 13) if (tmp_path / "m13").mkdir() is None else ""),
        "{frame}": str(tmp_path / "m13" / "frame.png"),
        "{text}": str(text),
    }
    out = tmp_path / "out"
    result = cli("stage", *[files.get(a, a) for a in args], "--output-dir", out)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert not out.exists(), "nothing was created"


def test_stage_max_cost_caps_a_cloud_stage(cli, cloud: FakeProviderServer, tmp_path: Path) -> None:
    motion = motion_prompts(tmp_path, 3)
    out = tmp_path / "out"
    # kling with an end frame, 5 s: $0.45 a video; 3 clips x 1 video = $1.35, the cap allows two
    result = cli(
        "stage", "video-generation", "--motion-prompts", motion, "-n", "1", "--backend", "cloud",
        "--max-cost", "1.0", "--output-dir", out,
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    assert "budget reached" in result.stderr
    run = only_run(out / "video_generation")
    state = read_json(run / "workflow_checkpoint.json")["state"]
    assert state["options"]["max_cost"] == 1.0 and state["status"] == "budget_exceeded"
    assert cloud.predictions_created == 2
    assert sum(e["usd"] for e in state["ledger"]) <= 1.0


def test_stage_takes_the_cap_from_the_environment_too(
    cli, cloud: FakeProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FBLOOP_MAX_COST", "0.005")
    text = tmp_path / "prompt.txt"
    text.write_text("a red fox\n")
    out = tmp_path / "out"
    result = cli(
        "stage", "image-generation", "--prompt-file", text, "-n", "3", "--backend", "cloud", "--output-dir", out
    )
    assert result.exit_code == 1 and "budget reached" in result.stderr, result.stderr
    assert cloud.predictions_created == 1  # flux-schnell at $0.003: one fits under $0.005
    state = read_json(only_run(out / "image_generation") / "workflow_checkpoint.json")["state"]
    assert state["options"]["max_cost"] == 0.005


# --- a checkpoint is held to the same bounds on resume -------------------------------------------------------


@pytest.fixture
def interrupted_run(cli, tmp_path: Path) -> Path:
    out = tmp_path / "runs"
    result = cli("run", EXAMPLE, "--workflow", "image-only", "--num-image-variations", "2", "--output-dir", out)
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    rewrite_state(run, lambda s: s.update(status="interrupted"))
    return run


@pytest.mark.parametrize(
    ("mutate", "says"),
    [
        (
            lambda s: s["options"].update(num_image_variations=100),
            "option num_image_variations must be between 1 and 64, got 100",
        ),
        (lambda s: s["options"].update(num_video_attempts=40), "option num_video_attempts must be between 1 and 16"),
        (lambda s: s["options"].update(max_iterations_video=0), "option max_iterations_video must be between 1 and 50"),
        (lambda s: s["options"].update(threshold_image=150), "option threshold_image must be between 0 and 100"),
        (lambda s: s["options"].update(clips=40), "option clips must be between 1 and 12, got 40"),
        (lambda s: s["options"].update(max_cost=-5), "option max_cost must be 0 or more, got -5"),
        (
            lambda s: s["given"].update(clip_prompts=[{"clip": i} for i in range(40)]),
            "the number of given clip_prompts must be between 1 and 12, got 40",
        ),
    ],
    ids=["100-images", "40-videos", "0-iterations", "threshold-150", "40-clips", "negative-cap", "40-given-clips"],
)
def test_a_resealed_checkpoint_past_the_bounds_is_refused(cli, interrupted_run: Path, mutate, says: str) -> None:
    rewrite_state(interrupted_run, mutate)  # a valid checksum: only the bounds can catch it
    before = (interrupted_run / "workflow_checkpoint.json").read_bytes()
    result = cli("resume", interrupted_run)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert (interrupted_run / "workflow_checkpoint.json").read_bytes() == before


def test_resume_max_cost_is_held_to_the_same_bound(cli, interrupted_run: Path) -> None:
    for bad in ("-1", "nan", "inf"):
        result = cli("resume", interrupted_run, "--max-cost", bad)
        assert result.exit_code == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "--max-cost must be 0 or more" in lines[0], result.stderr


# --- the planner's own model; no unread judge setting ----------------------------------------------------------


def test_the_planner_has_its_own_model(cli, cloud: FakeProviderServer, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FBLOOP_PLANNER_MODEL", "gpt-4.1-nano")
    from PIL import Image

    Image.new("RGB", (64, 36), (200, 60, 20)).save(tmp_path / "start.png")
    out = tmp_path / "runs"
    result = cli(
        "run", "--workflow", "video-only", "--input-image", tmp_path / "start.png", "--backend", "cloud",
        "--num-video-attempts", "1", "--max-iterations-video", "1", "--output-dir", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    models = {
        r.body["response_format"]["json_schema"]["name"]: r.body["model"]
        for r in cloud.requests_for("chat")
        if r.body.get("response_format", {}).get("type") == "json_schema"
    }
    assert models["PlanReply"] == "gpt-4.1-nano"
    assert models["WriterReply"] == MODEL
    trace = read_json(only_run(out) / "workflow_trace.json")
    assert trace["settings"]["planner_model"] == "gpt-4.1-nano"
    plan = [e for e in trace["ledger"] if e["what"] == "video plan"]
    assert [e["model"] for e in plan] == ["gpt-4.1-nano"]


def test_no_setting_that_nothing_reads() -> None:
    assert "judge_model" not in Settings.model_fields
    assert Settings().planner_model == MODEL


def test_an_older_run_keeps_its_writer_as_planner(cli, interrupted_run: Path, monkeypatch) -> None:
    from feedback_cli.config import load_settings
    from feedback_cli.workflow.api import load_for_resume

    rewrite_state(interrupted_run, lambda s: (s["settings"].pop("planner_model"), s["settings"].update(
        writer_model="gpt-4o")))  # fmt: skip
    monkeypatch.setenv("FBLOOP_PLANNER_MODEL", "gpt-4.1-nano")
    prepared = load_for_resume(interrupted_run, load_settings())
    assert prepared.services.settings.planner_model == "gpt-4o"


# --- scorers that call a paid API ------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [None, "Maybe"], ids=["answered", "no-yes-or-no"])
def test_vqascore_calls_are_in_the_ledger(cli, cloud: FakeProviderServer, tmp_path: Path, answer: str | None) -> None:
    """VQAScore asks the vision model once per image; each answer is billed, also one it cannot use."""
    if answer is not None:
        cloud.queue_chat_replies(answer, match="top_logprobs")
    out = tmp_path / "runs"
    result = cli(
        "run", EXAMPLE, "--backend", "cloud", "--workflow", "image-only", "--scorers", "vqascore",
        "--num-image-variations", "2", "--max-iterations-image", "1", "--max-rounds-image", "1", "--output-dir", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    trace = read_json(only_run(out) / "workflow_trace.json")
    vqa = [e for e in trace["ledger"] if e["what"].startswith("vqascore ")]
    assert len(vqa) == 2 and all(e["usd"] > 0 and e["stage"] == "image_generation" for e in vqa)
    assert_ledger_is_the_bill(cloud, trace)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        (
            "FBLOOP_MAX_COST",
            "-1",
            "FBLOOP_MAX_COST: Input should be greater than or equal to 0; got '-1' from the environment",
        ),
        ("FBLOOP_MAX_COST", "inf", "FBLOOP_MAX_COST must be 0 or more, got inf"),
        ("FBLOOP_MAX_COST", "lots", "FBLOOP_MAX_COST: Input should be a valid number"),
        ("FBLOOP_LLM_CONCURRENCY", "0", "FBLOOP_LLM_CONCURRENCY: Input should be greater than or equal to 1"),
    ],
)
@pytest.mark.parametrize("command", ["run", "stage"])
def test_a_bad_cap_in_the_environment_is_one_line_naming_it(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    args = ["run", EXAMPLE] if command == "run" else ["stage", "image-prompt", "--prompt-file", EXAMPLE]
    result = cli(*args, "--output-dir", out)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("cause", "billable"),
    [
        ("ConnectError", False),  # never reached the server: surely not billed
        ("ConnectTimeout", False),
        ("ReadError", True),  # the request went out, the answer was lost: the model may have run
        ("RemoteProtocolError", True),
        ("WriteError", True),
    ],
)
def test_a_lost_connection_after_sending_is_booked_at_its_estimate(cause: str, billable: bool) -> None:
    import httpx
    import openai

    from feedback_cli.providers.openai_agents import may_have_run

    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    error = openai.APIConnectionError(request=request)
    error.__cause__ = getattr(httpx, cause)("lost", request=request)
    assert may_have_run(error) is billable
    assert may_have_run(openai.APITimeoutError(request=request)) is True
