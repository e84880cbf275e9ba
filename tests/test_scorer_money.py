"""Money for scorers (issue 10): the element check's and VQAScore's paid VQA requests, made in the scoring worker
thread, are metered like agent calls: each one held to the cap and recorded in flight in the checkpoint before it
is sent, booked as its response arrives; one in flight when the process dies is booked at its estimate on resume.

Against the fake provider server with the real `openai` client; the server's bill is `server.billed_chats`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from feedback_cli.providers.prices import load_prices
from feedback_cli.scoring.vqascore import VQA_PROMPT_TOKENS
from tests.conftest import EXAMPLE, only_run, read_json
from tests.fakes.provider_server import FakeProviderServer
from tests.test_money import FAST, assert_ledger_is_the_bill, llm_entries

VQA_MODEL = "gpt-4.1"
#: in the body of every VQA request (the element check's questions and VQAScore's own question), in no agent's
ASKED = "Please answer yes or no."
ONE_ROUND = ["--workflow", "image-only", "--max-iterations-image", "1", "-n", "2", "--max-rounds-image", "1"]


@pytest.fixture
def cloud(fake_provider_env: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> FakeProviderServer:
    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FBLOOP_VQA_MODEL", VQA_MODEL)
    return fake_provider_env


def scorer_entries(state: dict[str, Any], scorer: str) -> list[dict[str, Any]]:
    return [e for e in state["ledger"] if e["what"].startswith(f"{scorer} ")]


@pytest.mark.parametrize("scorers", ["offline", "vqascore"])
def test_a_cloud_run_books_every_scorer_request_the_server_billed(
    cli: Any, cloud: FakeProviderServer, tmp_path: Path, scorers: str
) -> None:
    out = tmp_path / "runs"
    result = cli("run", EXAMPLE, "--backend", "cloud", *ONE_ROUND, "--scorers", scorers, "--output-dir", out)
    assert result.exit_code == 0, result.stderr
    state = read_json(only_run(out) / "workflow_checkpoint.json")["state"]
    assert state["calls_in_flight"] == []
    vqa_billed = [b for b in cloud.billed_chats if b["model"] == VQA_MODEL]
    assert vqa_billed, "the run asked the VQA model"
    scorer = "elements" if scorers == "offline" else "vqascore"
    booked = scorer_entries(state, scorer)
    assert booked and all(e["model"] == VQA_MODEL and not e["estimated"] for e in booked)
    assert all(e["stage"] == "image_generation" and e["detail"]["prompt_tokens"] > 0 for e in booked)
    assert_ledger_is_the_bill(cloud, state)  # each billed response once, at its tokens: none missing, none twice


def test_a_scorer_request_in_flight_at_a_kill_is_booked_as_an_estimate_on_resume(
    cli: Any, cloud: FakeProviderServer, tmp_path: Path
) -> None:
    cloud.hang_next_chats(seconds=60, match=ASKED)  # the first element question is held by the server
    out = tmp_path / "runs"
    env = {**os.environ, **cloud.env(), **FAST, "FBLOOP_VQA_MODEL": VQA_MODEL}
    cmd = [sys.executable, "-m", "feedback_cli", "run", str(EXAMPLE), "--backend", "cloud", *ONE_ROUND]
    cmd += ["--scorers", "offline", "--output-dir", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    in_flight: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and not any(c["what"].startswith("elements ") for c in in_flight):
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
    held = [c for c in in_flight if c["what"].startswith("elements ")]
    assert len(held) == 1, f"the element question was on disk before it was sent: {in_flight}"
    call = held[0]
    assert call["model"] == VQA_MODEL and call["stage"] == "image_generation"
    assert call["estimate_usd"] == pytest.approx(load_prices(None).llm_cost(VQA_MODEL, VQA_PROMPT_TOKENS, 1))
    cloud.script.clear()
    run = only_run(out)
    resumed = cli("resume", run)
    assert resumed.exit_code == 0, resumed.stderr
    assert "was in flight when the run stopped: booked at its estimate" in resumed.stderr
    state = read_json(run / "workflow_checkpoint.json")["state"]
    assert state["calls_in_flight"] == []
    marked = [e for e in llm_entries(state, estimated=True) if e["detail"].get("call_id") == call["id"]]
    assert len(marked) == 1 and marked[0]["usd"] == pytest.approx(call["estimate_usd"])
    assert marked[0]["what"] == call["what"] and marked[0]["stage"] == "image_generation"
    assert_ledger_is_the_bill(cloud, state)  # every other response, before and after the kill, at its tokens
    again = cli("resume", run)  # booked once: a second resume adds nothing
    assert again.exit_code == 0
    assert len(llm_entries(read_json(run / "workflow_checkpoint.json")["state"], estimated=True)) == 1


def test_a_scorer_request_answered_with_an_error_is_retried_and_only_the_answer_is_booked(
    cli: Any, cloud: FakeProviderServer, tmp_path: Path
) -> None:
    cloud.fail_next_chats(500, count=2, match=ASKED)  # error answers: not billed, not booked, retried
    out = tmp_path / "runs"
    result = cli("run", EXAMPLE, "--backend", "cloud", *ONE_ROUND, "--scorers", "offline", "--output-dir", out)
    assert result.exit_code == 0, result.stderr
    state = read_json(only_run(out) / "workflow_checkpoint.json")["state"]
    assert scorer_entries(state, "elements")
    assert_ledger_is_the_bill(cloud, state)
    assert not any("elements" in note for s in state["stages"] for note in s["notes"] if "failed" in note)
