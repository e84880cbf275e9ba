"""Money and data safety on the offline backend: dry run, Ctrl-C, and what a stop leaves behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, read_json


def test_dry_run_prints_the_plan_and_writes_nothing(cli, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    result = cli(
        "run",
        EXAMPLE,
        "--storyboard",
        "--clips",
        "3",
        "--num-image-variations",
        "5",
        "--num-video-attempts",
        "2",
        "--dry-run",
        "--output-dir",
        out,
    )
    assert result.exit_code == 0, result.stderr
    assert not out.exists()
    assert "dry run: full on offline" in result.stdout
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("│ ")}
    # the stage cell is whole ("2. image_generation"): the terminal layout never wraps a cell a wider table fits
    assert " 5 " in rows["2. image_generation"]  # 5 image variations
    assert " 3 " in rows["3. storyboard"]  # 3 keyframes
    assert "7-19" in rows["4. video_prompt"]  # plan + 3 clip loops of 1..3 iterations (writer+critic)


def wait_for_items(out: Path, stage: str, timeout: float = 30.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in out.glob("*"):
            try:
                state = json.loads((run / "workflow_checkpoint.json").read_text())["state"]
            except (OSError, ValueError, KeyError):
                continue
            record = next(s for s in state["stages"] if s["name"] == stage)
            if any(i["status"] in ("submitted", "succeeded") for i in record["items"]):
                return run
        time.sleep(0.02)
    raise AssertionError("run never reached the point to interrupt")


def test_ctrl_c_saves_the_checkpoint_and_prints_the_resume_command(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    env = {**os.environ, "FBLOOP_OFFLINE_LATENCY": "0.4"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feedback_cli",
            "run",
            str(EXAMPLE),
            "--workflow",
            "image-only",
            "--seed",
            "3",
            "--num-image-variations",
            "4",
            "--output-dir",
            str(out),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = wait_for_items(out, "image_generation")
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert f"Resume with: fbloop resume {run}" in stderr
    assert "Traceback" not in stderr
    state = read_json(run / "workflow_checkpoint.json")["state"]
    assert state["status"] == "interrupted"
    assert next(s for s in state["stages"] if s["name"] == "image_generation")["status"] == "interrupted"
    assert "interrupted" in read_json(run / "workflow_summary.json")["status"]
    resumed = subprocess.run(
        [sys.executable, "-m", "feedback_cli", "resume", str(run)], capture_output=True, text=True, timeout=60
    )
    assert resumed.returncode == 0, resumed.stderr
    assert read_json(run / "workflow_summary.json")["status"] == "completed"


def test_resume_retry_failed_redoes_only_the_failed_items(cli, tmp_path: Path) -> None:
    from tests.test_checkpoint import rewrite_state, snapshot

    out = tmp_path / "runs"
    assert (
        cli(
            "run",
            EXAMPLE,
            "--workflow",
            "image-only",
            "--seed",
            "5",
            "--num-image-variations",
            "3",
            "--output-dir",
            out,
        ).exit_code
        == 0
    )
    run = next(out.iterdir())
    stage_dir = run / "stage_2_image_generation"
    lost = (stage_dir / "image_02.png").read_bytes()
    (stage_dir / "image_02.png").unlink()

    def image_02_failed(state: dict) -> None:  # as a provider fault would have left it
        item = state["stages"][1]["items"][1]
        item.update(status="failed", artifact=None, scores=[], overall=None, error="prediction failed: CUDA OOM")

    rewrite_state(run, image_02_failed)
    kept = {k: v for k, v in snapshot(run).items() if k.endswith(("image_01.png", "image_03.png"))}
    plain = cli("resume", run)
    assert plain.exit_code == 0 and "already complete" in plain.stderr
    assert not (stage_dir / "image_02.png").exists(), "a plain resume does not retry"
    result = cli("resume", run, "--retry-failed")
    assert result.exit_code == 0, result.stderr
    assert (stage_dir / "image_02.png").read_bytes() == lost  # offline is deterministic per seed
    assert {k: v for k, v in snapshot(run).items() if k in kept} == kept, "finished items untouched"
    state = read_json(run / "workflow_checkpoint.json")["state"]
    items = state["stages"][1]["items"]
    assert [i["status"] for i in items] == ["succeeded"] * 3
    assert [i["key"] for i in items if i["started_at"]] == ["image_01", "image_02", "image_03"]
    assert "--retry-failed: 1 failed item(s) tried again" in state["stages"][1]["notes"]


def test_keys_never_reach_the_run_folder_or_the_output(cli, tmp_path: Path) -> None:
    secrets = {"OPENAI_API_KEY": "sk-proj-SECRET-openai-1234567890", "REPLICATE_API_TOKEN": "r8_SECRET_replicate_0987"}
    out = tmp_path / "runs"
    result = cli(
        "run",
        EXAMPLE,
        "--backend",
        "offline",
        "--verbose",
        "--storyboard",
        "--clips",
        "1",
        "--num-image-variations",
        "2",
        "--num-video-attempts",
        "1",
        "--output-dir",
        out,
        env=secrets,
    )
    assert result.exit_code == 0, result.stderr
    run = next(out.iterdir())
    trace = read_json(run / "workflow_trace.json")
    assert trace["settings"]["openai_api_key_set"] is True  # it knew a key was there...
    for value in secrets.values():  # ...and wrote it nowhere
        assert value not in result.stdout + result.stderr
        for path in run.rglob("*"):
            if path.is_file():
                assert value.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("stage", ["image_generation", "video_generation"])
def test_sigterm_and_sighup_stop_like_ctrl_c(tmp_path: Path, signum: signal.Signals, stage: str) -> None:
    """A service manager's stop (SIGTERM) or a closed terminal (SIGHUP) mid-stage: the checkpoint is saved with
    the run interrupted, the lock released, the resume command printed once, exit 128 + the signal's number
    (143, 129; Ctrl-C is 130), and the resume finishes the run."""
    from tests.test_lock import lock_is_free

    out = tmp_path / "runs"
    env = {**os.environ, "FBLOOP_OFFLINE_LATENCY": "0.3", "FBLOOP_OFFLINE_CONCURRENCY": "1"}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "feedback_cli", "run", str(EXAMPLE), "--seed", "3", "--num-image-variations", "4",
            "--num-video-attempts", "3", "--max-iterations-image", "1", "--max-iterations-video", "1",
            "--output-dir", str(out),
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        run = wait_for_items(out, stage, timeout=60)
        proc.send_signal(signum)
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert stderr.count(f"Resume with: fbloop resume {run}") == 1, stderr
    assert f"stopped by {signum.name}; checkpoint saved" in stderr
    state = read_json(run / "workflow_checkpoint.json")["state"]
    assert state["status"] == "interrupted"
    assert next(s for s in state["stages"] if s["name"] == stage)["status"] == "interrupted"
    assert lock_is_free(run) and not (run / ".fbloop.lock.owner.json").exists()
    resumed = subprocess.run(
        [sys.executable, "-m", "feedback_cli", "resume", str(run)], capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    assert read_json(run / "workflow_summary.json")["status"] == "completed"
